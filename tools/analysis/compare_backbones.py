#!/usr/bin/env python
"""Compare L²ViT-T with Swin-T, ConvNeXt-T and ResNet-50 in the same detector or segmentor.

    python tools/analysis/compare_backbones.py CONFIG --backbones l2vit-t swin-t convnext-t [r50]
        [--train ITERS] [--eval-interval N] [--out-dir DIR] [--time-size HxW] [--flops-size HxW]

CONFIG is one of our detection (mmdet) or segmentation (mmseg) configs. Only the backbone changes, plus what must
follow it: the neck's (or heads') input widths and the optimizer settings of the peer's own library config for that
backbone (mmdet's Swin-T / ConvNeXt-T / R-50 Mask R-CNN configs, mmseg's UperNet ones), all stated in the output.
With a custom-width L²ViT (configs/demo/) every peer is narrowed to the same backbone parameter count.

For each backbone: parameters and FLOPs of the backbone and the whole model at the paper's size (1280×800 COCO,
512×2048 ADE20K); inference images/s and training-iteration time and peak memory of the whole model, measured
interleaved in one process; with --train ITERS: each backbone trained from the same seed on the config's data with
the same schedule (mapped onto ITERS iterations), evaluated (COCO mAP / mIoU) every --eval-interval iterations.
Writes compare.json, compare.md and, with --train, compare_curves.png and compare_tradeoff.png to --out-dir.
"""
import argparse
import json
import math
import os
import os.path as osp
import shlex
import sys
import warnings
from typing import Any, Dict, List, Optional, Sequence

from l2vit.errors import error_exit

warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)


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
                        help='image size for FLOPs (default: 800x1280 detection, 512x2048 segmentation)')
    parser.add_argument('--batch', type=int, default=2, help='images per timed step (default 2)')
    parser.add_argument('--warmup', type=int, default=1, help='warm-up steps per backbone and mode (default 1)')
    parser.add_argument('--repeats', type=int, default=3, help='timed rounds per mode (default 3)')
    parser.add_argument('--budget', type=float, default=120.0, metavar='SECONDS',
                        help='skip timing a backbone whose first warm-up step takes longer (default 120)')
    parser.add_argument('--seed', type=int, help='training seed (default: the config\'s randomness.seed, or 0)')
    parser.add_argument('--lr-scale', type=float,
                        help='factor on the peers\' recipe learning rates (default: the config\'s lr over the L2ViT '
                        'recipe\'s, 1 for our COCO/ADE20K configs)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries first')
    args = parser.parse_args(argv)
    for name in ('batch', 'warmup', 'repeats', 'eval_interval'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be a positive integer, got {value}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from l2vit.analysis import compare

    def save(record: Record) -> None:  # compare.json as far as measured, so an interrupted run keeps it
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
        paths = write_outputs(record, args.out_dir)
    print()
    print(markdown(record))
    print('wrote ' + ', '.join(paths))
    return 0


# ---------------------------------------------------------------------------------------------------------- rendering
Record = Dict[str, Any]
MIB = 2**20


def _fmt(value: Optional[float], scale: float = 1.0, digits: int = 2) -> str:
    return '—' if value is None else f'{value / scale:.{digits}f}'


def final_metrics(entry: Dict[str, Any]) -> Dict[str, float]:
    """The metrics of a backbone's last evaluation (empty without training)."""
    evals = (entry.get('training') or {}).get('evals') or []
    return evals[-1]['metrics'] if evals else {}


def _metric_keys(record: Record) -> List[str]:
    """The metrics shown in the table: the task's main one first, then mask mAP where there is one."""
    keys = [record['metric']]
    for entry in record['backbones'].values():
        if 'coco/segm_mAP' in final_metrics(entry) and 'coco/segm_mAP' not in keys:
            keys.append('coco/segm_mAP')
    return keys


def _metric_text(value: Any) -> str:
    return f'{value:.3f}' if isinstance(value, float) and value <= 1 else _fmt(value) if isinstance(
        value, float) else '—'


def markdown(record: Record) -> str:
    """The comparison as Markdown: the settings, one table row per backbone, and what each backbone's optimizer
    and width are (and where they come from)."""
    s = record['settings']
    fh, fw = s['flops_shape']
    th, tw = s['time_shape']
    trained = s.get('train_iters') is not None
    metric_keys = _metric_keys(record) if trained else []
    head = ['backbone', 'backbone params (M)', 'model params (M)', f'model FLOPs (G) at {fw}×{fh}',
            f'inference (img/s) at {tw}×{th}', 'train iteration (s)', 'train peak memory (MiB)']
    if trained:
        head += [f'{key} at {s["train_iters"]} it' for key in metric_keys] + ['training time (min)']
    lines = [f'Config `{record["config"]}` ({record["task"]}); machine: {record["machine"].get("cpu")}, '
             f'{record["machine"].get("threads")} threads, torch {record["machine"].get("torch")}; {record["date"]}.',
             f'Command: `{record["command"]}`', '',
             '| ' + ' | '.join(head) + ' |', '|' + '|'.join(['---'] + ['---:'] * (len(head) - 1)) + '|']
    for name, entry in record['backbones'].items():
        complexity = entry.get('complexity') or {}
        infer, train = entry.get('infer') or {}, entry.get('train') or {}
        cells = [entry['label'], _fmt((complexity.get('backbone') or {}).get('params'), 1e6),
                 _fmt((complexity.get('model') or {}).get('params'), 1e6),
                 _fmt((complexity.get('model') or {}).get('flops'), 1e9),
                 _fmt(infer.get('images_per_s')), _fmt(train.get('median_s'), digits=3),
                 _fmt(train.get('memory_bytes'), MIB, 0)]
        if trained:
            metrics = final_metrics(entry)
            cells += [_metric_text(metrics.get(key)) for key in metric_keys]
            cells.append(_fmt((entry.get('training') or {}).get('train_s'), 60, 1))
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', f'Timing: whole model, batch {s["time_batch"]}, {s["warmup"]} warm-up and {s["repeats"]} timed '
              'rounds, every backbone interleaved in one process (medians); inference = `test_step` (preprocessing '
              'and prediction), train iteration = `train_step` (losses, backward, optimizer step); peak memory = '
              'the most tensor memory the training iteration holds at once. FLOPs: multiply-adds, attention '
              'products included (l2vit.analysis.flops).']
    if trained:
        lines.append(f'Training: {s["train_iters"]} iterations per backbone, seed {s["seed"]}, the same data and '
                     f'schedule, evaluated every {s["eval_interval"]} iterations; training time excludes '
                     'evaluation.')
    lines += ['', 'Per backbone (what was swapped, and from where):', '']
    for name, entry in record['backbones'].items():
        optimizer = entry['optimizer']
        opt = optimizer['optimizer']
        extras = ', '.join(f'{k} {v}' for k, v in opt.items() if k not in ('type', 'lr'))
        text = (f'- **{entry["label"]}** (`{entry["builder"]}`, {entry["backbone_params"] / 1e6:.2f} M, outputs '
                f'{entry["out_channels"]}): optimizer {opt["type"]} lr {opt["lr"]:.3g}, {extras}')
        if optimizer.get('paramwise_cfg'):
            text += f'; paramwise_cfg {optimizer["paramwise_cfg"]}'
        if optimizer.get('constructor'):
            text += f'; constructor {optimizer["constructor"]}'
        if optimizer.get('lr_scale') is not None:
            text += f' (recipe lr {optimizer["recipe_lr"]:.3g} × {optimizer["lr_scale"]:.3g})'
        text += f'; from `{optimizer.get("source", entry["recipe"])}`'
        if entry.get('notes'):
            text += '; ' + '; '.join(entry['notes'])
        lines.append(text + '.')
    return '\n'.join(lines) + '\n'


def _smooth(values: Sequence[float], window: int) -> List[float]:
    out, total, kept = [], 0.0, []
    for value in values:
        kept.append(value)
        total += value
        if len(kept) > window:
            total -= kept.pop(0)
        out.append(total / len(kept))
    return out


def _plt():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(plt: Any, fig: Any, path: str) -> None:
    """Grid and legend on every panel, then the figure to ``path``."""
    for ax in fig.axes:
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(record: Record, path: str) -> None:
    """Training loss (moving average) and the evaluation metric against iterations, every backbone on one chart."""
    plt = _plt()
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for entry in record['backbones'].values():
        training = entry.get('training') or {}
        losses = [v for v in training.get('losses', []) if not math.isnan(v)]
        if losses:
            window = max(1, len(losses) // 25)
            loss_ax.plot(range(1, len(losses) + 1), _smooth(losses, window), label=entry['label'])
        points = [(e['iter'], e['metrics'].get(record['metric'])) for e in training.get('evals', [])]
        points = [p for p in points if isinstance(p[1], float)]
        if points:
            metric_ax.plot(*zip(*points), marker='o', label=entry['label'])
    loss_ax.set(xlabel='iteration', ylabel='training loss (moving average)', title='loss')
    metric_ax.set(xlabel='iteration', ylabel=record['metric'], title=f'{record["metric"]} on the val split')
    _save(plt, fig, path)


def plot_tradeoff(record: Record, path: str) -> None:
    """The metric against training time (each evaluation) and, at the last evaluation, against whole-model FLOPs."""
    plt = _plt()
    fig, (time_ax, flops_ax) = plt.subplots(1, 2, figsize=(11, 4))
    fh, fw = record['settings']['flops_shape']
    for entry in record['backbones'].values():
        evals = (entry.get('training') or {}).get('evals') or []
        points = [(e['train_s'] / 60, e['metrics'].get(record['metric'])) for e in evals]
        points = [p for p in points if isinstance(p[1], float)]
        if points:
            line, = time_ax.plot(*zip(*points), marker='o', label=entry['label'])
            flops = ((entry.get('complexity') or {}).get('model') or {}).get('flops')
            if flops:
                flops_ax.scatter([flops / 1e9], [points[-1][1]], color=line.get_color(), label=entry['label'], s=60)
    time_ax.set(xlabel='training time (min, evaluation excluded)', ylabel=record['metric'],
                title='accuracy against training time')
    flops_ax.set(xlabel=f'whole-model FLOPs (G, {fw}×{fh})', ylabel=record['metric'],
                 title='final accuracy against FLOPs')
    _save(plt, fig, path)


def write_outputs(record: Record, out_dir: str) -> List[str]:
    """Write compare.json, compare.md and (with training) the two plots into ``out_dir``; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [osp.join(out_dir, 'compare.json'), osp.join(out_dir, 'compare.md')]
    with open(paths[0], 'w', encoding='utf-8') as f:
        json.dump(record, f, indent=1, ensure_ascii=False)
    with open(paths[1], 'w', encoding='utf-8') as f:
        f.write(markdown(record))
    if record['settings'].get('train_iters') is not None:
        paths.append(osp.join(out_dir, 'compare_curves.png'))
        plot_curves(record, paths[-1])
        paths.append(osp.join(out_dir, 'compare_tradeoff.png'))
        plot_tradeoff(record, paths[-1])
    return paths


if __name__ == '__main__':
    sys.exit(main())
