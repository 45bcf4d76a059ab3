#!/usr/bin/env python
"""Draw a segmentor's predicted classes over images.

    python tools/demo/seg_demo.py IMAGE CONFIG CHECKPOINT --out-dir DIR [--opacity 0.5] [--device cpu]
                                  [--max-images N]

IMAGE is an image file or a folder of images (``--max-images`` of them, in name order). One PNG per image is
written to DIR: the image with each predicted class painted over it in the class's palette colour, and its name.
The checkpoint is read weights-only.
"""
import argparse
import os
import sys

from _images import add_image_args, list_images, load_model, out_file


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_image_args(parser, config_example='configs/upernet/l2vit-t_upernet_8xb2-160k_ade20k-512x512.py')
    parser.add_argument('--opacity', type=float, default=0.5, help='opacity of the painted classes, 0 to 1')
    args = parser.parse_args(argv)
    if not 0 <= args.opacity <= 1:
        parser.error(f'--opacity must be between 0 and 1, got {args.opacity}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    images = list_images(args)

    import mmcv
    import numpy as np
    from mmseg.apis import inference_model, init_model
    from mmseg.registry import VISUALIZERS

    model = load_model(init_model, args)
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = dict(classes=model.dataset_meta['classes'], palette=model.dataset_meta['palette'])
    visualizer.alpha = args.opacity
    classes = model.dataset_meta['classes']
    os.makedirs(args.out_dir, exist_ok=True)
    for path in images:
        result = inference_model(model, path)
        image = mmcv.imread(path, channel_order='rgb')
        target = out_file(args.out_dir, path)
        visualizer.add_datasample('prediction', image, data_sample=result, draw_gt=False, show=False,
                                  out_file=target, with_labels=True)
        pred = result.pred_sem_seg.data.cpu().numpy().ravel()
        counts = np.bincount(pred, minlength=len(classes))
        shares = ', '.join(f'{classes[i]} {counts[i] / pred.size:.0%}' for i in np.argsort(-counts) if counts[i])
        print(f'{path}: {shares} -> {target}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
