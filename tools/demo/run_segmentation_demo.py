#!/usr/bin/env python
"""`make demo-seg`: the whole semantic-segmentation pipeline on a laptop, with built-in synthetic data.

    python tools/demo/run_segmentation_demo.py [--work-dir work_dirs/demo_upernet] [--data-root data/synthetic_ade]

1. writes the synthetic ADE20K-layout outdoor-scenes set (unless it is already there),
2. trains UperNet + a small L2ViT on it from scratch with tools/train.py (configs/demo/, which inherits
   configs/upernet/l2vit-t_upernet_8xb2-160k_ade20k-512x512.py),
3. evaluates the final checkpoint on the held-out val split with tools/test.py (mIoU, mAcc, aAcc),
4. draws the predictions over val images with tools/demo/seg_demo.py,
and prints the metrics, the timings and where everything is. Every step is an ordinary command; each is printed
before it runs, so any of them can be rerun by hand.
"""
import argparse
import os.path as osp

from l2vit.apis.demo import segmentation_demo
from l2vit.errors import error_exit

#: The repository root: every step runs there, and relative paths are relative to it.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo_upernet')
    parser.add_argument('--data-root', default='data/synthetic_ade')
    parser.add_argument('--num-images', type=int, default=6, help='val images to draw predictions on')
    args = parser.parse_args(argv)
    with error_exit():
        segmentation_demo(ROOT, args.work_dir, args.data_root, args.num_images)


if __name__ == '__main__':
    main()
