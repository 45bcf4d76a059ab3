#!/usr/bin/env python
"""`make demo`: the whole detection pipeline on a laptop, with built-in synthetic data.

    python tools/demo/run_detection_demo.py [--work-dir work_dirs/demo_maskrcnn] [--data-root data/synthetic_coco]

1. writes the synthetic COCO-format shapes set (unless it is already there),
2. trains Mask R-CNN + a small L2ViT on it from scratch with tools/train.py (configs/demo/, which inherits
   configs/maskrcnn_l2vit.py),
3. evaluates the final checkpoint on the held-out val split with tools/test.py (COCO bbox and segm mAP),
4. draws the predictions on val images with tools/demo/image_demo.py,
5. draws where each block attends on one val image with tools/analysis/attention_maps.py (linear vs window
   attention, the paper's concentration argument),
and prints the metrics, the timings and where everything is. Every step is an ordinary command; each is printed
before it runs, so any of them can be rerun by hand.
"""
import argparse
import os.path as osp

from l2vit.apis.demo import detection_demo
from l2vit.errors import error_exit

#: The repository root: every step runs there, and relative paths are relative to it.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo_maskrcnn')
    parser.add_argument('--data-root', default='data/synthetic_coco')
    parser.add_argument('--num-images', type=int, default=6, help='val images to draw predictions on')
    args = parser.parse_args(argv)
    with error_exit():
        detection_demo(ROOT, args.work_dir, args.data_root, args.num_images)


if __name__ == '__main__':
    main()
