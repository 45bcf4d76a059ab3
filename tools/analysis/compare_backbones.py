#!/usr/bin/env python
"""Compare L²ViT-T with Swin-T, ConvNeXt-T and ResNet-50 in the same detector or segmentor.

    python tools/analysis/compare_backbones.py CONFIG --backbones l2vit-t swin-t convnext-t [r50]
        [--train ITERS] [--eval-interval N] [--out-dir DIR] [--time-size HxW] [--flops-size HxW]

CONFIG is one of our detection (mmdet) or segmentation (mmseg) configs. Only the backbone changes, plus what must
follow it: the neck's (or heads') input widths and the optimizer settings of the library's own config for that head
and peer (mmdet's Swin-T / R-50 DINO and Mask2Former configs, mmseg's Mask2Former ones; otherwise, and for a peer the
library has no such config for, its Mask R-CNN / UperNet config), all stated in the output.
With a custom-width L²ViT (configs/demo/) every peer is narrowed to the same backbone parameter count.

For each backbone: parameters and FLOPs of the backbone and the whole model at the papers' size (H×W: 800x1280 for
Mask R-CNN-style COCO heads, 800x1333 DINO, 1024x1024 Mask2Former COCO, 512x2048 UperNet, 512x512 Mask2Former ADE20K);
inference images/s and training-iteration time and peak memory of the whole model, measured
interleaved in one process; with --train ITERS: each backbone trained from the same seed on the config's data with
the same schedule (mapped onto ITERS iterations), evaluated (COCO mAP / mIoU) every --eval-interval iterations.
Writes compare.json, compare.md and, with --train, compare_curves.png and compare_tradeoff.png to --out-dir.

Ablations of the local concentration module: --backbones l2vit-t:full l2vit-t:no-lcm l2vit-t:window-only
[l2vit-t:linear-only] (l2vit/analysis/ablation.py) trains the config's L2ViT and its variants under the config's own
recipe; with --seed S1 S2 S3 and --train, ablation.json, ablation.md (mean ± std over seeds, parameter counts,
attention entropy / local mass and effective receptive fields by block) and ablation_*.png are written too.
"""
import argparse
import json
import os
import os.path as osp
import shlex
import sys
from typing import Optional, Sequence

from l2vit.errors import error_exit


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    from l2vit.apis.cli import image_size
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='a detection or segmentation config of ours (configs/mask_rcnn, upernet, ...)')
    parser.add_argument('--backbones', nargs='+', default=['l2vit-t', 'swin-t', 'convnext-t'], metavar='NAME',
                        help='l2vit-t, swin-t, convnext-t, r50 (default: l2vit-t swin-t convnext-t)')
    parser.add_argument('--train', type=int, metavar='ITERS', help='also train each backbone ITERS iterations')
    parser.add_argument('--eval-interval', type=int, metavar='N', help='evaluate every N iterations (default ITERS/2)')
    parser.add_argument('--out-dir', default='work_dirs/compare_backbones', help='where the outputs go')
    parser.add_argument('--time-size', type=image_size, metavar='N|HxW',
                        help='image size for the timings (default: the FLOPs size)')
    parser.add_argument('--flops-size', type=image_size, metavar='N|HxW',
                        help='image size HxW for FLOPs (default: the papers\' for the head, e.g. 800x1280 Mask R-CNN)')
    parser.add_argument('--batch', type=int, default=2, help='images per timed step (default 2)')
    parser.add_argument('--warmup', type=int, default=1, help='warm-up steps per backbone and mode (default 1)')
    parser.add_argument('--repeats', type=int, default=3, help='timed rounds per mode (default 3)')
    parser.add_argument('--budget', type=float, default=120.0, metavar='SECONDS',
                        help='skip timing a backbone whose first warm-up step takes longer (default 120)')
    parser.add_argument('--seed', type=int, nargs='+', metavar='SEED',
                        help='training seed(s); several: each backbone trained once per seed, under OUT_DIR/seed<S> '
                        '(default: the config\'s randomness.seed, or 0)')
    parser.add_argument('--erf-images', type=int, default=4, metavar='N',
                        help='with ablation variants (l2vit-t:<variant>) and --train: val images on which the trained '
                        'models\' attention and effective receptive fields are measured (default 4)')
    parser.add_argument('--lr-scale', type=float,
                        help='factor on the peers\' recipe learning rates (default: the config\'s lr over the L2ViT '
                        'recipe\'s, 1 for our COCO/ADE20K configs)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries first')
    args = parser.parse_args(argv)
    for name in ('batch', 'warmup', 'repeats', 'eval_interval', 'erf_images'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be a positive integer, got {value}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from l2vit.analysis import compare, report

    def save(record: dict) -> None:  # compare.json as far as measured, so an interrupted run keeps it
        os.makedirs(args.out_dir, exist_ok=True)
        with open(osp.join(args.out_dir, 'compare.json'), 'w', encoding='utf-8') as f:
            json.dump(record, f, indent=1, ensure_ascii=False)

    with error_exit():
        record = compare(args.config, args.backbones, train_iters=args.train, eval_interval=args.eval_interval,
                         out_dir=args.out_dir, time_size=args.time_size, flops_size=args.flops_size,
                         batch=args.batch, warmup=args.warmup, repeats=args.repeats, budget=args.budget,
                         seed=args.seed, lr_factor=args.lr_scale, cfg_options=args.cfg_options, progress=save,
                         command=' '.join(shlex.quote(a) for a in ['python', 'tools/analysis/compare_backbones.py',
                                                                   *argv]))
        paths = report.write_compare(record, args.out_dir)
        if args.train and any(':' in name for name in args.backbones):  # the LCM ablation's measurements
            from l2vit.analysis.ablation import write_ablation
            paths += write_ablation(record, args.out_dir, images=args.erf_images)
    print()
    print(report.compare_markdown(record))
    print('wrote ' + ', '.join(paths))
    return 0


if __name__ == '__main__':
    sys.exit(main())
