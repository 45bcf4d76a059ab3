#!/usr/bin/env python
"""Draw a detector's boxes and masks on images.

    python tools/demo/image_demo.py IMAGE CONFIG CHECKPOINT --out-dir DIR [--score-thr 0.3] [--device cpu]

IMAGE is an image file or a folder of images (``--max-images`` of them, in name order). One PNG per image is
written to DIR (predictions only). The checkpoint is read weights-only.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image', help='an image file or a folder of images')
    parser.add_argument('config', help='the model config (e.g. configs/maskrcnn_l2vit.py)')
    parser.add_argument('checkpoint', help='trained weights (.pth)')
    parser.add_argument('--out-dir', required=True, help='folder for the drawn PNGs')
    parser.add_argument('--score-thr', type=float, default=0.3, help='draw predictions scoring at least this')
    parser.add_argument('--max-images', type=int, default=8, help='at most this many images from a folder')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1, ...')
    return parser.parse_args(argv)


def list_images(path: str, limit: int) -> List[str]:
    if osp.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise SystemExit(f'error: no images ({", ".join(IMAGE_EXTENSIONS)}) in folder {path}')
        return [osp.join(path, f) for f in files[:limit]]
    if not osp.isfile(path):
        raise SystemExit(f'error: image not found: {path}')
    return [path]


def main(argv=None) -> int:
    args = parse_args(argv)
    images = list_images(args.image, args.max_images)
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise SystemExit(f'error: {what} not found: {path}')

    import mmcv
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS

    from l2vit.checkpoint import CheckpointError, allow_safe_globals
    allow_safe_globals()
    try:
        model = init_detector(args.config, args.checkpoint, device=args.device)
    except CheckpointError as err:
        raise SystemExit(f'error: {err}') from None
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    os.makedirs(args.out_dir, exist_ok=True)
    for path in images:
        result = inference_detector(model, path)
        image = mmcv.imread(path, channel_order='rgb')
        out_file = osp.join(args.out_dir, osp.splitext(osp.basename(path))[0] + '.png')
        visualizer.add_datasample('prediction', image, data_sample=result, draw_gt=False, show=False,
                                  pred_score_thr=args.score_thr, out_file=out_file)
        kept = int((result.pred_instances.scores >= args.score_thr).sum())
        print(f'{path}: {kept} detections >= {args.score_thr} -> {out_file}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
