"""The command line both synthetic-dataset writers share (imported as a sibling module: running
``python tools/datasets/make_*.py`` puts ``tools/datasets/`` first on ``sys.path``)."""
import argparse
import json
from typing import Callable

from l2vit.errors import fail


def run_generator(doc: str, generate: Callable[..., dict], num_train: int, num_val: int, argv=None) -> None:
    """``OUT_DIR [--num-train N] [--num-val N] [--seed S] [--no-progress]``: call ``generate`` and print its summary."""
    parser = argparse.ArgumentParser(description=doc.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out_dir', help='dataset root to write (data_root of the config)')
    parser.add_argument('--num-train', type=int, default=num_train, help=f'training images (default: {num_train})')
    parser.add_argument('--num-val', type=int, default=num_val, help=f'validation images (default: {num_val})')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    if args.num_train < 0 or args.num_val < 0:
        fail('--num-train and --num-val must be >= 0')
    summary = generate(args.out_dir, num_train=args.num_train, num_val=args.num_val, seed=args.seed,
                       progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
