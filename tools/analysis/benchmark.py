#!/usr/bin/env python
"""Time and peak memory of the L²ViT-T backbone against Swin-T and ViT-S/16, and of a whole Mask R-CNN training
iteration against Swin-T's, in one process (l2vit.analysis.benchmark); the page docs/benchmarks.md rendered from them.

    python tools/analysis/benchmark.py [--sizes 224 512 800x1333 ...] [--modes infer train train-cp detector-train]
        [--models l2vit-t swin-t vit-s] [--compile] [--onnxruntime] [--openvino] [--repeats 5] [--warmup 2]
        [--budget 60] [--batch N] [--device cpu|cuda] [--threads N] [--autocast bf16|fp16] [--no-flops]
        [--profile [N|HxW]] [--note TEXT] [--config CONFIG] [--out-dir work_dirs/benchmark] [--docs PAGE.md]
    python tools/analysis/benchmark.py --from-json A.json [B.json ...] --docs docs/benchmarks.md

Writes benchmark.json and benchmark.png to --out-dir, prints the tables; --docs: the page, --from-json: no measuring.
"""
import argparse
import json
import os
import os.path as osp
import shlex
import sys
import warnings

warnings.filterwarnings('ignore', message='torch.utils.checkpoint: the use_reentrant parameter', category=UserWarning)

from l2vit.apis.cli import image_size  # noqa: E402
from l2vit.errors import error_exit  # noqa: E402

MODELS, MODES = ('l2vit-t', 'swin-t', 'vit-s'), ('infer', 'train', 'train-cp', 'detector-train')
SIZES = ('224', '512', '800x1333', '1024', '1536', '2048')
#: The project's targets (its issues'; the detector-train limits, not slower or bigger than Swin-T's, are ours):
#: (what, table of the record, field, keys of L²ViT-T's row, op, limit).
TARGETS = [('infer: L²ViT-T time exponent from 512² to 1536²', 'exponents', 'from_512_to_1536',
            dict(mode='infer', quantity='time'), '<=', 1.1),
           ('infer at 800x1333: L²ViT-T FLOP/s, % of the fp32 GEMM\'s', 'results', 'gemm_percent',
            dict(mode='infer', size='800x1333'), '>=', 70),
           ('800x1333: L²ViT-T train-cp / train peak memory', 'checkpoint_memory', 'ratio', dict(size='800x1333'),
            '<=', 0.6),
           *((f'{mode} at {size}: L²ViT-T / Swin-T {q}', 'ratios', f'{q}_vs_swin', dict(mode=mode, size=size), '<=',
              limit) for mode, size, limit, quantities in (
                  ('infer', '800x1333', 0.9, 'time memory'), ('train', '512x512', 0.9, 'time memory'),
                  ('train', '800x1333', 0.9, 'time memory'), ('train', '1536x1536', 0.9, 'time memory'),
                  ('train-cp', '800x1333', 1.0, 'memory'), ('detector-train', '800x1333', 1.0, 'time memory'))
             for q in quantities.split())]


def target_rows(report, targets=TARGETS):
    """(target, L²ViT-T's measured value or None, 'met' | 'not met' | 'not measured') per target of a record."""
    out = []
    for what, source, field, where, op, limit in targets:
        rows = report['results'] if source == 'results' else report['derived'][source]
        value = next((r[field] for r in rows if r.get('status', 'measured') == 'measured'
                      and all(r.get(k) == v for k, v in dict(where, model='l2vit-t').items())), None)
        met = value is not None and (value <= limit if op == '<=' else value >= limit)
        out.append((f'{what} {"≤" if op == "<=" else "≥"} {limit:g}', value,
                    'not measured' if value is None else 'met' if met else 'not met'))
    return out


def targets_section(report, heading):
    from l2vit.analysis.report import fmt, table
    return ['', f'{heading} Targets', ''] + table(['target', 'measured', 'status'], [
        [what, fmt(value), status] for what, value, status in target_rows(report)])


def command(argv):
    return ' '.join(shlex.quote(a) for a in ['python', 'tools/analysis/benchmark.py', *argv])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add('--sizes', nargs='+', type=image_size, default=[image_size(s) for s in SIZES], metavar='N|HxW')
    add('--modes', nargs='+', choices=MODES, default=list(MODES[:3]), help='detector-train only when named')
    add('--models', nargs='+', choices=(*MODELS, 'l2vit-t-plain'), default=list(MODELS),
        help='default: all but l2vit-t-plain (L²ViT-T without its CPU fast paths)')
    add('--compile', action='store_true', help='also time l2vit-t+compile (infer and train)')
    for runtime in ('onnxruntime', 'openvino'):
        add(f'--{runtime}', action='store_true', help=f'also time L²ViT-T exported to ONNX in {runtime} (infer, CPU)')
    add('--batch', type=int, help='images per step (default 1; detector-train: 2)')
    add('--warmup', type=int, default=2, help='warm-up steps per model and size (default 2)')
    add('--repeats', type=int, default=5, help='timed interleaved rounds per size (default 5)')
    add('--budget', type=float, default=60.0, metavar='SECONDS',
        help='skip a model at a size and larger ones when its first warm-up step takes longer (default 60)')
    add('--device', choices=('cpu', 'cuda'), help='default: cuda if available, else cpu')
    add('--threads', type=int, help='torch intra-op threads')
    add('--autocast', choices=('bf16', 'fp16'), help='forward and loss under torch.autocast (default fp32)')
    add('--no-flops', action='store_true', help='do not count FLOPs (no FLOP/s, no %% of GEMM)')
    add('--profile', nargs='?', const=True, type=image_size, metavar='N|HxW',
        help='also profile one step per model and backbone mode at this size (alone: the first of --sizes)')
    add('--note', action='append', metavar='TEXT', help='a note recorded with the run (repeatable)')
    add('--config', default=osp.relpath(osp.join(osp.dirname(__file__), '..', '..', 'configs', 'maskrcnn_l2vit.py')),
        help='the Mask R-CNN config whose L2ViT is measured (default: this repository\'s configs/maskrcnn_l2vit.py)')
    add('--out-dir', default=osp.join('work_dirs', 'benchmark'), help='where benchmark.json and benchmark.png go')
    add('--docs', metavar='PATH', help='also write the Markdown page (e.g. docs/benchmarks.md)')
    add('--from-json', nargs='+', metavar='FILE', help='measure nothing: render saved benchmark.json files')
    args = parser.parse_args(argv)
    for name in ('batch', 'warmup', 'repeats', 'threads'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f'--{name} must be a positive integer, got {getattr(args, name)}')
    if not args.budget > 0:
        parser.error(f'--budget must be a positive number of seconds, got {args.budget}')
    if args.profile and 'detector-train' in args.modes and len(args.modes) == 1:
        parser.error('--profile profiles the backbone modes; detector-train is not profiled')
    if args.from_json and (args.profile or args.note or args.autocast):
        parser.error('--profile, --note and --autocast measure or record a new run; --from-json renders saved ones')
    args.profile = args.sizes[0] if args.profile is True else args.profile
    return args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from l2vit.analysis import benchmark_backbones, report
    with error_exit():
        paths = [osp.normpath(p) for p in args.from_json or [osp.join(args.out_dir, 'benchmark.json')]]
        if args.from_json:
            records = report.load_benchmarks(paths)
        else:
            records = [benchmark_backbones(
                args.config, args.sizes, args.modes, args.models, args.device, args.threads, args.batch, args.warmup,
                args.repeats, args.budget, args.compile, [r for r in ('onnxruntime', 'openvino') if getattr(args, r)],
                args.autocast, not args.no_flops, args.profile, args.out_dir, args.note or (), command(argv))]
            os.makedirs(args.out_dir, exist_ok=True)
            with open(paths[0], 'w', encoding='utf-8') as f:
                json.dump(records[0], f, indent=1, ensure_ascii=False)
            report.plot_benchmark(records[0], osp.join(args.out_dir, 'benchmark.png'))
        for record in records:
            print('\n'.join([f'## {report.section_title(record)}: {record["command"]} ({record["date"]})',
                             *report.benchmark_section(record, targets_section, heading='##'), '']))
        if args.docs:
            rerender = command(['--from-json', *paths, '--docs', args.docs])
            print('wrote ' + ', '.join(report.write_benchmark_docs(records, args.docs, rerender, targets_section)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
