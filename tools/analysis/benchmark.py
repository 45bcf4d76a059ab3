#!/usr/bin/env python
"""Time and memory of the L²ViT-T backbone against Swin-T (mmdet) and ViT-S/16 (mmseg), and of a whole Mask R-CNN
training iteration with L²ViT-T against Swin-T, in one process.

    python tools/analysis/benchmark.py [--sizes 224 512 800x1333 ...] [--modes infer train train-cp detector-train]
        [--models l2vit-t swin-t vit-s] [--compile] [--onnxruntime] [--openvino] [--repeats 5] [--warmup 2]
        [--budget 60] [--batch N] [--device cpu|cuda] [--threads N] [--autocast bf16|fp16] [--no-flops]
        [--profile [N|HxW]] [--note TEXT]
        [--out-dir work_dirs/benchmark] [--docs docs/benchmarks.md]
    python tools/analysis/benchmark.py --from-json A.json [B.json ...] --docs docs/benchmarks.md

The backbones are the ones the configs build, without pretrained weights: ``l2vit-t`` (``configs/maskrcnn_l2vit.py``,
BN for SyncBN), ``swin-t`` (mmdet's ``swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py``), ``vit-s`` (mmseg's
``VisionTransformer`` as ViT-S/16, global softmax attention) and, with ``--compile``, ``l2vit-t+compile``
(``torch.compile`` of the same L²ViT-T, ``infer`` and ``train`` modes) and, with ``--onnxruntime``,
``l2vit-t+onnxruntime`` (the same L²ViT-T exported to ONNX with dynamic sizes, run by onnxruntime on the CPU,
``infer`` only; its time over eager L²ViT-T's is in the record's ``derived.vs_eager``). Modes: ``infer`` (eval, a
no_grad forward), ``train`` (forward, loss = the sum of the outputs' means, backward), ``train-cp`` (the same with
``with_cp=True``), and only when named in ``--modes`` (it is slow on CPU: seconds per iteration at 800x1333)
``detector-train``: one training iteration of the whole Mask R-CNN, ``model.train_step`` (data preprocessor, losses,
backward, AdamW step) on a packed batch of random images with 3 random gt boxes, labels and masks each, for
``configs/maskrcnn_l2vit.py`` (BN for SyncBN) and the same config with mmdet's Swin-T backbone (the l2vit-t and swin-t
of ``--models``). Its batch is 2 images unless ``--batch`` is given (the backbone modes: 1). E.g. the issue's
detector run: ``--modes detector-train --sizes 800x1333``.

Per mode and size: ``--warmup`` steps of each model, then ``--repeats`` interleaved rounds (median and minimum time),
the peak tensor memory of one extra step, and for ``infer`` the FLOP/s against an fp32 2048³ GEMM timed in the same
rounds (``--no-flops`` skips the counting). A model whose first warm-up step at a size takes longer than
``--budget`` seconds is skipped there and at every larger size of that mode. Derived: ratios against Swin-T,
scaling exponents (log time and log memory against log pixels), the train-cp / train memory ratio and the project's
targets. What exactly is measured, and how: the docstring of ``l2vit/analysis/benchmark.py``.

``--autocast bf16|fp16``: measure in mixed precision instead of fp32: each backbone step's forward and loss under
``torch.autocast`` in that dtype (backward outside, as AMP training does), the detector iteration with mmengine's
``AmpOptimWrapper`` in that dtype (GPU only, as our AMP configs), the reference GEMM in that dtype. E.g. on a GPU:
``--device cuda --autocast bf16``.

``--profile [N|HxW]``: also, after the timing, profile one step (after one warm-up step) of each model of
``--models`` in each backbone mode of ``--modes`` (not ``detector-train``) at that size (``--profile`` alone: the
first of ``--sizes``) with ``torch.profiler``, and sum the self time of its ops by op family (GEMM, convolution,
normalisation, copy/layout, ...) and by direction (forward, backward): the record's ``profile``, printed and on the
page as "Where the training step's time goes" (the models side by side, then each one's largest ops). E.g. the
page's profile: ``--sizes 512 --modes train --models l2vit-t swin-t --threads 2 --profile``. How ops are put in
families and backward is told from forward: ``l2vit/analysis/op_profile.py``. ``--note TEXT`` (repeatable) records a
note in the JSON (e.g. how busy the machine was), printed and rendered with the run's tables.

Writes ``benchmark.json`` (everything: machine, versions, command, settings, every timing) and ``benchmark.png``
(time against pixels, log-log) to ``--out-dir`` and prints the tables. ``--docs PATH`` also writes a Markdown page
rendered from the JSON alone (with the plot next to it); ``--from-json`` renders it again, or from several runs (one
section per JSON, e.g. a CPU and a GPU run), without measuring anything.
"""
import argparse
import os.path as osp
import sys
import warnings
from typing import Optional, Sequence

warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
# mmdet's Swin calls torch.utils.checkpoint without use_reentrant (with_cp=True); the warning is theirs to fix.
warnings.filterwarnings('ignore', message='torch.utils.checkpoint: the use_reentrant parameter', category=UserWarning)

from l2vit.analysis.benchmark import (AUTOCAST_DTYPES, COMPILED, DEFAULT_BATCH, DEFAULT_MODES,  # noqa: E402
                                      DEFAULT_SIZES, DETECTOR_MODE, MODE_BATCH, MODEL_NAMES, MODES, ONNXRUNTIME,
                                      OPENVINO, parse_size)
from l2vit.errors import error_exit  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', nargs='+', type=parse_size, default=[parse_size(s) for s in DEFAULT_SIZES],
                        metavar='N|HxW', help=f'input sizes (default: {" ".join(DEFAULT_SIZES)})')
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(DEFAULT_MODES),
                        help=f'default: {" ".join(DEFAULT_MODES)}; {DETECTOR_MODE} (a whole Mask R-CNN training '
                        'iteration, slow on CPU) only when named')
    parser.add_argument('--models', nargs='+', choices=MODEL_NAMES, default=list(MODEL_NAMES), help='default: all')
    parser.add_argument('--compile', action='store_true', help=f'also time {COMPILED} (infer and train)')
    parser.add_argument('--onnxruntime', action='store_true',
                        help=f'also time {ONNXRUNTIME}: L²ViT-T exported to ONNX (dynamic sizes) in onnxruntime\'s '
                        'CPU execution provider (infer only; needs the [deploy] extra)')
    parser.add_argument('--openvino', action='store_true',
                        help=f'also time {OPENVINO}: the same exported file in OpenVINO on the CPU (infer only; needs '
                        'pip install openvino)')
    parser.add_argument('--batch', type=int,
                        help=f'images per step in every mode (default {DEFAULT_BATCH}; '
                        + ', '.join(f'{mode}: {n}' for mode, n in MODE_BATCH.items()) + ')')
    parser.add_argument('--warmup', type=int, default=2, help='warm-up steps per model and size (default 2)')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds per size (default 5)')
    parser.add_argument('--budget', type=float, default=60.0, metavar='SECONDS',
                        help='skip a model at a size and larger ones when its first warm-up step takes longer '
                        '(default 60)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), help='default: cuda if available, else cpu')
    parser.add_argument('--threads', type=int, help='torch intra-op threads (default: torch\'s default)')
    parser.add_argument('--autocast', choices=tuple(AUTOCAST_DTYPES),
                        help='measure in mixed precision: forward and loss under torch.autocast in this dtype '
                        '(detector-train: mmengine\'s AmpOptimWrapper, GPU only); default fp32')
    parser.add_argument('--no-flops', action='store_true', help='do not count FLOPs (no FLOP/s, no %% of GEMM)')
    parser.add_argument('--profile', nargs='?', const=True, type=parse_size, metavar='N|HxW',
                        help='also profile one step of each model and backbone mode (not detector-train) at this size '
                        '(alone: the first of --sizes) '
                        'and break its self time down by op family, forward and backward')
    parser.add_argument('--note', action='append', metavar='TEXT',
                        help='a note to record in the JSON and print with the tables (repeatable)')
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
    if args.from_json and args.docs is None:
        print('note: --from-json without --docs only prints the tables', file=sys.stderr)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from l2vit.analysis.benchmark_tool import run_benchmark_tool

    with error_exit():
        return run_benchmark_tool(args, argv)


if __name__ == '__main__':
    sys.exit(main())
