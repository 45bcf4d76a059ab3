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
import json
import os.path as osp
import sys

from _pipeline import ROOT, data_root_options, last_checkpoint, report, run

CONFIG = 'configs/demo/l2vit-demo_upernet_synthetic.py'
SPLIT_FOLDERS = ('images/training', 'images/validation', 'annotations/training', 'annotations/validation')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo_upernet')
    parser.add_argument('--data-root', default='data/synthetic_ade')
    parser.add_argument('--num-images', type=int, default=6, help='val images to draw predictions on')
    args = parser.parse_args()
    py, timings = sys.executable, {}
    data_root, work_dir = args.data_root.rstrip('/'), args.work_dir

    if all(osp.isdir(osp.join(ROOT, data_root, folder)) for folder in SPLIT_FOLDERS):
        print(f'[demo] using the synthetic dataset already in {data_root}/ (delete it to regenerate)')
    else:
        run([py, 'tools/datasets/make_synthetic_ade.py', data_root], timings, 'generate data')
    data_override = data_root_options(data_root, 'data/synthetic_ade')

    run([py, 'tools/train.py', CONFIG, '--work-dir', work_dir, *data_override], timings, 'train')
    checkpoint = last_checkpoint(work_dir)
    metrics_file = osp.join(work_dir, 'test_metrics.json')
    run([py, 'tools/test.py', CONFIG, checkpoint, '--work-dir', work_dir, '--metrics-out', metrics_file,
         *data_override], timings, 'evaluate')
    pictures = osp.join(work_dir, 'predictions')
    run([py, 'tools/demo/seg_demo.py', osp.join(data_root, 'images', 'validation'), CONFIG, checkpoint, '--out-dir',
         pictures, '--max-images', str(args.num_images)], timings, 'draw')

    with open(osp.join(ROOT, metrics_file)) as f:
        metrics = json.load(f)
    # mmseg's IoUMetric reports percentages.
    report('UperNet + L2ViT (small, from scratch) on the synthetic scenes val split',
           {key: f'{metrics[key]:.2f} %' for key in ('mIoU', 'mAcc', 'aAcc')}, timings, checkpoint, metrics_file,
           pictures, show_total=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
