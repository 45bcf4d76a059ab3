"""Command-line arguments that several tools take, defined once."""
import argparse
import re
from typing import Tuple

from mmengine.config import DictAction

from .config import LAUNCHERS


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``tools/train.py`` and ``tools/test.py``: work dir, config overrides and the launcher."""
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. train_dataloader.batch_size=8 '
        'optim_wrapper.optimizer.lr=1e-4; lists as key="[a,b]" or key=a,b; quote values with spaces')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher (torchrun: pytorch)')
    # torch.distributed.launch passes --local_rank (older) or --local-rank (torch >= 2.0).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)


def run_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``l2vit.apis.train`` / ``test`` that ``add_run_args`` parsed."""
    return dict(work_dir=args.work_dir, cfg_options=args.cfg_options, launcher=args.launcher,
                local_rank=args.local_rank)


def add_image_args(parser: argparse.ArgumentParser, config_example: str) -> None:
    """The drawing demos' ``IMAGE CONFIG CHECKPOINT --out-dir DIR [--max-images N] [--device DEV]``."""
    parser.add_argument('image', help='an image file or a folder of images')
    parser.add_argument('config', help=f'the model config (e.g. {config_example})')
    parser.add_argument('checkpoint', help='trained weights (.pth)')
    parser.add_argument('--out-dir', required=True, help='folder for the drawn PNGs')
    parser.add_argument('--max-images', type=int, default=8, help='at most this many images from a folder')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1, ...')


def image_size(text: str) -> Tuple[int, int]:
    """An argparse type: '512' -> (512, 512); '800x1333' -> (800, 1333) (height × width)."""
    match = re.fullmatch(r'\s*(\d+)\s*(?:[x×]\s*(\d+)\s*)?', text)
    if not match or int(match.group(1)) < 1 or (match.group(2) is not None and int(match.group(2)) < 1):
        raise argparse.ArgumentTypeError(
            f'invalid size {text!r}: expected a positive integer N (an N×N image) or HxW such as 800x1333')
    return int(match.group(1)), int(match.group(2) or match.group(1))
