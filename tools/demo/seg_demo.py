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
import os.path as osp
import sys
from typing import List

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image', help='an image file or a folder of images')
    parser.add_argument('config', help='the model config (e.g. configs/upernet/l2vit-t_upernet_...py)')
    parser.add_argument('checkpoint', help='trained weights (.pth)')
    parser.add_argument('--out-dir', required=True, help='folder for the drawn PNGs')
    parser.add_argument('--opacity', type=float, default=0.5, help='opacity of the painted classes, 0 to 1')
    parser.add_argument('--max-images', type=int, default=8, help='at most this many images from a folder')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1, ...')
    args = parser.parse_args(argv)
    if not 0 <= args.opacity <= 1:
        parser.error(f'--opacity must be between 0 and 1, got {args.opacity}')
    if args.max_images < 1:
        parser.error(f'--max-images must be at least 1, got {args.max_images}')
    return args


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
    import numpy as np
    from mmseg.apis import inference_model, init_model
    from mmseg.registry import VISUALIZERS

    from l2vit.checkpoint import allow_safe_globals
    allow_safe_globals()  # mmengine's loader reads the checkpoint with torch's weights-only default
    model = init_model(args.config, args.checkpoint, device=args.device)
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = dict(classes=model.dataset_meta['classes'], palette=model.dataset_meta['palette'])
    visualizer.alpha = args.opacity
    classes = model.dataset_meta['classes']
    os.makedirs(args.out_dir, exist_ok=True)
    for path in images:
        result = inference_model(model, path)
        image = mmcv.imread(path, channel_order='rgb')
        out_file = osp.join(args.out_dir, osp.splitext(osp.basename(path))[0] + '.png')
        visualizer.add_datasample('prediction', image, data_sample=result, draw_gt=False, show=False,
                                  out_file=out_file, with_labels=True)
        pred = result.pred_sem_seg.data.cpu().numpy().ravel()
        counts = np.bincount(pred, minlength=len(classes))
        shares = ', '.join(f'{classes[i]} {counts[i] / pred.size:.0%}' for i in np.argsort(-counts) if counts[i])
        print(f'{path}: {shares} -> {out_file}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
