#!/usr/bin/env python
"""`make demo-ablation`: L2ViT with and without its local concentration module (LCM) in make demo's Mask R-CNN.

    python tools/demo/run_ablation_demo.py [--out-dir work_dirs/demo_ablation] [--data-root data/synthetic_coco]
        [--backbones l2vit-t:full l2vit-t:no-lcm] [--seeds 0 1 2] [--iters 200] [--eval-interval 100]
        [--val-images 50]

Writes the synthetic COCO shapes set of `make demo` (unless it is already there), then runs
tools/analysis/compare_backbones.py on configs/demo/mask-rcnn_l2vit-demo_synthetic.py with the ablation variants of
l2vit/analysis/ablation.py: each trained once per seed under the config's recipe, evaluated at equal iteration
counts, then the trained models' attention concentration and effective receptive fields measured. The command is
printed before it runs; on a real config and dataset, run it with that config (docs/ablation.md).
"""
import argparse
import os.path as osp

from l2vit.apis.demo import (ABLATION_DEMO_BACKBONES, ABLATION_DEMO_EVAL_INTERVAL, ABLATION_DEMO_ITERS,
                             ABLATION_DEMO_SEEDS, ABLATION_DEMO_VAL_IMAGES, compare_demo)
from l2vit.errors import error_exit

#: The repository root: every step runs there, and relative paths are relative to it.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out-dir', default='work_dirs/demo_ablation')
    parser.add_argument('--data-root', default='data/synthetic_coco')
    parser.add_argument('--backbones', nargs='+', default=list(ABLATION_DEMO_BACKBONES))
    parser.add_argument('--seeds', type=int, nargs='+', default=list(ABLATION_DEMO_SEEDS))
    parser.add_argument('--iters', type=int, default=ABLATION_DEMO_ITERS, help='training iterations per run')
    parser.add_argument('--eval-interval', type=int, default=ABLATION_DEMO_EVAL_INTERVAL)
    parser.add_argument('--val-images', type=int, default=ABLATION_DEMO_VAL_IMAGES,
                        help='evaluate on the first N val images (0: all)')
    args = parser.parse_args(argv)
    with error_exit():
        compare_demo(ROOT, args.out_dir, args.data_root, args.backbones, args.iters, args.eval_interval, args.seeds,
                     [f'val_dataloader.dataset.indices={args.val_images}'] if args.val_images else [])


if __name__ == '__main__':
    main()
