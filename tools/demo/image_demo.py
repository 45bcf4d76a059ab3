#!/usr/bin/env python
"""Draw a detector's boxes and masks on images.

    python tools/demo/image_demo.py IMAGE CONFIG CHECKPOINT --out-dir DIR [--score-thr 0.3] [--device cpu]

IMAGE is an image file or a folder of images (``--max-images`` of them, in name order). One PNG per image is
written to DIR (predictions only). The checkpoint is read weights-only.
"""
import argparse

from l2vit.apis import add_image_args
from l2vit.apis.demo import draw_detections, list_images
from l2vit.errors import error_exit


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_image_args(parser, config_example='configs/maskrcnn_l2vit.py')
    parser.add_argument('--score-thr', type=float, default=0.3, help='draw predictions scoring at least this')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    with error_exit():
        images = list_images(args.image, args.config, args.checkpoint, args.max_images)
        draw_detections(images, args.config, args.checkpoint, args.out_dir, args.score_thr, args.device)


if __name__ == '__main__':
    main()
