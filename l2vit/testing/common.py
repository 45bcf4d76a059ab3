"""What the synthetic-dataset writers of :mod:`l2vit.testing` share: the optional imports, the argument checks, the
drawing helpers, the splits and seeds, and the command line.

Image ``index`` of split ``SPLITS[code]`` is drawn from ``numpy.random.default_rng([seed, code, index])`` alone: the
same seed gives the same bytes, whatever else was generated before.
"""
import argparse
import importlib
import inspect
import json
import os
import os.path as osp
import time
from types import ModuleType
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

#: The splits, in writing order; a split's position in it is part of each of its images' seed.
SPLITS: Tuple[str, ...] = ('train', 'val')
INSTALL_HINT = '`pip install "l2vit-openmmlab[testing]"` (in a checkout: `pip install -e ".[testing]"`)'


class MissingDependencyError(ImportError):
    """A package the synthetic-dataset writers need (OpenCV, pycocotools) cannot be imported; the message names it
    and the fix."""


def require(module: str, package: str) -> ModuleType:
    """``import module``, or a :class:`MissingDependencyError` that names ``package`` and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f'the synthetic datasets of l2vit.testing need {package}, which cannot be imported ({err}): install it '
            f'with {INSTALL_HINT}, or `pip install {package}` alone',
            name=module) from err


cv2 = require('cv2', 'opencv-python')


def check_arguments(num_train: int, num_val: int, min_size: int, max_size: int, smallest_size: int) -> None:
    if not smallest_size <= min_size <= max_size:
        raise ValueError(f'need {smallest_size} <= min_size <= max_size, got {min_size}, {max_size}')
    if num_train < 0 or num_val < 0:
        raise ValueError(f'need non-negative image counts, got num_train={num_train}, num_val={num_val}')


def image_size(rng: np.random.Generator, min_size: int, max_size: int) -> Tuple[int, int]:
    """(height, width) of an image, each side drawn from ``[min_size, max_size]`` (width first)."""
    width, height = (int(rng.integers(min_size, max_size + 1)) for _ in range(2))
    return height, width


def fill_polygon(pts: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 mask (0/1) of a polygon in OpenCV pixel coordinates (pixel centres at integers), 1/16 px precise."""
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(pts) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask


def hsv_colour(h: float, s: float, v: float, order: str) -> np.ndarray:
    """A colour (float32, ``order`` 'RGB' or 'BGR') from OpenCV's HSV ranges (h 0-180, s and v 0-255)."""
    px = np.array([[[h, s, v]]], np.uint8)
    return cv2.cvtColor(px, getattr(cv2, f'COLOR_HSV2{order}'))[0, 0].astype(np.float32)


def make_dirs(out_dir: str, *folders: str) -> List[str]:
    """``out_dir/folder`` for each folder, created if missing."""
    paths = [osp.join(out_dir, folder) for folder in folders]
    for path in paths:
        os.makedirs(path, exist_ok=True)
    return paths


def write_image(path: str, array: np.ndarray, jpeg_quality: Optional[int] = None) -> None:
    """Write ``array`` (BGR or one channel) to ``path``, encoded by its extension."""
    if not cv2.imwrite(path, array, [] if jpeg_quality is None else [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]):
        raise OSError(f'cannot write {path}')


def write_dataset(out_dir: str, classes: Sequence[str], num_train: int, num_val: int, seed: int, progress: bool,
                  write_split: Callable[[str, Iterator[Tuple[int, np.random.Generator]]], dict]) -> Dict:
    """``dict(out_dir, classes, seed, train=write_split('train', images), val=..., seconds)``: ``images`` yields
    ``(index, rng)`` per image of the split, ``rng`` being the only randomness the image may use. ``progress``: an
    mmengine progress bar over all images."""
    start = time.perf_counter()
    progress_bar = None
    if progress and num_train + num_val > 0:
        from mmengine.utils import ProgressBar
        progress_bar = ProgressBar(num_train + num_val)

    def images(code: int, num_images: int) -> Iterator[Tuple[int, np.random.Generator]]:
        for index in range(num_images):
            yield index, np.random.default_rng([seed, code, index])
            if progress_bar is not None:
                progress_bar.update()

    summary = dict(out_dir=osp.abspath(out_dir), classes=classes, seed=seed)
    for code, (split, num) in enumerate(zip(SPLITS, (num_train, num_val))):
        summary[split] = write_split(split, images(code, num))
    if progress_bar is not None:
        print()
    summary['seconds'] = round(time.perf_counter() - start, 2)
    return summary


def run_cli(generate: Callable[..., Dict], doc: str, argv: Optional[Sequence[str]] = None) -> int:
    """``OUT_DIR [--num-train N] [--num-val N] [--seed S] [--no-progress]``, the defaults the generator's own; prints
    the summary as JSON. Bad counts and a missing dependency end it through :func:`l2vit.errors.fail`."""
    from l2vit.errors import fail

    defaults = {name: p.default for name, p in inspect.signature(generate).parameters.items()}
    parser = argparse.ArgumentParser(description=doc.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out_dir', help='dataset root to write (data_root of the config)')
    for split, what in (('train', 'training'), ('val', 'validation')):
        default = defaults[f'num_{split}']
        parser.add_argument(f'--num-{split}', type=int, default=default, help=f'{what} images (default: {default})')
    parser.add_argument('--seed', type=int, default=defaults['seed'], help=f'random seed (default: {defaults["seed"]})')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    if args.num_train < 0 or args.num_val < 0:
        fail('--num-train and --num-val must be >= 0')
    try:
        summary = generate(args.out_dir, args.num_train, args.num_val, args.seed, not args.no_progress)
    except MissingDependencyError as err:
        fail(str(err))
    print(json.dumps(summary, indent=2))
    return 0
