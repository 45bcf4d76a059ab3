"""Rendering of the analyses' records: plain data in, Markdown text or image files out; nothing here measures.

* the benchmark page (:func:`benchmark_section`, :func:`benchmark_page`, :func:`write_benchmark_docs`,
  :func:`plot_benchmark`) of :func:`~l2vit.analysis.benchmark.benchmark_backbones`' records;
* the backbone comparison (:func:`compare_markdown`, :func:`write_compare`) of :func:`~l2vit.analysis.compare`'s;
* the attention drawings (:func:`plot_attention`, :func:`write_attention`) of :func:`~l2vit.analysis.image_attention`'s.

Every table is one :func:`table`. matplotlib and OpenCV are imported by the functions that draw.
"""
import json
import math
import os
import os.path as osp
import textwrap
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .benchmark import hxw

MIB = 2**20
LABELS = {'l2vit-t': 'L²ViT-T', 'l2vit-t-plain': 'L²ViT-T, plain (no CPU fast paths)', 'swin-t': 'Swin-T',
          'vit-s': 'ViT-S/16', 'l2vit-t+compile': 'L²ViT-T, torch.compile',
          'l2vit-t+onnxruntime': 'L²ViT-T, onnxruntime (CPU)', 'l2vit-t+openvino': 'L²ViT-T, OpenVINO (CPU)'}
Record = Dict[str, Any]
#: More of a section after its tables: (record, heading) -> Markdown lines (the tool's targets).
Extra = Optional[Callable[[Dict[str, Any], str], List[str]]]


def fmt(value: Optional[float], digits: int = 2, scale: float = 1.0) -> str:
    return '—' if value is None else f'{value / scale:.{digits}f}'


def fmt_ms(seconds: Optional[float]) -> str:
    """Seconds as ms with 3-4 significant digits."""
    return '—' if seconds is None else fmt(seconds * 1e3, 2 if seconds < 0.01 else 1 if seconds < 1 else 0)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> List[str]:
    """A Markdown table; the first ``left`` columns left-aligned (text), the others right-aligned (numbers)."""
    rule = '|' + '|'.join('---' if i < left else '---:' for i in range(len(header))) + '|'
    return ['| ' + ' | '.join(map(str, header)) + ' |', rule] + ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig: Any, path: str, dpi: int = 100) -> None:
    """Grid and legend on every panel, then the figure to ``path``."""
    for ax in fig.axes:
        ax.grid(True, which='both', alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)


# ----------------------------------------------------------------------------------------------------- benchmark
def _batch(report: Record, mode: str) -> int:
    settings = report['settings']  # (records before per-mode batches have one ``batch``)
    return settings.get('batches', {}).get(mode, settings['batch'])


def machine_text(m: Record) -> str:
    """A record's CPU by model name, the vector/matrix flags and the cores it ran on (and its torch threads)."""
    flags = ', '.join(m['cpu_flags']) if m.get('cpu_flags') else 'flags not recorded'
    threads = f', {m["threads"]} torch threads' if 'threads' in m else ''
    return f'{m["cpu"]} ({flags}), {m.get("cores", m.get("cpus_available"))} cores{threads}'


def _machine(report: Record) -> List[str]:
    m, s, g = report['machine'], report['settings'], report['gemm']
    batches = ''.join(f' ({mode}: {n})' for mode, n in s.get('batches', {}).items() if n != s['batch'])
    gpu = (f' ({m["device_name"]}, CUDA {m["cuda"]}, TF32 matmul {m.get("matmul_allow_tf32")}, cuDNN '
           f'{m.get("cudnn_allow_tf32")})' if m['device'] == 'cuda' else '')
    load = m.get('load_average')
    return [f'- machine: {machine_text(m)}, {m["platform"]}; device {m["device"]}{gpu}'
            + (f'; load average {load[0]:.2f} at the start' if load else ''),
            f'- versions: python {m["python"]}, torch {m["torch"]}, mmengine {m["mmengine"]}, mmdet {m["mmdet"]}, '
            f'mmseg {m["mmseg"]}',
            f'- settings: batch {s["batch"]}{batches}, {s["warmup"]} warm-up steps, median (and min) of '
            f'{s["repeats"]} interleaved rounds, budget {s["budget_s"]:g} s per first warm-up step'
            + (f', {s["autocast"]} autocast (forward and loss; backward outside)' if s.get('autocast') else ''),
            f'- GEMM reference, timed once in every round: {g["dtype"]} {g["op"]} {g["m"]}×{g["k"]} by {g["k"]}×'
            f'{g["n"]}, median {fmt_ms(g["median_s"])} ms, {fmt(g["flops_per_s"], 1, 1e9)} GFLOP/s']


def _mode_table(report: Record, mode: str) -> List[str]:
    ratios = {(r['model'], r['size']): r for r in report['derived']['ratios'] if r['mode'] == mode}
    header = ['size', 'model', 'median ms', 'min ms', 'peak MiB', 'time / Swin-T', 'memory / Swin-T']
    header += ['GFLOP/s', '% of GEMM'] if mode == 'infer' else []
    rows, reasons = [], []
    for e in (e for e in report['results'] if e['mode'] == mode):
        if e['status'] != 'measured':
            reasons.append(f'- {e["size"]} {e["model"]}: {e["status"]}: {e["reason"]}')
            rows.append([e['size'], e['model'], e['status']] + ['—'] * (len(header) - 3))
            continue
        ratio = ratios.get((e['model'], e['size']), {})
        rows.append([e['size'], e['model'], fmt_ms(e['median_s']), fmt_ms(e['min_s']), fmt(e['memory_bytes'], 1, MIB),
                     fmt(ratio.get('time_vs_swin')), fmt(ratio.get('memory_vs_swin'))]
                    + ([fmt(e['flops_per_s'], 1, 1e9), fmt(e['gemm_percent'], 1)] if mode == 'infer' else []))
    return table(header, rows, 2) + ([''] + reasons if reasons else [])


def _detector(report: Record) -> List[str]:
    d = report['settings'].get('detector') or {}
    opt = d.get('optimizer', {})
    widths = '; '.join(f'{LABELS.get(m, m)}: {d["backbones"][m]}, neck in_channels {d["neck_in_channels"][m]}'
                       for m in d.get('backbones', {}))
    return [f'One `model.train_step(data, optim_wrapper)` of the whole Mask R-CNN per step (losses, backward, '
            f'{opt.get("type")} step with lr {opt.get("lr")}, weight decay {opt.get("weight_decay")}), batch '
            f'{_batch(report, "detector-train")} images with {d.get("boxes_per_image")} random gt boxes and masks '
            f'each; `{d.get("config")}` (BN for SyncBN, no pretrained weights) with the backbone swapped ({widths}; '
            f'Swin-T\'s from `{d.get("swin_t_backbone_from")}`).', '']


def _exponents(report: Record) -> List[str]:
    rows: Dict[Tuple[str, str], List[str]] = {}
    for x in report['derived']['exponents']:
        row = rows.setdefault((x['mode'], x['model']), [x['mode'], x['model'], '—', '—', '—', '—'])
        column = 2 if x['quantity'] == 'time' else 4
        row[column:column + 2] = [fmt(x['from_512_to_1536']), fmt(x['fit_from_512'])]
    return table(['mode', 'model', 'time 512²→1536²', 'time fit ≥512²', 'memory 512²→1536²', 'memory fit ≥512²'],
                 list(rows.values()), 2)


def _profile(report: Record, heading: str) -> List[str]:
    """Per backbone mode: each run's self time by direction and its matrix products, then its largest ops."""
    profile = report['profile']
    timed = {(e['model'], e['mode'], e['size']): e['median_s'] for e in report['results']
             if e['status'] == 'measured'}
    lines = ['', f'{heading} Profile: where the step\'s time goes, at {profile["size"]} (batch {profile["batch"]})', '',
             'One step per model and mode after one warm-up step under `torch.profiler`: self time (an op\'s time '
             'less the ops inside it) by direction (backward: inside `loss.backward()`), in ms; the profiler\'s '
             'overhead is in them. Matrix products: mm, addmm, bmm, baddbmm, counted by torch.profiler from their '
             f'shapes. Load average (1 min): {fmt(profile["load_average_before"])} before, '
             f'{fmt(profile["load_average_after"])} after.']
    for mode in profile['modes']:
        rows = []
        for r in (r for r in profile['runs'] if r['mode'] == mode):
            if r['status'] != 'profiled':
                rows.append([r['model'], f'{r["status"]}: {r["reason"]}'] + ['—'] * 10)
                continue
            c = r['clocks']['cpu']
            p = c.get('gemm_products') or {}
            rows.append([r['model'], 'profiled', fmt(r['wall_ms'], 1), r['events'],
                         fmt_ms(timed.get((r['model'], mode, r['size']))), fmt(c['by_direction']['forward'], 1),
                         fmt(c['by_direction']['backward'], 1), fmt(p.get('flop'), 1, 1e9), fmt(p.get('ms'), 1),
                         fmt(100 * p['ms'] / c['total_ms'] if p and c['total_ms'] else None, 1), p.get('calls', '—'),
                         fmt(p.get('flop_per_s'), 1, 1e9)])
        lines += ['', f'{heading}# {mode} {profile["size"]}: the profiled steps (CPU self time)', '']
        lines += table(['model', 'status', 'wall ms', 'events', 'timed median ms', 'forward ms', 'backward ms',
                        'matrix-product GFLOP', 'matrix-product ms', '% of step', 'calls', 'GFLOP/s'], rows, 2)
        for r in (r for r in profile['runs'] if r['mode'] == mode and r['status'] == 'profiled'):
            for clock, summary in r['clocks'].items():
                lines += ['', f'{heading}# {mode} {profile["size"]}, {r["model"]}: largest ops ({clock.upper()})', '']
                lines += table(['op', 'direction', 'ms', '% of step', 'calls'], [
                    [f'`{o["op"]}`', o['direction'], fmt_ms(o['ms'] / 1e3), fmt(o['share'], 1), o['calls']]
                    for o in summary['top_ops']], 2)
    return lines


def benchmark_section(report: Record, extra: Extra = None, heading: str = '###') -> List[str]:
    """The tables of one record, in Markdown (also what the tool prints)."""
    derived = report['derived']
    lines = _machine(report) + ['', 'Times per step in ms, peak tensor memory of one step in MiB (beyond what was '
                                'allocated before it); ratios against Swin-T at the same mode and size; FLOP/s = 2 × '
                                'multiply-adds / median time.']
    for mode in report['settings']['modes']:
        lines += ['', f'{heading} {mode}', ''] + (_detector(report) if mode == 'detector-train' else [])
        lines += _mode_table(report, mode)
    if derived.get('vs_eager'):
        lines += ['', f'{heading} L²ViT-T in other runtimes against torch eager (same rounds)', '']
        lines += table(['size', 'model', 'mode', 'median ms', 'eager median ms', 'time / eager'], [
            [r['size'], r['model'], r['mode'], fmt_ms(r['median_s']), fmt_ms(r['eager_median_s']),
             fmt(r['time_vs_eager'])] for r in derived['vs_eager']], 3)
        lines += [''] + [f'- {name}: ' + ', '.join(f'{k} {v}' for k, v in report['settings'][name].items())
                         for name in ('onnxruntime', 'openvino') if report['settings'].get(name)]
    lines += ['', f'{heading} Scaling exponents (slope of log value against log pixels)', ''] + _exponents(report)
    if derived['checkpoint_memory']:
        lines += ['', f'{heading} Gradient checkpointing: peak memory of train-cp against train', '']
        lines += table(['size', 'model', 'train MiB', 'train-cp MiB', 'train-cp / train'], [
            [c['size'], c['model'], fmt(c['train_bytes'], 1, MIB), fmt(c['train_cp_bytes'], 1, MIB), fmt(c['ratio'])]
            for c in derived['checkpoint_memory']], 2)
    lines += extra(report, heading) if extra else []
    lines += _profile(report, heading) if report.get('profile') else []
    return lines + ([''] + [f'- note: {n}' for n in report['notes']] if report['notes'] else [])


def load_benchmarks(paths: Sequence[str]) -> List[Record]:
    """Saved ``benchmark.json`` records, each checked to be one."""
    from ..errors import ToolError
    records = []
    for path in paths:
        try:
            with open(path, encoding='utf-8') as f:
                records.append(json.load(f))
        except (OSError, ValueError) as err:
            raise ToolError(f'--from-json: cannot read {path} ({err})') from err
        if not isinstance(records[-1], dict) or records[-1].get('schema') != 'l2vit-benchmark/1':
            raise ToolError(f'--from-json: {path} is not a benchmark.json of tools/analysis/benchmark.py')
    return records


def section_title(report: Record) -> str:
    """What tells this run from the others on the page: what was measured, at which sizes, then where."""
    m, s = report['machine'], report['settings']
    what = f'{", ".join(s["modes"])} of {", ".join(f"`{name}`" for name in s["models"])} at {", ".join(s["sizes"])}'
    if s.get('autocast'):
        what += f', {s["autocast"]} autocast'
    if report.get('profile'):
        what += f', profiled at {report["profile"]["size"]}'
    where = f'GPU {m["device_name"]}' if m['device'] == 'cuda' else f'CPU {machine_text(m)}'
    return f'{what} ({where})'


def benchmark_page(reports: Sequence[Record], images: Sequence[str], rerender: str,
                   extra: Extra = None) -> str:
    """The Markdown page of saved records, one section each (with its plot ``images``); ``rerender``: the command
    that renders it again."""
    measured = {e['model'] for r in reports for e in r['results']}
    lines = ['# Speed and memory: L²ViT-T, Swin-T and ViT-S/16 backbones', '',
             'Rendered from the saved runs by the command below; do not edit by hand. Each section is one run, '
             'measured by the command in its first line:', '', f'`{rerender}`', '', 'Models:', '']
    lines += [f'- `{k}`: {v}' for k, v in LABELS.items() if k in measured]
    lines += ['', 'The backbones alone, without pretrained weights (L²ViT-T: `configs/maskrcnn_l2vit.py`; Swin-T: '
              'mmdet\'s; ViT-S/16: mmseg\'s `VisionTransformer`).', '', 'Modes:', '',
              '- `infer`: no_grad forward;', '- `train`: forward, mean of the outputs, backward;',
              '- `train-cp`: the same with `with_cp=True`;',
              '- `detector-train`: one training iteration of the whole Mask R-CNN.', '', 'Runs:', '']
    lines += [f'- {section_title(r)}' for r in reports]
    for report, image in zip(reports, images):
        lines += ['', f'## {section_title(report)}', '', f'Measured by `{report["command"]}` on {report["date"]}.', '']
        lines += benchmark_section(report, extra) + ['', f'![median time against pixels, log-log]({image})']
    return '\n'.join(lines) + '\n'


def plot_benchmark(report: Record, path: str) -> None:
    """Median time against pixels, log-log: one line per model, one panel per mode."""
    modes = report['settings']['modes']
    fig, axes = _pyplot().subplots(1, len(modes), figsize=(5 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for model in dict.fromkeys(e['model'] for e in report['results']):
            points = [(e['pixels'], e['median_s'] * 1e3) for e in report['results']
                      if (e['model'], e['mode'], e['status']) == (model, mode, 'measured')]
            if points:
                ax.plot(*zip(*points), marker='o', label=LABELS.get(model, model))
        ax.set(xscale='log', yscale='log', xlabel='pixels (H × W)', ylabel='median time per step (ms)',
               title=f'{mode} ({report["machine"]["device"]}, batch {_batch(report, mode)})')
    _save(fig, path)


def write_benchmark_docs(reports: Sequence[Record], docs_path: str, rerender: str,
                         extra: Extra = None) -> List[str]:
    """The page and, next to it, each record's plot (``<page>_<device>.png``, numbered when devices repeat)."""
    folder, stem = osp.dirname(docs_path) or '.', osp.splitext(osp.basename(docs_path))[0]
    os.makedirs(folder, exist_ok=True)
    devices = [r['machine']['device'] for r in reports]
    images = [f'{stem}_{d}.png' if devices.count(d) == 1 else f'{stem}_{d}{devices[:i + 1].count(d)}.png'
              for i, d in enumerate(devices)]
    for report, image in zip(reports, images):
        plot_benchmark(report, osp.join(folder, image))
    with open(docs_path, 'w', encoding='utf-8') as f:
        f.write(benchmark_page(reports, images, rerender, extra))
    return [docs_path] + [osp.join(folder, i) for i in images]


# ----------------------------------------------------------------------------------------------------- compare
def _final_metrics(entry: Record) -> Dict[str, Any]:
    evals = (entry.get('training') or {}).get('evals') or []
    return evals[-1]['metrics'] if evals else {}


def compare_markdown(record: Record) -> str:
    """The comparison: one table row per backbone, and what each backbone's optimizer and width are."""
    s, m = record['settings'], record['machine']
    trained = s.get('train_iters') is not None
    metrics = [record['metric']] + ['coco/segm_mAP' for _ in [0] if trained and any(
        'coco/segm_mAP' in _final_metrics(e) for e in record['backbones'].values())]
    header = ['backbone', 'backbone params (M)', 'model params (M)', f'model FLOPs (G) at {hxw(s["flops_shape"])}',
              f'inference (img/s) at {hxw(s["time_shape"])}', 'train iteration (s)', 'train peak memory (MiB)']
    header += [f'{key} at {s["train_iters"]} it' for key in metrics] + ['training time (min)'] if trained else []
    rows = []
    for entry in record['backbones'].values():
        parts = entry.get('complexity') or {}
        backbone, model = parts.get('backbone') or {}, parts.get('model') or {}
        infer, train = entry.get('infer') or {}, entry.get('train') or {}
        row = [entry['label'], fmt(backbone.get('params'), 2, 1e6), fmt(model.get('params'), 2, 1e6),
               fmt(model.get('flops'), 2, 1e9), fmt(infer.get('images_per_s')), fmt(train.get('median_s'), 3),
               fmt(train.get('memory_bytes'), 0, MIB)]
        if trained:
            values = [_final_metrics(entry).get(key) for key in metrics]
            row += [fmt(v, 3) if isinstance(v, float) else '—' for v in values]
            row.append(fmt((entry.get('training') or {}).get('train_s'), 1, 60))
        rows.append(row)
    lines = [f'Config `{record["config"]}` ({record["task"]}); machine: {machine_text(m)}, '
             f'torch {m.get("torch")}; {record["date"]}.', f'Command: `{record["command"]}`', '']
    lines += table(header, rows) + [
        '', f'Whole model, batch {s["time_batch"]}, medians of {s["repeats"]} interleaved rounds after {s["warmup"]} '
        'warm-up: inference = `test_step`, train iteration = `train_step` (losses, backward, optimizer step), peak '
        'memory = the most tensor memory it holds at once. FLOPs: multiply-adds, attention products included.'
        + (f' Training: {s["train_iters"]} iterations, seed {s["seed"]}, evaluated every {s["eval_interval"]}; '
           'training time excludes evaluation.' if trained else ''), '', 'Per backbone (what was swapped, and from '
        'where):', '']
    for entry in record['backbones'].values():
        optimizer = entry['optimizer']
        extras = ', '.join(f'{k} {v}' for k, v in optimizer['optimizer'].items() if k != 'type')
        details = [f'optimizer {optimizer["optimizer"]["type"]} {extras}'] + [
            f'{key} {optimizer[key]}' for key in ('paramwise_cfg', 'constructor', 'recipe_lr', 'lr_scale')
            if optimizer.get(key)]
        lines.append(f'- **{entry["label"]}** (`{entry["builder"]}`, {entry["backbone_params"] / 1e6:.2f} M, outputs '
                     f'{entry["out_channels"]}): ' + '; '.join(details + [
                         f'from `{optimizer.get("source", entry["recipe"])}`'] + entry.get('notes', [])) + '.')
    return '\n'.join(lines) + '\n'


def _plot_compare(record: Record, path: str, tradeoff: bool) -> None:
    """Loss (moving average) and the metric against iterations; or the metric against training time and, at the
    last evaluation, against whole-model FLOPs."""
    fig, (left, right) = _pyplot().subplots(1, 2, figsize=(11, 4))
    metric = record['metric']
    for entry in record['backbones'].values():
        training = entry.get('training') or {}
        evals = [e for e in training.get('evals', []) if isinstance(e['metrics'].get(metric), float)]
        points = [(e['train_s'] / 60 if tradeoff else e['iter'], e['metrics'][metric]) for e in evals]
        losses = [v for v in training.get('losses', []) if not math.isnan(v)]
        if losses and not tradeoff:
            window = np.ones(max(1, len(losses) // 25))
            smooth = np.convolve(losses, window)[:len(losses)] / np.convolve(np.ones(len(losses)), window)[:len(losses)]
            left.plot(range(1, len(losses) + 1), smooth, label=entry['label'])
        if points:
            line, = (left if tradeoff else right).plot(*zip(*points), marker='o', label=entry['label'])
            flops = ((entry.get('complexity') or {}).get('model') or {}).get('flops')
            if tradeoff and flops:
                right.scatter([flops / 1e9], [points[-1][1]], color=line.get_color(), label=entry['label'], s=60)
    if tradeoff:
        left.set(xlabel='training time (min, evaluation excluded)', ylabel=metric, title='accuracy against time')
        right.set(xlabel=f'whole-model FLOPs (G, {hxw(record["settings"]["flops_shape"])})', ylabel=metric,
                  title='final accuracy against FLOPs')
    else:
        left.set(xlabel='iteration', ylabel='training loss (moving average)', title='loss')
        right.set(xlabel='iteration', ylabel=metric, title=f'{metric} on the val split')
    _save(fig, path)


def write_compare(record: Record, out_dir: str) -> List[str]:
    """compare.json, compare.md and (with training) compare_curves.png and compare_tradeoff.png in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [osp.join(out_dir, name) for name in ('compare.json', 'compare.md')]
    with open(paths[0], 'w', encoding='utf-8') as f:
        json.dump(record, f, indent=1, ensure_ascii=False)
    with open(paths[1], 'w', encoding='utf-8') as f:
        f.write(compare_markdown(record))
    if record['settings'].get('train_iters') is not None:
        for name, tradeoff in (('compare_curves.png', False), ('compare_tradeoff.png', True)):
            paths.append(osp.join(out_dir, name))
            _plot_compare(record, paths[-1], tradeoff)
    return paths


# ----------------------------------------------------------------------------------------------------- attention
MAX_COLS = 6  # tiles per row
KIND_COLOR = {'window': '#2a7a1f', 'linear': '#1f4fb0'}


def plot_attention(image: np.ndarray, results: list, point_in: Tuple[float, float], depths: Sequence[int],
                   title: str, path: str) -> None:
    """Every block's tile for one query point, a row per stage (wrapping after :data:`MAX_COLS`): the (BGR) image
    under the block's head-averaged attention (blue: none, red: the tile's own maximum; weightless areas almost
    clear), the query a white cross, a window block's window a white frame; the tile's title (green: window block,
    blue: linear) gives H (entropy / its maximum) and loc (local mass / a uniform distribution's)."""
    from matplotlib.patches import Rectangle
    (h, w), cols = image.shape[:2], max(1, min(max(depths), MAX_COLS))
    first = np.cumsum([0] + [math.ceil(d / cols) for d in depths])
    fig, axes = _pyplot().subplots(first[-1], cols, figsize=(2.2 * cols, (2.2 * h / w + 0.5) * first[-1] + 0.6),
                                   squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for stage in range(len(depths)):
        for j, r in enumerate(r for r in results if r.stage == stage):
            ax, stride, s = axes[first[stage] + j // cols, j % cols], 4 * 2**r.stage, r.statistics
            weights = r.mean_weights.detach().cpu().double().numpy()
            norm = weights / weights.max() if weights.max() > 0 else weights
            ax.imshow(image[..., ::-1])
            ax.imshow(norm, cmap='jet', vmin=0, vmax=1, alpha=0.15 + 0.65 * norm, interpolation='nearest',
                      extent=(0, r.size[1] * stride, r.size[0] * stride, 0))
            if r.window is not None:
                y0, x0, y1, x1 = (v * stride for v in r.window)
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor='white'))
            ax.plot(point_in[1], point_in[0], '+', color='white', markersize=10, markeredgewidth=2)
            ax.set(xlim=(0, w), ylim=(h, 0))
            ax.set_title(f's{r.stage} b{r.block} {r.kind} ({r.num_heads} heads)\nH {fmt(s["entropy"])}/'
                         f'{s["max_entropy"]:.2f} loc {fmt(s["local_mass"])}/{s["uniform_local_mass"]:.2f}',
                         fontsize=7, color=KIND_COLOR[r.kind])
    fig.suptitle(textwrap.fill(title, 18 * cols + 30), fontsize=8)
    _save(fig, path)


def plot_attention_by_depth(stats: Record, path: str) -> None:
    """Entropy and local mass against block depth: window and linear blocks as separate series (each point faint,
    their mean a line), the uniform references dotted."""
    blocks = stats['blocks']
    fig, axes = _pyplot().subplots(2, 1, figsize=(max(6.0, 0.35 * len(blocks) + 3), 6.5), sharex=True)
    for ax, (key, ref, name) in zip(axes, (('entropy', 'max_entropy', 'entropy (nats)'),
                                           ('local_mass', 'uniform_local_mass', 'local mass share'))):
        for (kind, color), marker in zip(KIND_COLOR.items(), 'so'):
            depths = [b['depth'] for b in blocks if b['kind'] == kind]
            values, references = (np.array([[np.nan if b[k] is None else b[k] for b in p['blocks'] if b['kind'] == kind]
                                            for p in stats['points']], dtype=float) for k in (key, ref))
            for row in values:
                ax.scatter(depths, row, color=color, alpha=0.25, s=12, marker=marker)
            ax.plot(depths, np.nanmean(values, axis=0), marker=marker, color=color, label=f'{kind} blocks (mean)')
            ax.plot(depths, np.nanmean(references, axis=0), linestyle=':', color=color, label=f'{kind}: uniform')
        for x in (b['depth'] - 0.5 for b in blocks if b['block'] == 0 and b['depth'] > 0):
            ax.axvline(x, color='0.7', linewidth=0.8, linestyle='--')
        ax.set_ylabel(name)
    axes[1].set_xticks(range(len(blocks)), [f's{b["stage"]}b{b["block"]}' for b in blocks], rotation=60, fontsize=7)
    axes[1].set(ylim=(-0.02, 1.02), xlabel=f'block (depth order); local mass within radius {stats["radius"]:g} tokens')
    axes[0].set_title('Attention concentration by depth')
    _save(fig, path, dpi=110)


def write_attention(found: Record, out_dir: str) -> List[str]:
    """A :func:`plot_attention` PNG per query point (``attention_p<k>_y<Y>_x<X>.png``), ``stats.json`` and
    ``stats_by_depth.png`` of :func:`~l2vit.analysis.image_attention`'s result; their paths."""
    stats, image = found['stats'], found['input']
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for k, ((y, x), point_in, blocks) in enumerate(zip(found['points'], found['points_in'], found['results'])):
        paths.append(osp.join(out_dir, f'attention_p{k}_y{round(y)}_x{round(x)}.png'))
        plot_attention(image, blocks, point_in, found['depths'], f'{osp.basename(stats["image"])}: query y={y:g} '
                       f'x={x:g} (input {image.shape[0]}x{image.shape[1]}); head-averaged attention, each tile '
                       f'scaled to its own max; H: entropy / max (nats); loc: mass within r={stats["radius"]:g} '
                       'tokens / uniform', paths[-1])
    paths += [osp.join(out_dir, 'stats.json'), osp.join(out_dir, 'stats_by_depth.png')]
    with open(paths[-2], 'w') as f:
        json.dump(stats, f, indent=1)
    plot_attention_by_depth(stats, paths[-1])
    return paths
