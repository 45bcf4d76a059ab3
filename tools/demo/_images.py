"""What the drawing demos (image_demo.py, seg_demo.py) share: their common arguments, the list of images to draw,
and loading a model from a config and a checkpoint (weights-only, with a clear error for a refused file).

The demos import this file as a sibling module: running ``python tools/demo/<demo>.py`` puts ``tools/demo/`` first
on ``sys.path``, whatever the current directory is.
"""
import argparse
import os
import os.path as osp
from typing import Callable, List

from l2vit.errors import fail

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def add_image_args(parser: argparse.ArgumentParser, config_example: str) -> None:
    """IMAGE CONFIG CHECKPOINT --out-dir DIR [--max-images N] [--device DEV]."""
    parser.add_argument('image', help='an image file or a folder of images')
    parser.add_argument('config', help=f'the model config (e.g. {config_example})')
    parser.add_argument('checkpoint', help='trained weights (.pth)')
    parser.add_argument('--out-dir', required=True, help='folder for the drawn PNGs')
    parser.add_argument('--max-images', type=int, default=8, help='at most this many images from a folder')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1, ...')


def list_images(args: argparse.Namespace) -> List[str]:
    """The images to draw (a file, or the first ``--max-images`` of a folder in name order); checks that the config
    and the checkpoint exist too, so that a typo stops the demo before any model is built."""
    if args.max_images < 1:
        fail(f'--max-images must be at least 1, got {args.max_images}')
    if osp.isdir(args.image):
        files = sorted(f for f in os.listdir(args.image) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            fail(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in folder {args.image}')
        images = [osp.join(args.image, f) for f in files[:args.max_images]]
    elif osp.isfile(args.image):
        images = [args.image]
    else:
        fail(f'image not found: {args.image}')
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            fail(f'{what} not found: {path}')
    return images


def load_model(init: Callable, args: argparse.Namespace):
    """``init(config, checkpoint, device=...)`` (mmdet's init_detector, mmseg's init_model) with the checkpoint read
    weights-only (importing l2vit registered that); a refused or broken checkpoint ends the demo with its message."""
    from l2vit import CheckpointError
    try:
        return init(args.config, args.checkpoint, device=args.device)
    except CheckpointError as err:
        fail(str(err))


def out_file(out_dir: str, image_path: str) -> str:
    """``DIR/<image name>.png``."""
    return osp.join(out_dir, osp.splitext(osp.basename(image_path))[0] + '.png')
