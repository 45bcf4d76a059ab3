#!/usr/bin/env python
"""Draw a detector's boxes and masks on images.

    python tools/demo/image_demo.py IMAGE CONFIG CHECKPOINT --out-dir DIR [--score-thr 0.3] [--device cpu]

IMAGE is an image file or a folder of images (``--max-images`` of them, in name order). One PNG per image is
written to DIR (predictions only). The checkpoint is read weights-only.
"""
import argparse
import os
import sys

from _images import add_image_args, list_images, load_model, out_file


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_image_args(parser, config_example='configs/maskrcnn_l2vit.py')
    parser.add_argument('--score-thr', type=float, default=0.3, help='draw predictions scoring at least this')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    images = list_images(args)

    import mmcv
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS

    model = load_model(init_detector, args)
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    os.makedirs(args.out_dir, exist_ok=True)
    for path in images:
        result = inference_detector(model, path)
        image = mmcv.imread(path, channel_order='rgb')
        target = out_file(args.out_dir, path)
        visualizer.add_datasample('prediction', image, data_sample=result, draw_gt=False, show=False,
                                  pred_score_thr=args.score_thr, out_file=target)
        kept = int((result.pred_instances.scores >= args.score_thr).sum())
        print(f'{path}: {kept} detections >= {args.score_thr} -> {target}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
