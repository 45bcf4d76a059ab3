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
import json
import os.path as osp
import sys

from _pipeline import ROOT, data_root_options, last_checkpoint, report, run

CONFIG = 'configs/demo/mask-rcnn_l2vit-demo_synthetic.py'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo_maskrcnn')
    parser.add_argument('--data-root', default='data/synthetic_coco')
    parser.add_argument('--num-images', type=int, default=6, help='val images to draw predictions on')
    args = parser.parse_args()
    py, timings = sys.executable, {}
    data_root, work_dir = args.data_root.rstrip('/'), args.work_dir

    if all(osp.isfile(osp.join(ROOT, data_root, 'annotations', f'instances_{s}2017.json')) for s in ('train', 'val')):
        print(f'[demo] using the synthetic dataset already in {data_root}/ (delete it to regenerate)')
    else:
        run([py, 'tools/datasets/make_synthetic_coco.py', data_root], timings, 'generate data')
    data_override = data_root_options(data_root, 'data/synthetic_coco', [
        f'val_evaluator.ann_file={data_root}/annotations/instances_val2017.json',
        f'test_evaluator.ann_file={data_root}/annotations/instances_val2017.json'])

    run([py, 'tools/train.py', CONFIG, '--work-dir', work_dir, *data_override], timings, 'train')
    checkpoint = last_checkpoint(work_dir)
    metrics_file = osp.join(work_dir, 'test_metrics.json')
    run([py, 'tools/test.py', CONFIG, checkpoint, '--work-dir', work_dir, '--metrics-out', metrics_file,
         *data_override], timings, 'evaluate')
    pictures = osp.join(work_dir, 'predictions')
    run([py, 'tools/demo/image_demo.py', osp.join(data_root, 'val2017'), CONFIG, checkpoint, '--out-dir', pictures,
         '--max-images', str(args.num_images), '--score-thr', '0.5'], timings, 'draw')

    attention = osp.join(work_dir, 'attention')
    first_val = osp.join(data_root, 'val2017', '000000000001.jpg')
    run([py, 'tools/analysis/attention_maps.py', CONFIG, checkpoint, first_val, '--out-dir', attention], timings,
        'attention maps')

    with open(osp.join(ROOT, metrics_file)) as f:
        metrics = json.load(f)
    keys = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50')
    report('Mask R-CNN + L2ViT (small, from scratch) on the synthetic shapes val split',
           {key: f'{metrics[key]:.3f}' for key in keys}, timings, checkpoint, metrics_file, pictures,
           show_total=True)
    print(f'[demo] attention:  {attention}/ (per-block maps, stats.json, stats_by_depth.png)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
