#!/usr/bin/env python
"""Time and memory of the L²ViT-T backbone against Swin-T (mmdet) and ViT-S/16 (mmseg), and of a whole Mask R-CNN
training iteration with L²ViT-T against Swin-T, in one process; the page docs/benchmarks.md rendered from the results.

    python tools/analysis/benchmark.py [--sizes 224 512 800x1333 ...] [--modes infer train train-cp detector-train]
        [--models l2vit-t swin-t vit-s] [--compile] [--onnxruntime] [--openvino] [--repeats 5] [--warmup 2]
        [--budget 60] [--batch N] [--device cpu|cuda] [--threads N] [--autocast bf16|fp16] [--no-flops]
        [--profile [N|HxW]] [--note TEXT] [--config CONFIG]
        [--out-dir work_dirs/benchmark] [--docs docs/benchmarks.md]
    python tools/analysis/benchmark.py --from-json A.json [B.json ...] --docs docs/benchmarks.md

The backbones are built without pretrained weights: ``l2vit-t`` (the backbone of ``--config``, default
``configs/maskrcnn_l2vit.py``, BN for SyncBN), ``swin-t`` (mmdet's ``swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py``),
``vit-s`` (mmseg's ``VisionTransformer`` as ViT-S/16, global softmax attention); ``--compile`` adds
``l2vit-t+compile`` (infer, train), ``--onnxruntime`` / ``--openvino`` L²ViT-T exported to ONNX with dynamic sizes
and run by that runtime on the CPU (infer; their time over eager L²ViT-T's is on the page). Modes: ``infer`` (eval,
no_grad forward), ``train`` (forward, loss = sum of the outputs' means, backward), ``train-cp`` (the same with
``with_cp=True``) and, only when named, ``detector-train``: one ``model.train_step`` of the whole Mask R-CNN of
``--config`` and of the same config with Swin-T's backbone (batch 2 unless ``--batch``; the issue's run:
``--modes detector-train --sizes 800x1333``).

Per mode and size: ``--warmup`` steps of each model, ``--repeats`` interleaved rounds (median and minimum time), the
peak tensor memory of one more step, and for ``infer`` FLOP/s against an fp32 2048³ GEMM timed in the same rounds
(``--no-flops`` skips the counting). A model whose first warm-up step at a size takes longer than ``--budget``
seconds is skipped there and at the larger sizes of that mode. Derived: ratios against Swin-T, scaling exponents,
the train-cp / train memory ratio, and the project's targets (:data:`TARGETS`, evaluated when rendering).
``--autocast bf16|fp16``: forward and loss under ``torch.autocast`` (backward outside), the detector iteration with
mmengine's ``AmpOptimWrapper`` (GPU only). ``--profile [N|HxW]``: also profile one step of each model and backbone
mode with ``torch.profiler`` and sum its ops' self time by op family and direction (``l2vit/analysis/op_profile.py``);
e.g. the page's profile: ``--sizes 512 --modes train --models l2vit-t swin-t --threads 2 --profile``. ``--note TEXT``
(repeatable) records a note.

Writes ``benchmark.json`` (everything measured) and ``benchmark.png`` (time against pixels, log-log) to ``--out-dir``
and prints the tables; ``--docs PATH`` also writes the Markdown page rendered from the JSON alone, and
``--from-json`` renders it again from saved runs (one section each) without measuring.
"""
import argparse
import json
import os
import os.path as osp
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
# mmdet's Swin calls torch.utils.checkpoint without use_reentrant (with_cp=True); the warning is theirs to fix.
warnings.filterwarnings('ignore', message='torch.utils.checkpoint: the use_reentrant parameter', category=UserWarning)

from l2vit.apis.cli import image_size  # noqa: E402
from l2vit.errors import ToolError, error_exit  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = 'l2vit-benchmark/1'
MODELS = ('l2vit-t', 'swin-t', 'vit-s')
DETECTOR_MODE = 'detector-train'
MODES = ('infer', 'train', 'train-cp', DETECTOR_MODE)
DEFAULT_SIZES = ('224', '512', '800x1333', '1024', '1536', '2048')
AUTOCAST_DTYPES = {'bf16': 'bfloat16', 'fp16': 'float16'}
DTYPE_NAMES = {'float32': 'fp32', 'bfloat16': 'bf16', 'float16': 'fp16'}
LABELS = {'l2vit-t': 'L²ViT-T', 'swin-t': 'Swin-T', 'vit-s': 'ViT-S/16', 'l2vit-t+compile': 'L²ViT-T, torch.compile',
          'l2vit-t+onnxruntime': 'L²ViT-T, onnxruntime (CPU)', 'l2vit-t+openvino': 'L²ViT-T, OpenVINO (CPU)'}
MIB = 2**20
Report = Dict[str, Any]


def _target(key: str, text: str, op: str, limit: float, table: str, field: str, **where: str) -> Dict[str, Any]:
    """A target on ``field`` of the L²ViT-T row of ``table`` (``results`` or a table of the record's ``derived``)
    whose keys equal ``where``."""
    return dict(key=key, text=text, op=op, limit=limit, table=table, field=field, where=dict(model='l2vit-t', **where))


def _vs_swin(mode: str, size: str, quantity: str, limit: float, key: Optional[str] = None,
             what: Optional[str] = None) -> Dict[str, Any]:
    height, width = size.split('x')
    shown = f'{height}²' if height == width else f'{height}×{width}'
    what = what or {'time': 'time', 'memory': 'peak memory'}[quantity]
    return _target(key or f'{mode}_{quantity}_vs_swin_{size}', f'{mode} at {shown}: L²ViT-T / Swin-T {what} ≤ '
                   f'{limit:.2f}', '<=', limit, 'ratios', f'{quantity}_vs_swin', mode=mode, size=size)


#: The project's targets (from its issues). The detector-train limits (not slower, not bigger than Mask R-CNN
#: Swin-T) are ours; the issue asks for those ratios to be measured.
TARGETS = (
    _vs_swin('infer', '800x1333', 'time', 0.90, key='latency_vs_swin', what='latency'),
    _vs_swin('infer', '800x1333', 'memory', 0.90, key='memory_vs_swin'),
    _target('time_exponent', 'infer: L²ViT-T time exponent (log time / log pixels) from 512² to 1536² ≤ 1.10', '<=',
            1.10, 'exponents', 'from_512_to_1536', mode='infer', quantity='time'),
    _target('gemm_percent', 'infer at 800×1333: L²ViT-T FLOP/s ≥ 70 % of the same-process fp32 GEMM', '>=', 70.0,
            'results', 'gemm_percent', mode='infer', size='800x1333'),
    _target('checkpoint_memory', '800×1333: L²ViT-T train-cp peak memory ≤ 0.6 × train', '<=', 0.60,
            'checkpoint_memory', 'ratio', size='800x1333'),
    *(_vs_swin('train', size, quantity, 0.90) for size in ('512x512', '800x1333', '1536x1536')
      for quantity in ('time', 'memory')),
    _vs_swin('train-cp', '800x1333', 'memory', 1.00),
    *(_vs_swin(DETECTOR_MODE, '800x1333', quantity, 1.00, what=f'Mask R-CNN iteration {what}')
      for quantity, what in (('time', 'time'), ('memory', 'peak memory'))),
)


def target_value(report: Report, target: Dict[str, Any]) -> Optional[float]:
    """The measured value of ``target`` in a record: its field of the first row of its table that matches."""
    table = report['derived'][target['table']] if target['table'] != 'results' else [
        e for e in report['results'] if e['status'] == 'measured']
    return next((row[target['field']] for row in table
                 if all(row.get(k) == v for k, v in target['where'].items())), None)


# ---------------------------------------------------------------------------------------------------------- options
def command_line(argv: Sequence[str]) -> str:
    return ' '.join(shlex.quote(a) for a in ['python', 'tools/analysis/benchmark.py', *argv])


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', nargs='+', type=image_size, default=[image_size(s) for s in DEFAULT_SIZES],
                        metavar='N|HxW', help=f'input sizes (default: {" ".join(DEFAULT_SIZES)})')
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES[:3]),
                        help=f'default: {" ".join(MODES[:3])}; {DETECTOR_MODE} (a whole Mask R-CNN training '
                        'iteration, slow on CPU) only when named')
    parser.add_argument('--models', nargs='+', choices=MODELS, default=list(MODELS), help='default: all')
    parser.add_argument('--compile', action='store_true', help='also time l2vit-t+compile (infer and train)')
    parser.add_argument('--onnxruntime', action='store_true',
                        help='also time l2vit-t+onnxruntime: L²ViT-T exported to ONNX (dynamic sizes) in '
                        'onnxruntime\'s CPU execution provider (infer only; needs the [deploy] extra)')
    parser.add_argument('--openvino', action='store_true',
                        help='also time l2vit-t+openvino: the same exported file in OpenVINO on the CPU (infer only; '
                        'needs pip install openvino)')
    parser.add_argument('--batch', type=int, help=f'images per step in every mode (default 1; {DETECTOR_MODE}: 2)')
    parser.add_argument('--warmup', type=int, default=2, help='warm-up steps per model and size (default 2)')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds per size (default 5)')
    parser.add_argument('--budget', type=float, default=60.0, metavar='SECONDS',
                        help='skip a model at a size and larger ones when its first warm-up step takes longer '
                        '(default 60)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), help='default: cuda if available, else cpu')
    parser.add_argument('--threads', type=int, help='torch intra-op threads (default: torch\'s default)')
    parser.add_argument('--autocast', choices=tuple(AUTOCAST_DTYPES),
                        help='measure in mixed precision: forward and loss under torch.autocast in this dtype '
                        f'({DETECTOR_MODE}: mmengine\'s AmpOptimWrapper, GPU only); default fp32')
    parser.add_argument('--no-flops', action='store_true', help='do not count FLOPs (no FLOP/s, no %% of GEMM)')
    parser.add_argument('--profile', nargs='?', const=True, type=image_size, metavar='N|HxW',
                        help='also profile one step of each model and backbone mode (not detector-train) at this size '
                        '(alone: the first of --sizes) and break its self time down by op family and direction')
    parser.add_argument('--note', action='append', metavar='TEXT',
                        help='a note to record in the JSON and print with the tables (repeatable)')
    parser.add_argument('--config', default=osp.relpath(ROOT / 'configs' / 'maskrcnn_l2vit.py'),
                        help='the Mask R-CNN config whose L2ViT (and whole detector) is measured (default: this '
                        'repository\'s configs/maskrcnn_l2vit.py)')
    parser.add_argument('--out-dir', default=osp.join('work_dirs', 'benchmark'),
                        help='where benchmark.json and benchmark.png go (default work_dirs/benchmark)')
    parser.add_argument('--docs', metavar='PATH', help='also write a Markdown page (e.g. docs/benchmarks.md)')
    parser.add_argument('--from-json', nargs='+', metavar='FILE',
                        help='measure nothing: print (and with --docs render) saved benchmark.json files')
    args = parser.parse_args(argv)
    for name in ('batch', 'warmup', 'repeats', 'threads'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name} must be a positive integer, got {value}')
    if not args.budget > 0:
        parser.error(f'--budget must be a positive number of seconds, got {args.budget}')
    if args.profile and not [mode for mode in args.modes if mode != DETECTOR_MODE]:
        parser.error(f'--profile profiles the backbone modes; {DETECTOR_MODE} is not profiled')
    if args.from_json and (args.profile or args.note or args.autocast):
        parser.error('--profile, --note and --autocast measure or record a new run; --from-json renders saved ones')
    if args.profile is True:
        args.profile = args.sizes[0]
    return args


def load_report(path: str) -> Report:
    """A saved ``benchmark.json``, checked to be one."""
    if not osp.isfile(path):
        raise ToolError(f'--from-json: no such file: {path}')
    try:
        with open(path, encoding='utf-8') as f:
            report = json.load(f)
    except (OSError, ValueError) as err:
        raise ToolError(f'--from-json: cannot read {path} as JSON ({err})') from err
    if not isinstance(report, dict) or report.get('schema') != SCHEMA:
        raise ToolError(f'--from-json: {path} is not a benchmark.json of this tool (no "schema": "{SCHEMA}")')
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    with error_exit():
        if args.from_json:
            json_paths = [osp.normpath(p) for p in args.from_json]
            reports = [load_report(p) for p in json_paths]
        else:
            from l2vit.analysis import benchmark_backbones
            report = benchmark_backbones(
                args.config, args.sizes, modes=args.modes, models=args.models, device=args.device,
                threads=args.threads, batch=args.batch, warmup=args.warmup, repeats=args.repeats, budget=args.budget,
                compile=args.compile, runtimes=[r for r in ('onnxruntime', 'openvino') if getattr(args, r)],
                autocast=args.autocast, flops=not args.no_flops, profile=args.profile, export_dir=args.out_dir,
                notes=args.note or (), command=command_line(argv))
            os.makedirs(args.out_dir, exist_ok=True)
            json_paths = [osp.normpath(osp.join(args.out_dir, 'benchmark.json'))]
            with open(json_paths[0], 'w', encoding='utf-8') as f:
                json.dump(report, f, indent=1, ensure_ascii=False)
            plot(report, osp.join(args.out_dir, 'benchmark.png'))
            reports = [report]
        for report in reports:
            print_report(report)
            print()
        if not args.from_json:
            print(f'wrote {json_paths[0]} and {osp.join(args.out_dir, "benchmark.png")}')
        if args.docs:
            write_docs(reports, json_paths, args.docs)
    return 0


# ---------------------------------------------------------------------------------------------------------- rendering
def fmt(value: Optional[float], digits: int = 2) -> str:
    return '—' if value is None else f'{value:.{digits}f}'


def fmt_ms(seconds: Optional[float]) -> str:
    if seconds is None:
        return '—'
    ms = seconds * 1e3
    return f'{ms:.2f}' if ms < 10 else f'{ms:.1f}' if ms < 1000 else f'{ms:.0f}'


def fmt_mib(nbytes: Optional[int]) -> str:
    return '—' if nbytes is None else f'{nbytes / MIB:.1f}'


def plural(count: int, word: str) -> str:
    return f'{count} {word}' if count == 1 else f'{count} {word}s'


def _row(cells: Sequence[str]) -> str:
    return '| ' + ' | '.join(cells) + ' |'


def _table(header: Sequence[str], rows: List[Sequence[str]], left: Sequence[int] = (0, 1)) -> List[str]:
    """A Markdown table; the columns in ``left`` are left-aligned, the others (numbers) right-aligned."""
    rule = ['---' if i in left else '---:' for i in range(len(header))]
    return [_row(header), '|' + '|'.join(rule) + '|'] + [_row(r) for r in rows]


def mode_table(report: Report, mode: str) -> List[str]:
    entries = [e for e in report['results'] if e['mode'] == mode]
    ratios = {(r['model'], r['size']): r for r in report['derived']['ratios'] if r['mode'] == mode}
    header = ['size', 'model', 'median ms', 'min ms', 'peak MiB', 'time / Swin-T', 'memory / Swin-T']
    if mode == 'infer':
        header += ['GFLOP/s', '% of GEMM']
    rows, reasons = [], []
    for e in entries:
        ratio = ratios.get((e['model'], e['size']), {})
        if e['status'] != 'measured':
            reasons.append(f'{e["size"]} {e["model"]}: {e["status"]}: {e["reason"]}')
            rows.append([e['size'], e['model'], e['status']] + ['—'] * (len(header) - 3))
            continue
        row = [e['size'], e['model'], fmt_ms(e['median_s']), fmt_ms(e['min_s']), fmt_mib(e['memory_bytes']),
               fmt(ratio.get('time_vs_swin')), fmt(ratio.get('memory_vs_swin'))]
        if mode == 'infer':
            flops = e['flops_per_s']
            row += [fmt(flops / 1e9 if flops is not None else None, 1), fmt(e['gemm_percent'], 1)]
        rows.append(row)
    return _table(header, rows) + ([''] + [f'- {r}' for r in reasons] if reasons else [])


def batch_of(report: Report, mode: str) -> int:
    """Images per step in ``mode`` (records before per-mode batches have one ``batch``)."""
    settings = report['settings']
    return settings.get('batches', {}).get(mode, settings['batch'])


def detector_lines(report: Report) -> List[str]:
    """What a ``detector-train`` step is, from the record's ``settings.detector``."""
    d = report['settings'].get('detector') or {}
    widths = '; '.join(f'{LABELS.get(m, m)}: {d["backbones"][m]}, neck in_channels {d["neck_in_channels"][m]}'
                       for m in d.get('backbones', {}))
    opt = d.get('optimizer', {})
    return [f'One training iteration of the whole Mask R-CNN + FPN per step, as mmengine\'s runner does it: '
            f'`model.train_step(data, optim_wrapper)` (data preprocessor, losses, backward, {opt.get("type")} step '
            f'with lr {opt.get("lr")} and weight decay {opt.get("weight_decay")}, zero_grad), batch '
            f'{batch_of(report, DETECTOR_MODE)} images with {d.get("boxes_per_image")} random gt boxes, labels and '
            f'masks each. The same config, `{d.get("config")}` (BN for SyncBN, no pretrained weights), apart from the '
            f'backbone ({widths}; Swin-T\'s from `{d.get("swin_t_backbone_from")}`). Ratios: Mask R-CNN L²ViT-T '
            'against Mask R-CNN Swin-T.', '']


def vs_eager_table(report: Report) -> List[str]:
    """L²ViT-T compiled or in onnxruntime against torch eager L²ViT-T, same mode and size, same rounds."""
    rows = [[r['size'], r['model'], r['mode'], fmt_ms(r['median_s']), fmt_ms(r['eager_median_s']),
             fmt(r['time_vs_eager'])] for r in report['derived'].get('vs_eager', [])]
    return _table(['size', 'model', 'mode', 'median ms', 'eager median ms', 'time / eager'], rows, left=(0, 1, 2))


def exponent_table(report: Report) -> List[str]:
    rows = {}
    for x in report['derived']['exponents']:
        row = rows.setdefault((x['mode'], x['model']), [x['mode'], x['model'], '—', '—', '—', '—'])
        column = 2 if x['quantity'] == 'time' else 4
        row[column:column + 2] = [fmt(x['from_512_to_1536']), fmt(x['fit_from_512'])]
    return _table(['mode', 'model', 'time 512²→1536²', 'time fit ≥512²', 'memory 512²→1536²', 'memory fit ≥512²'],
                  list(rows.values()))


def checkpoint_table(report: Report) -> List[str]:
    rows = [[c['size'], c['model'], fmt_mib(c['train_bytes']), fmt_mib(c['train_cp_bytes']), fmt(c['ratio'])]
            for c in report['derived']['checkpoint_memory']]
    return _table(['size', 'model', 'train MiB', 'train-cp MiB', 'train-cp / train'], rows)


def targets_table(report: Report) -> List[str]:
    rows = []
    for target in TARGETS:
        value = target_value(report, target)
        status = 'not measured' if value is None else 'met' if (
            value <= target['limit'] if target['op'] == '<=' else value >= target['limit']) else 'not met'
        rows.append([target['text'], fmt(value, 1 if target['key'] == 'gemm_percent' else 2), status])
    return _table(['target', 'measured', 'status'], rows, left=(0, 2))


def machine_lines(report: Report) -> List[str]:
    m, s, g = report['machine'], report['settings'], report['gemm']
    other_batches = ''.join(f' ({mode}: {n})' for mode, n in s.get('batches', {}).items() if n != s['batch'])
    device = f'{m["device"]} ({m["device_name"]}, CUDA {m["cuda"]})' if m['device'] == 'cuda' else m['device']
    lines = [f'- machine: {m["cpu"]}, {m["cpu_count"]} cores ({m["cpus_available"]} available), {m["platform"]}',
             f'- device: {device}; torch intra-op threads: {m["threads"]}',
             f'- versions: python {m["python"]}, torch {m["torch"]}, mmengine {m["mmengine"]}, mmdet {m["mmdet"]}, '
             f'mmseg {m["mmseg"]}',
             f'- settings: batch {s["batch"]}{other_batches}, {plural(s["warmup"], "warm-up step")}, median (and min) '
             f'of {plural(s["repeats"], "interleaved round")}, budget {s["budget_s"]:g} s per first warm-up step',
             f'- GEMM reference: {DTYPE_NAMES.get(g["dtype"], g["dtype"])} {g["op"]} {g["m"]}×{g["k"]} by '
             f'{g["k"]}×{g["n"]}, timed once in every round: '
             f'median {fmt_ms(g["median_s"])} ms, {g["flops_per_s"] / 1e9:.1f} GFLOP/s (each size\'s % of GEMM uses '
             f'the GEMM times of its own rounds)']
    if s.get('autocast'):
        lines.insert(4, f'- precision: {s["autocast"]} autocast: forward and loss under `torch.autocast` in '
                        f'{AUTOCAST_DTYPES[s["autocast"]]}, backward outside it; the detector iteration with '
                        f'mmengine\'s `AmpOptimWrapper` in {AUTOCAST_DTYPES[s["autocast"]]}')
    if m['device'] == 'cuda':
        lines.append(f'- TF32: matmul {m.get("matmul_allow_tf32")}, cuDNN {m.get("cudnn_allow_tf32")}')
    return lines


def _profile_cell(row: Optional[dict]) -> str:
    return '—' if row is None else f'{fmt_ms(row["ms"] / 1e3)} ({row["calls"]})'


def _profile_title(profile: dict) -> str:
    trains = any(mode != 'infer' for mode in profile['modes'])
    return f'Where the {"training " if trains else ""}step\'s time goes'


def profile_family_table(profile: dict, runs: Sequence[dict], clock: str) -> List[str]:
    """Forward and backward self time (ms, calls) and share of the step per op family, one column group per
    model (the runs of one mode)."""
    backward = any(r['mode'] != 'infer' for r in runs)
    directions = ('forward', 'backward') if backward else ('forward', )
    header = ['family']
    for run in runs:
        label = LABELS.get(run['model'], run['model'])
        header += [f'{label} forward', f'{label} backward', f'{label} %'] if backward else [f'{label}', f'{label} %']
    cells = [{(f['family'], f['direction']): f for f in run['clocks'][clock]['families']} for run in runs]
    rows = []
    for family in [f['family'] for f in profile['families']]:
        if not any(family == f for by in cells for f, _ in by):
            continue
        row = [family]
        for run, by in zip(runs, cells):
            row += [_profile_cell(by.get((family, d))) for d in directions]
            shares = [by[(family, d)]['share'] for d in directions if (family, d) in by]
            row.append(fmt(sum(shares), 1) if shares and None not in shares else '—')
        rows.append(row)
    total, split = ['all ops'], ['% of the step']
    for run in runs:
        summary = run['clocks'][clock]
        for d in directions:
            calls = sum(f['calls'] for f in summary['families'] if f['direction'] == d)
            total.append(f'{fmt_ms(summary["by_direction"][d] / 1e3)} ({calls})')
            split.append(fmt(100 * summary['by_direction'][d] / summary['total_ms'] if summary['total_ms'] else None,
                             1))
        total.append(fmt(100.0 if summary['total_ms'] else None, 1))
        split.append('')
    return _table(header, rows + [total, split], left=(0, ))


def gemm_floor_lines(runs: Sequence[dict], clock: str, model: str = 'l2vit-t', peer: str = 'swin-t') -> List[str]:
    """What the profile says about how far ``model``'s step can go below ``peer``'s without fewer matrix products:
    both steps split into GEMM and the rest, and ``model``'s step with its rest as cheap as ``peer``'s whole rest,
    over ``peer``'s step. Nothing where either run is missing."""
    by_model = {r['model']: r['clocks'][clock] for r in runs}
    if model not in by_model or peer not in by_model:
        return []
    split = {}
    for name, summary in by_model.items():
        gemm = sum(f['ms'] for f in summary['families'] if f['family'] == 'GEMM')
        split[name] = (gemm, summary['total_ms'] - gemm)
    (gemm_m, rest_m), (gemm_p, rest_p) = split[model], split[peer]
    label, peer_label = LABELS.get(model, model), LABELS.get(peer, peer)
    step_p = gemm_p + rest_p
    if not step_p:
        return []
    profiled = fmt((gemm_m + rest_m) / step_p)
    return ['', f'- GEMM and the rest: {label} {fmt_ms(gemm_m / 1e3)} + {fmt_ms(rest_m / 1e3)} ms, {peer_label} '
                f'{fmt_ms(gemm_p / 1e3)} + {fmt_ms(rest_p / 1e3)} ms; profiled ratio {profiled}. '
                f'With all of {label}\'s non-GEMM work as cheap as {peer_label}\'s (its extra families included) '
                f'the ratio would be {fmt((gemm_m + rest_p) / step_p)}, and with none at all '
                f'{fmt(gemm_m / step_p)}.']


def gemm_rate_lines(runs: Sequence[dict], clock: str, peer: str = 'swin-t') -> List[str]:
    """The matrix products of each run (``gemm_products`` of its summary, runs profiled with shapes): their
    operations, their time and the rate they ran at, and each model's operations over ``peer``'s. Nothing where no
    run has them (records made before they were counted)."""
    counted = [(r['model'], r['clocks'][clock].get('gemm_products')) for r in runs]
    counted = [(model, p) for model, p in counted if p]
    if not counted:
        return []
    peer_flop = dict(counted).get(peer, {}).get('flop')
    parts = []
    for model, products in counted:
        rate = products['flop_per_s']
        part = (f'{LABELS.get(model, model)} {products["flop"] / 1e9:.1f} GFLOP in {fmt_ms(products["ms"] / 1e3)} ms '
                f'({plural(products["calls"], "call")}), ' + (f'{rate / 1e9:.1f} GFLOP/s' if rate else 'no time'))
        if peer_flop and model != peer:
            part += f', {fmt(products["flop"] / peer_flop)}× {LABELS.get(peer, peer)}\'s operations'
        parts.append(part)
    return ['', '- matrix products (mm, addmm, bmm, baddbmm, mv, dot, counted from the shapes the profiler recorded; '
                '2 operations per multiply-add): ' + '; '.join(parts) + '.']


def profile_ops_table(run: dict, clock: str) -> List[str]:
    summary = run['clocks'][clock]
    rows = [[f'`{op["op"]}`', op['family'], op['direction'], fmt_ms(op['ms'] / 1e3), fmt(op['share'], 1),
             str(op['calls'])] for op in summary['top_ops']]
    lines = _table(['op', 'family', 'direction', 'ms', '% of step', 'calls'], rows, left=(0, 1, 2))
    other = summary['other_ops']
    listed = ', '.join(f'`{op["op"]}` {fmt_ms(op["ms"] / 1e3)} ms ({op["direction"]}, {plural(op["calls"], "call")})'
                       for op in other) or 'none'
    more = f', and {summary["other_ops_left"]} more' if summary['other_ops_left'] else ''
    return lines + ['', f'- ops of family "other": {listed}{more}']


def profile_lines(report: Report, heading: str) -> List[str]:
    """The section of a record's ``profile``: per mode (and clock), the op families forward and backward with the
    models side by side, then each model's largest ops, what each family holds, and the runs not profiled."""
    profile, m = report['profile'], report['machine']
    clocks = ['cpu'] + (['cuda'] if m['device'] == 'cuda' else [])
    clock_text = {'cpu': 'CPU self time', 'cuda': 'CUDA kernel time'}
    sub = heading + '#'
    load = [fmt(profile[key]) for key in ('load_average_before', 'load_average_after')]
    intro = (f'One step per model and mode at {profile["size"]} (batch {profile["batch"]}) profiled with '
             f'`torch.profiler` after one warm-up step ({" and ".join(clock_text[c] for c in clocks)}). An op\'s self '
             'time is its time minus that of the ops inside it, so that each moment of the step counts once, in the '
             'innermost op; cells are ms (calls), % is the share of the step\'s total. Backward is what runs inside '
             '`loss.backward()` (a `record_function` range around it) or inside autograd\'s `evaluate_function` '
             'events; families: the table at the end. The profiler\'s overhead is in these times: the shares are the '
             'point, not the absolute ms.')
    if 'cuda' in clocks:
        intro += (' CUDA kernel time: each kernel\'s duration, counted for the op that launched it (the CPU self time '
                  'then holds the launches and the waits).')
    lines = ['', f'{heading} {_profile_title(profile)}', '', intro, '',
             f'- load average (1 min): {load[0]} before profiling, {load[1]} after, on {m["cpu_count"]} cores']
    timed = {(e['model'], e['mode'], e['size']): e['median_s'] for e in report['results']
             if e['status'] == 'measured'}
    for mode in profile['modes']:
        runs = [r for r in profile['runs'] if r['mode'] == mode]
        profiled = [r for r in runs if r['status'] == 'profiled']
        about = []
        for run in runs:
            if run['status'] != 'profiled':
                about.append(f'- {run["model"]}: {run["status"]}: {run["reason"]}')
                continue
            median = timed.get((run['model'], mode, run['size']))
            about.append(f'- {run["model"]}: the profiled step took {fmt_ms(run["wall_ms"] / 1e3)} ms wall '
                         f'({run["events"]} events)'
                         + (f'; its timed median at this size: {fmt_ms(median)} ms' if median else ''))
        for clock in clocks if profiled else clocks[:1]:
            lines += ['', f'{sub} {mode} {profile["size"]}: {clock_text[clock]} by op family', '']
            if profiled:
                lines += profile_family_table(profile, profiled, clock) + gemm_floor_lines(profiled, clock)
                lines += gemm_rate_lines(profiled, clock) + ['']
            if clock == clocks[0]:
                lines += about
            for run in profiled:
                label = LABELS.get(run['model'], run['model'])
                lines += ['', f'{sub} {mode} {profile["size"]}, {label}: the largest ops ({clock_text[clock]})', '']
                lines += profile_ops_table(run, clock)
    lines += ['', f'{sub} The op families', '']
    lines += _table(['family', 'what it holds'], [[f['family'], f['holds']] for f in profile['families']],
                    left=(0, 1))
    return lines


def report_lines(report: Report, heading: str = '###') -> List[str]:
    """The tables of one run, in Markdown (also what the tool prints)."""
    lines = machine_lines(report)
    lines += ['', 'Times per step in ms, peak memory of one step in MiB (beyond what was allocated before it); ratios '
              'against Swin-T at the same mode and size; FLOP/s = 2 × multiply-adds / median time.']
    for mode in report['settings']['modes']:
        lines += ['', f'{heading} {mode}', ''] + (detector_lines(report) if mode == DETECTOR_MODE else [])
        lines += mode_table(report, mode)
    if report['derived'].get('vs_eager'):
        lines += ['', f'{heading} L²ViT-T in other runtimes against torch eager (same run, interleaved rounds)', '']
        lines += vs_eager_table(report)
        runtime = report['settings'].get('onnxruntime')
        if runtime:
            lines += ['', f'- onnxruntime {runtime["version"]}, {runtime["provider"]}, {runtime["intra_op_threads"]} '
                      f'intra-op threads; one file exported by {runtime["exporter"]} at opset {runtime["opset"]} '
                      'with batch and size dynamic, used at every size; outputs copied back into torch tensors '
                      '(in the time); its memory is outside torch\'s allocator and not measured (— in the tables).']
        runtime = report['settings'].get('openvino')
        if runtime:
            lines += [f'- OpenVINO {runtime["version"]}, {runtime["device"]} device, {runtime["inference_threads"]} '
                      'inference threads, the same kind of file (exported in the same run); outputs copied into '
                      'torch tensors (in the time); memory not measured.']
    lines += ['', f'{heading} Scaling exponents (slope of log value against log pixels)', ''] + exponent_table(report)
    if report['derived']['checkpoint_memory']:
        lines += ['', f'{heading} Gradient checkpointing: peak memory of train-cp against train', '']
        lines += checkpoint_table(report)
    lines += ['', f'{heading} Targets', ''] + targets_table(report)
    if report.get('profile'):
        lines += profile_lines(report, heading)
    if report['notes']:
        lines += [''] + [f'- note: {n}' for n in report['notes']]
    return lines


def section_title(report: Report) -> str:
    m, precision = report['machine'], report['settings'].get('autocast')
    where = (f'GPU: {m["device_name"]}' if m['device'] == 'cuda'
             else f'CPU: {m["cpu"]}, {plural(m["threads"], "thread")}')
    return f'{where}, {precision} autocast' if precision else where


def render_markdown(reports: Sequence[Report], json_paths: Sequence[str], docs_path: str,
                    images: Sequence[Optional[str]]) -> str:
    """The Markdown page for saved runs: a pure function of its arguments (no clock, no files)."""
    made = ' and '.join(f'`{r["command"]}` on {r["date"]}' for r in reports)
    rerender = command_line(['--from-json', *json_paths, '--docs', docs_path])
    measured = {e['model'] for r in reports for e in r['results']}
    lines = ['# Speed and memory: L²ViT-T, Swin-T and ViT-S/16 backbones', '',
             f'Generated by {made}; do not edit by hand; rerun the command to regenerate (or, to render this page '
             f'again from the saved results without measuring: `{rerender}`).', '',
             'Models: ' + '; '.join(f'`{k}` = {v}' for k, v in LABELS.items() if k in measured) + '. All are the '
             'backbones alone, built from the configs (L²ViT-T: `configs/maskrcnn_l2vit.py`, BN for SyncBN; '
             'Swin-T: mmdet\'s `swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py`; ViT-S/16: mmseg\'s `VisionTransformer`, '
             'global softmax attention), without pretrained weights. Modes: `infer` (eval, no_grad forward), `train` '
             '(forward, mean of the outputs, backward), `train-cp` (the same with `with_cp=True`).']
    if any(DETECTOR_MODE in r['settings']['modes'] for r in reports):
        lines[-1] += (f' `{DETECTOR_MODE}`: not a backbone but the whole Mask R-CNN of `configs/maskrcnn_l2vit.py`, '
                      'and the same config with the Swin-T backbone, one training iteration each (its section says '
                      'what one is).')
    for report, image in zip(reports, images):
        lines += ['', f'## {section_title(report)}', '', f'Measured by `{report["command"]}` on {report["date"]}.', '']
        lines += report_lines(report)
        if image:
            lines += ['', f'![median time against pixels, log-log]({image})']
    return '\n'.join(lines) + '\n'


def print_report(report: Report) -> None:
    print(f'{section_title(report)}: {report["command"]} ({report["date"]})')
    print('\n'.join(report_lines(report, heading='##')))


def plot(report: Report, path: str) -> None:
    """Median time against pixels, log-log: one line per model, one panel per mode."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    modes = report['settings']['modes']
    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for model in dict.fromkeys(e['model'] for e in report['results']):
            points = [(e['pixels'], e['median_s'] * 1e3) for e in report['results']
                      if (e['model'], e['mode'], e['status']) == (model, mode, 'measured')]
            if points:
                ax.plot(*zip(*points), marker='o', label=LABELS.get(model, model))
        ax.set_xscale('log')
        ax.set_yscale('log')
        precision = f', {report["settings"]["autocast"]} autocast' if report['settings'].get('autocast') else ''
        ax.set_title(f'{mode} ({report["machine"]["device"]}{precision}, batch {batch_of(report, mode)})')
        ax.set_xlabel('pixels (H × W)')
        ax.set_ylabel('median time per step (ms)')
        ax.grid(True, which='both', alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def image_names(reports: Sequence[Report], docs_path: str) -> List[str]:
    """File names of the plots next to the docs page: <page>_<device>.png (numbered when devices repeat)."""
    stem = Path(docs_path).stem
    devices = [r['machine']['device'] for r in reports]
    return [f'{stem}_{d}.png' if devices.count(d) == 1 else f'{stem}_{d}{devices[:i + 1].count(d)}.png'
            for i, d in enumerate(devices)]


def write_docs(reports: Sequence[Report], json_paths: Sequence[str], docs_path: str) -> None:
    folder = osp.dirname(docs_path) or '.'
    os.makedirs(folder, exist_ok=True)
    images = image_names(reports, docs_path)
    for report, image in zip(reports, images):
        plot(report, osp.join(folder, image))
    with open(docs_path, 'w', encoding='utf-8') as f:
        f.write(render_markdown(reports, json_paths, docs_path, images))
    print(f'wrote {docs_path} and {", ".join(osp.join(folder, i) for i in images)}')


if __name__ == '__main__':
    sys.exit(main())
