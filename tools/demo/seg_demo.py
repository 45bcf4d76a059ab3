#!/usr/bin/env python
"""Draw a segmentor's predicted classes over images.

    python tools/demo/seg_demo.py IMAGE CONFIG CHECKPOINT --out-dir DIR [--opacity 0.5] [--device cpu]
                                  [--max-images N]

IMAGE is an image file or a folder of images (``--max-images`` of them, in name order). One PNG per image is
written to DIR: the image with each predicted class painted over it in the class's palette colour, and its name.
The checkpoint is read weights-only.
"""
import argparse

from l2vit.apis import add_image_args
from l2vit.apis.demo import draw_segmentation, list_images
from l2vit.errors import error_exit


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_image_args(parser, config_example='configs/upernet/l2vit-t_upernet_8xb2-160k_ade20k-512x512.py')
    parser.add_argument('--opacity', type=float, default=0.5, help='opacity of the painted classes, 0 to 1')
    return parser.parse_args(argv)  # l2vit.apis.demo.draw_segmentation checks --opacity


def main(argv=None) -> None:
    args = parse_args(argv)
    with error_exit():
        images = list_images(args.image, args.config, args.checkpoint, args.max_images)
        draw_segmentation(images, args.config, args.checkpoint, args.out_dir, args.opacity, args.device)


if __name__ == '__main__':
    main()
