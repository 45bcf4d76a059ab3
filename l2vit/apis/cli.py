"""Command-line arguments that several tools take, defined once; and the training and testing commands, run by
``tools/train.py`` / ``tools/test.py`` and by the installed entry points ``l2vit-train`` / ``l2vit-test``."""
import argparse
import re
from typing import Optional, Sequence, Tuple

from mmengine.config import DictAction

from ..errors import error_exit
from .config import LAUNCHERS
from .run import run_test, run_train

CONFIG_HELP = ('config file, or the name of a model of the zoo (l2vit-t_in1k) or of one of its config files '
               '(mask-rcnn_l2vit-t_fpn_1x_coco), looked up in the installed package')


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


def cli_train_parser() -> argparse.ArgumentParser:
    """``tools/train.py`` / ``l2vit-train``'s arguments."""
    parser = argparse.ArgumentParser(description='Train a model (mmdet, mmseg or mmpretrain config) with L2ViT.')
    parser.add_argument('config', help=CONFIG_HELP)
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        metavar='CKPT',
        help='resume training: from CKPT, or, without a value, from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='mixed-precision training (needs a CUDA GPU)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help="scale the learning rate by the actual total batch size over the config's auto_scale_lr.base_batch_size")
    add_run_args(parser)
    return parser


def cli_test_parser() -> argparse.ArgumentParser:
    """``tools/test.py`` / ``l2vit-test``'s arguments."""
    parser = argparse.ArgumentParser(description='Test a checkpoint (mmdet, mmseg or mmpretrain config) with L2ViT.')
    parser.add_argument('config', help=CONFIG_HELP)
    parser.add_argument(
        'checkpoint',
        help="checkpoint: a file or an http(s) URL; an mmengine checkpoint (training, tools/convert_official.py) or "
        "the authors' released ImageNet file, converted in memory")
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test-time augmentation: the config's tta_pipeline and tta_model (e.g. multi-scale + flip)")
    parser.add_argument('--out', metavar='FILE', help='also dump the predictions to this .pkl file')
    parser.add_argument('--metrics-out', metavar='FILE', help='also write the metrics to this JSON file')
    parser.add_argument(
        '--show-dir', metavar='DIR', help='save images of the predictions in DIR (mmdet: WORK_DIR/<timestamp>/DIR)')
    add_run_args(parser)
    return parser


def cli_train(argv: Optional[Sequence[str]] = None) -> None:
    """Train from a config (``l2vit.apis.run_train``); a problem to fix ends it with ``error: ...``, exit code 2."""
    args = cli_train_parser().parse_args(argv)
    with error_exit():
        run_train(args.config, resume=args.resume, amp=args.amp, auto_scale_lr=args.auto_scale_lr,
                  **run_options(args))


def cli_test(argv: Optional[Sequence[str]] = None) -> None:
    """Test a checkpoint with a config (``l2vit.apis.run_test``); a problem to fix ends it with ``error: ...``."""
    args = cli_test_parser().parse_args(argv)
    with error_exit():
        run_test(args.config, args.checkpoint, tta=args.tta, out=args.out, metrics_out=args.metrics_out,
                 show_dir=args.show_dir, **run_options(args))
