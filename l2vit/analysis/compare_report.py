"""Writing out the record of :func:`l2vit.analysis.compare.compare`: ``compare.json`` (every number), ``compare.md``
(the table and what was applied to each backbone), ``compare_curves.png`` (loss and metric against iterations, all
backbones on one chart) and ``compare_tradeoff.png`` (the metric against training time and against FLOPs).

Everything here reads only the JSON-able record, so a saved ``compare.json`` renders again
(:func:`write_outputs`); matplotlib is imported only to plot.
"""
import json
import math
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

__all__ = ['markdown', 'plot_curves', 'plot_tradeoff', 'write_outputs', 'final_metrics', 'run_compare_tool']

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


def run_compare_tool(options: Any, argv: Sequence[str]) -> int:
    """``tools/analysis/compare_backbones.py``: measure (:func:`l2vit.analysis.compare.compare`), write the outputs
    into ``options.out_dir`` and print the table. Returns the exit code, 0."""
    from .compare import compare
    record = compare(options.config, options.backbones, train_iters=options.train,
                     eval_interval=options.eval_interval, out_dir=options.out_dir, time_size=options.time_size,
                     flops_size=options.flops_size, batch=options.batch, warmup=options.warmup,
                     repeats=options.repeats, budget=options.budget, seed=options.seed, lr_factor=options.lr_scale,
                     cfg_options=options.cfg_options, argv=argv)
    paths = write_outputs(record, options.out_dir)
    print()
    print(markdown(record))
    print('wrote ' + ', '.join(paths))
    return 0
