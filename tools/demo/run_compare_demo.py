#!/usr/bin/env python
"""`make demo-compare`: L2ViT against Swin and ConvNeXt (same parameter count) in make demo's Mask R-CNN.

    python tools/demo/run_compare_demo.py [--out-dir work_dirs/demo_compare] [--data-root data/synthetic_coco]
        [--backbones l2vit-t swin-t convnext-t] [--iters 300] [--eval-interval 100]

Writes the synthetic COCO shapes set of `make demo` (unless it is already there), then runs
tools/analysis/compare_backbones.py on configs/demo/mask-rcnn_l2vit-demo_synthetic.py: parameters and FLOPs,
inference and training speed and memory, and a short training of each backbone from the same seed, evaluated at
equal iteration counts. The command is printed before it runs, so it can be rerun by hand.
"""
import argparse
import os.path as osp

from l2vit.apis.demo import COMPARE_DEMO_BACKBONES, COMPARE_DEMO_EVAL_INTERVAL, COMPARE_DEMO_ITERS, compare_demo
from l2vit.errors import error_exit

#: The repository root: every step runs there, and relative paths are relative to it.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out-dir', default='work_dirs/demo_compare')
    parser.add_argument('--data-root', default='data/synthetic_coco')
    parser.add_argument('--backbones', nargs='+', default=list(COMPARE_DEMO_BACKBONES))
    parser.add_argument('--iters', type=int, default=COMPARE_DEMO_ITERS, help='training iterations per backbone')
    parser.add_argument('--eval-interval', type=int, default=COMPARE_DEMO_EVAL_INTERVAL)
    args = parser.parse_args(argv)
    with error_exit():
        compare_demo(ROOT, args.out_dir, args.data_root, args.backbones, args.iters, args.eval_interval)


if __name__ == '__main__':
    main()
