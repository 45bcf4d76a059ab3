#!/usr/bin/env python
"""Time and memory of the L²ViT-T backbone against Swin-T (mmdet) and ViT-S/16 (mmseg), in one process.

    python tools/analysis/benchmark.py [--sizes 224 512 800x1333 ...] [--modes infer train train-cp]
        [--models l2vit-t swin-t vit-s] [--compile] [--repeats 5] [--warmup 2] [--budget 60] [--batch 1]
        [--device cpu|cuda] [--threads N] [--no-flops] [--out-dir work_dirs/benchmark] [--docs docs/benchmarks.md]
    python tools/analysis/benchmark.py --from-json A.json [B.json ...] --docs docs/benchmarks.md

The backbones are the ones the configs build, without pretrained weights:

* ``l2vit-t``: the backbone of ``configs/maskrcnn_l2vit.py`` with plain BN instead of SyncBN (no process group).
* ``swin-t``: the backbone of mmdet's ``swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py``.
* ``vit-s``: mmseg's ``VisionTransformer`` as ViT-S/16 (384 wide, 12 layers, 6 heads), global softmax attention
  over all tokens (position embedding resized to each input), so its cost grows with the square of the pixels.
* ``l2vit-t+compile`` (``--compile``): ``torch.compile`` of the same L²ViT-T module, in the ``infer`` and ``train``
  modes. Its compilation happens in the warm-up, so the budget (below) is checked on its last warm-up step.

What one step is, per mode: ``infer``: eval mode, a forward under ``torch.no_grad()``; ``train``: train mode, a
forward, loss = the sum of every output's mean, a backward, gradients dropped (set to None); ``train-cp``: the same
with backbones built with ``with_cp=True`` (gradient checkpointing).

How it is measured, per mode and size (sizes in increasing pixel count, a random batch of ``--batch`` images):

* ``--warmup`` steps of each model, then ``--repeats`` rounds that time every model once in turn. Models are
  interleaved so that the machine's drift and noise hit all of them alike; the median (and the minimum) is reported.
  Time: ``time.perf_counter`` on CPU, CUDA events (after a synchronize) on a GPU.
* Peak memory of one extra step per model, not a timed one: the most memory held by tensors at once during the step,
  beyond what was held before it. On a GPU ``torch.cuda.max_memory_allocated()``; on CPU the same quantity from the
  allocation and release records of torch's profiler (``profile_memory=True``). Both count what the step allocates
  through PyTorch: activations, tensors saved for backward, gradients, temporaries. (The process's resident size
  would also count what glibc's allocator keeps cached or fragmented, which varies from run to run.)
* ``--budget`` seconds: a model whose first warm-up step at a size takes longer is skipped there and at every larger
  size of that mode (the JSON says why).
* FLOP/s (``infer``): 2 × the multiply-adds ``l2vit.flops.count_flops`` counts for the model at that size (mmengine's
  convention, attention products included) divided by the median time, also as a percentage of the FLOP/s of an
  fp32 2048×2048×2048 ``torch.mm`` timed once in each of the same rounds (its median there), so that both see the
  machine in the same state. ``--no-flops`` skips the counting.

Derived: time and memory of each model relative to Swin-T (same mode and size); scaling exponents, the slope of
log(time) (and of log(memory)) against log(pixels) from 512² to 1536² and the least-squares slope over all sizes from
512² up; the train-cp / train memory ratio; and the project's targets (``TARGETS``), each met, not met or not
measured.

Writes ``benchmark.json`` (everything: machine, versions, command, settings, every timing) and ``benchmark.png``
(time against pixels, log-log) to ``--out-dir`` and prints the tables. ``--docs PATH`` also writes a Markdown page
rendered from the JSON alone (with the plot next to it); ``--from-json`` renders it again, or from several runs (one
section per JSON, e.g. a CPU and a GPU run), without measuring anything.
"""
import argparse
import datetime
import gc
import importlib
import json
import math
import os
import os.path as osp
import platform
import re
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from l2vit.errors import fail

warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
# mmdet's Swin calls torch.utils.checkpoint without use_reentrant (with_cp=True); the warning is theirs to fix.
warnings.filterwarnings('ignore', message='torch.utils.checkpoint: the use_reentrant parameter', category=UserWarning)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = 'l2vit-benchmark/1'
MODEL_NAMES = ('l2vit-t', 'swin-t', 'vit-s')
COMPILED = 'l2vit-t+compile'
BASELINE = 'swin-t'
MODES = ('infer', 'train', 'train-cp')
COMPILED_MODES = ('infer', 'train')
DEFAULT_SIZES = ('224', '512', '800x1333', '1024', '1536', '2048')
LABELS = {'l2vit-t': 'L²ViT-T', 'swin-t': 'Swin-T', 'vit-s': 'ViT-S/16', COMPILED: 'L²ViT-T, torch.compile'}
L2VIT_CONFIG = ROOT / 'configs' / 'maskrcnn_l2vit.py'
SWIN_CONFIG = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
VIT_S = dict(type='VisionTransformer', patch_size=16, embed_dims=384, num_layers=12, num_heads=6, mlp_ratio=4,
             img_size=(512, 512), out_indices=(2, 5, 8, 11), init_cfg=None)
GEMM_N = 2048
#: Sizes of the two-point scaling exponent, and the smallest size of the fitted one.
EXPONENT_FROM, EXPONENT_TO = 512 * 512, 1536 * 1536
TARGET_SIZE = '800x1333'
#: The project's targets (from its issue). ``op`` compares the measured value with ``limit``.
TARGETS = (
    dict(key='latency_vs_swin', op='<=', limit=0.90,
         text='infer at 800×1333: L²ViT-T / Swin-T latency ≤ 0.90'),
    dict(key='memory_vs_swin', op='<=', limit=0.90,
         text='infer at 800×1333: L²ViT-T / Swin-T peak memory ≤ 0.90'),
    dict(key='time_exponent', op='<=', limit=1.10,
         text='infer: L²ViT-T time exponent (log time / log pixels) from 512² to 1536² ≤ 1.10'),
    dict(key='gemm_percent', op='>=', limit=70.0,
         text='infer at 800×1333: L²ViT-T FLOP/s ≥ 70 % of the same-process fp32 GEMM'),
    dict(key='checkpoint_memory', op='<=', limit=0.60,
         text='800×1333: L²ViT-T train-cp peak memory ≤ 0.6 × train'),
)
MIB = 2**20

Entry = Dict[str, Any]
Report = Dict[str, Any]


def note(message: str) -> None:
    print(f'note: {message}', flush=True)


# ------------------------------------------------------------------------------------------------------ arguments
def parse_size(text: str) -> Tuple[int, int]:
    """'512' -> (512, 512); '800x1333' -> (800, 1333) (height × width)."""
    match = re.fullmatch(r'\s*(\d+)\s*(?:[x×]\s*(\d+)\s*)?', text)
    if not match or int(match.group(1)) < 1 or (match.group(2) is not None and int(match.group(2)) < 1):
        raise argparse.ArgumentTypeError(
            f'invalid size {text!r}: expected a positive integer N (an N×N image) or HxW such as 800x1333')
    height = int(match.group(1))
    return height, int(match.group(2)) if match.group(2) is not None else height


def size_key(size: Tuple[int, int]) -> str:
    return f'{size[0]}x{size[1]}'


def ordered_sizes(sizes: Sequence[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """Distinct sizes in increasing pixel count (then height)."""
    return sorted(dict.fromkeys(sizes), key=lambda s: (s[0] * s[1], s))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', nargs='+', type=parse_size, default=[parse_size(s) for s in DEFAULT_SIZES],
                        metavar='N|HxW', help=f'input sizes (default: {" ".join(DEFAULT_SIZES)})')
    parser.add_argument('--modes', nargs='+', choices=MODES, default=list(MODES), help='default: all')
    parser.add_argument('--models', nargs='+', choices=MODEL_NAMES, default=list(MODEL_NAMES), help='default: all')
    parser.add_argument('--compile', action='store_true', help=f'also time {COMPILED} (infer and train)')
    parser.add_argument('--batch', type=int, default=1, help='images per step (default 1)')
    parser.add_argument('--warmup', type=int, default=2, help='warm-up steps per model and size (default 2)')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds per size (default 5)')
    parser.add_argument('--budget', type=float, default=60.0, metavar='SECONDS',
                        help='skip a model at a size and larger ones when its first warm-up step takes longer '
                        '(default 60)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), help='default: cuda if available, else cpu')
    parser.add_argument('--threads', type=int, help='torch intra-op threads (default: torch\'s default)')
    parser.add_argument('--no-flops', action='store_true', help='do not count FLOPs (no FLOP/s, no %% of GEMM)')
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
    if args.from_json and args.docs is None:
        print('note: --from-json without --docs only prints the tables', file=sys.stderr)
    return args


def command_line(argv: Sequence[str]) -> str:
    return ' '.join(shlex.quote(a) for a in ['python', 'tools/analysis/benchmark.py', *argv])


# ------------------------------------------------------------------------------------------------------ models
def build_models(names: Sequence[str], with_cp: bool, device: Any) -> Dict[str, Any]:
    """The named backbones (same seed, so the with_cp copies have the same weights), on ``device``."""
    import torch
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmseg.registry import MODELS as MMSEG_MODELS

    importlib.import_module('mmdet_l2vit')  # registers L2ViT in mmdet's MODELS
    if not MMLogger.check_instance_created('l2vit_benchmark'):
        # The latest logger is mmengine's current one: building and init_weights stay quiet.
        MMLogger.get_instance('l2vit_benchmark', log_level='ERROR')
    models = {}
    for name in names:
        if name == 'l2vit-t':
            cfg = Config.fromfile(str(L2VIT_CONFIG)).model.backbone
            cfg.update(init_cfg=None, norm_cfg=dict(type='BN', requires_grad=True), with_cp=with_cp)
            registry = MMDET_MODELS
        elif name == 'swin-t':
            # Config.fromfile does not resolve 'mmdet::' itself; a _base_ does, as in our own configs.
            cfg = Config.fromstring(f'_base_ = {SWIN_CONFIG!r}', '.py').model.backbone
            cfg.update(init_cfg=None, with_cp=with_cp)
            registry = MMDET_MODELS
        else:
            cfg, registry = dict(VIT_S, with_cp=with_cp), MMSEG_MODELS
        torch.manual_seed(0)
        model = registry.build(cfg)
        model.init_weights()
        models[name] = model.to(device)
    return models


def compile_model(model: Any) -> Any:
    import torch
    return torch.compile(model)


# ------------------------------------------------------------------------------------------------------ timing
def synchronize(device: Any) -> None:
    import torch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_step(step: Callable[[], None], device: Any) -> float:
    """Seconds one call of ``step`` takes (CUDA events on a GPU)."""
    import torch
    if device.type == 'cuda':
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        synchronize(device)
        start.record()
        step()
        end.record()
        synchronize(device)
        return start.elapsed_time(end) / 1e3
    begin = time.perf_counter()
    step()
    return time.perf_counter() - begin


def make_step(model: Any, mode: str, images: Any) -> Callable[[], None]:
    """One step of ``mode`` (the caller has put the model in eval or train mode)."""
    import torch

    if mode == 'infer':
        def step() -> None:
            with torch.no_grad():
                model(images)
    else:
        def step() -> None:
            try:
                loss = sum(out.float().mean() for out in model(images))
                loss.backward()
            finally:
                for param in model.parameters():
                    param.grad = None
    return step


def release_free_memory(device: Any) -> None:
    """Collect garbage (and, on a GPU, give the caching allocator's free blocks back)."""
    import torch
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def _cpu_tensor_peak(step: Callable[[], None]) -> int:
    """Peak of the bytes held by tensors (PyTorch's CPU allocator) during ``step``, beyond those held before it:
    the running sum of the allocation and release records of torch's profiler (``profile_memory=True``)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    records = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                     if e.name() == '[memory]' and e.device_type() == DeviceType.CPU)
    live = peak = 0
    for _, nbytes in records:
        live += nbytes
        peak = max(peak, live)
    return peak


def peak_memory(step: Callable[[], None], device: Any) -> int:
    """The most tensor memory (bytes) one step holds at once beyond what was allocated before it."""
    import torch
    release_free_memory(device)
    if device.type == 'cuda':
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    return _cpu_tensor_peak(step)


def gemm_step(device: Any) -> Callable[[], None]:
    """One fp32 GEMM of 2048×2048 by 2048×2048, the machine's reference speed."""
    import torch
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(GEMM_N, GEMM_N, generator=generator).to(device)
    b = torch.randn(GEMM_N, GEMM_N, generator=generator).to(device)

    def step() -> None:
        torch.mm(a, b)

    return step


def gemm_flops_per_s(seconds: float) -> float:
    return 2 * GEMM_N**3 / seconds


def gemm_summary(times: List[float]) -> Dict[str, Any]:
    median = statistics.median(times)
    return dict(op='torch.mm', dtype='float32', m=GEMM_N, n=GEMM_N, k=GEMM_N, times_s=times, median_s=median,
                min_s=min(times), flops_per_s=gemm_flops_per_s(median))


# ------------------------------------------------------------------------------------------------------ measuring
def new_entry(model: str, mode: str, size: Tuple[int, int]) -> Entry:
    return dict(model=model, mode=mode, size=size_key(size), height=size[0], width=size[1], pixels=size[0] * size[1],
                status='measured', reason=None, warmup_s=[], times_s=[], median_s=None, min_s=None,
                memory_bytes=None, macs=None, flops_per_s=None, gemm_median_s=None,
                gemm_percent=None)


def _stop(entry: Entry, status: str, reason: str, stopped: Dict[str, str], later: str) -> None:
    """Mark ``entry`` skipped or failed, and skip its model at the larger sizes of this mode."""
    entry.update(status=status, reason=reason)
    stopped[entry['model']] = later
    note(f'{entry["mode"]} {entry["size"]} {entry["model"]}: {status}: {reason}')


def _error_text(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0][:300] if text else ""}'


def measure_size(models: Dict[str, Any], mode: str, size: Tuple[int, int], args: argparse.Namespace, device: Any,
                 stopped: Dict[str, str], gemm: Callable[[], None]) -> Tuple[List[Entry], List[float]]:
    """Warm-up, interleaved timed rounds and a memory step of every model at one size of one mode; each round also
    times the reference GEMM, so the models' FLOP/s are compared with the machine's speed at the same moments.
    Returns the entries and the GEMM times."""
    import torch
    generator = torch.Generator().manual_seed(size[0] * 100003 + size[1])
    images = torch.randn(args.batch, 3, *size, generator=generator).to(device)
    entries, steps = [], {}

    def guarded(entry: Entry, action: Callable[[], Any]) -> Any:
        """Run ``action``; a failed compilation or a GPU out of memory becomes the entry's error."""
        tolerated = Exception if entry['model'] == COMPILED else torch.OutOfMemoryError
        try:
            return action()
        except tolerated as err:
            steps.pop(entry['model'], None)
            release_free_memory(device)
            _stop(entry, 'error', _error_text(err), stopped,
                  f'failed at {entry["size"]}, a smaller size ({_error_text(err)})')
            return None

    for name, model in models.items():
        entry = new_entry(name, mode, size)
        entries.append(entry)
        if name in stopped:
            entry.update(status='skipped', reason=stopped[name])
            continue
        step = steps[name] = make_step(model, mode, images)
        for i in range(args.warmup):
            seconds = guarded(entry, lambda: time_step(step, device))
            if seconds is None:
                break
            entry['warmup_s'].append(seconds)
            # A compiled model compiles in its first step: judge it on its last warm-up step.
            which = 'last' if name == COMPILED else 'first'
            if i == (args.warmup - 1 if name == COMPILED else 0) and seconds > args.budget:
                steps.pop(name)
                took = f'its {which} warm-up step took {seconds:.3g} s, over the budget of {args.budget:g} s'
                _stop(entry, 'skipped', took, stopped, f'at {entry["size"]}, a smaller size, {took}')
                break
    by_name = {e['model']: e for e in entries}
    gemm_times = []
    for _ in range(args.repeats):
        gemm_times.append(time_step(gemm, device))
        for name in list(steps):
            seconds = guarded(by_name[name], lambda: time_step(steps[name], device))
            if seconds is not None:
                by_name[name]['times_s'].append(seconds)
    for name in list(steps):
        by_name[name]['memory_bytes'] = guarded(by_name[name], lambda: peak_memory(steps[name], device))
    for entry in entries:
        if entry['status'] == 'measured':
            entry.update(median_s=statistics.median(entry['times_s']), min_s=min(entry['times_s']),
                         gemm_median_s=statistics.median(gemm_times))
    steps.clear()
    release_free_memory(device)
    return entries, gemm_times


def models_for_mode(mode: str, args: argparse.Namespace, device: Any, cache: Dict[str, Dict[str, Any]]):
    """The models timed in ``mode``, in train or eval mode (models are built once, with_cp ones for train-cp)."""
    with_cp = mode == 'train-cp'
    key = 'cp' if with_cp else 'plain'
    if key not in cache:
        names = list(args.models)
        if args.compile and 'l2vit-t' not in names and not with_cp:
            names.append('l2vit-t')
        cache[key] = build_models(names, with_cp, device)
        if args.compile and not with_cp:
            cache['compiled'] = {COMPILED: compile_model(cache[key]['l2vit-t'])}
    models = {name: cache[key][name] for name in args.models}
    if args.compile and mode in COMPILED_MODES:
        models.update(cache['compiled'])
    for model in models.values():
        if mode == 'infer':
            model.eval()  # (mmseg's ViT returns None from train()/eval(): never chain them)
        else:
            model.train()
    return models


def count_macs(cache: Dict[str, Dict[str, Any]], entries: List[Entry], batch: int, device: Any) -> List[str]:
    """Fill ``macs`` of the measured infer entries (one count per model and size); return notes for failures."""
    import torch

    from l2vit.flops import count_flops
    counted: Dict[Tuple[str, str], Optional[int]] = {}
    notes = []
    for entry in entries:
        if entry['mode'] != 'infer' or entry['status'] != 'measured':
            continue
        base = 'l2vit-t' if entry['model'] == COMPILED else entry['model']
        key = (base, entry['size'])
        if key not in counted:
            model = cache['plain'][base]
            model.eval()
            images = torch.randn(batch, 3, entry['height'], entry['width']).to(device)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore')
                    counted[key] = count_flops(model, images)[0]
            except Exception as err:  # noqa: BLE001  (a model that cannot be traced: report, keep the timings)
                counted[key] = None
                notes.append(f'FLOPs of {base} at {entry["size"]} could not be counted ({_error_text(err)})')
                note(notes[-1])
            del images
        entry['macs'] = counted[key]
    return notes


def measure(args: argparse.Namespace, device: Any) -> Tuple[List[Entry], Dict[str, Any], List[str]]:
    """Every entry (model × mode × size), the GEMM reference and notes."""
    sizes = ordered_sizes(args.sizes)
    gemm = gemm_step(device)
    for _ in range(args.warmup):
        time_step(gemm, device)
    cache: Dict[str, Dict[str, Any]] = {}
    entries, notes, gemm_times = [], [], []
    for mode in args.modes:
        models = models_for_mode(mode, args, device, cache)
        stopped: Dict[str, str] = {}
        for size in sizes:
            print(f'{mode} {size_key(size)} ...', file=sys.stderr, flush=True)
            measured, times = measure_size(models, mode, size, args, device, stopped, gemm)
            entries.extend(measured)
            gemm_times.extend(times)
    if not args.no_flops and 'infer' in args.modes:
        print('counting FLOPs ...', file=sys.stderr, flush=True)
        notes.extend(count_macs(cache, entries, args.batch, device))
    for entry in entries:
        if entry['macs'] is not None and entry['median_s']:
            entry['flops_per_s'] = 2 * entry['macs'] / entry['median_s']
            entry['gemm_percent'] = 100 * entry['flops_per_s'] / gemm_flops_per_s(entry['gemm_median_s'])
    return entries, gemm_summary(gemm_times), notes


# ------------------------------------------------------------------------------------------------------ derived
def find(entries: List[Entry], model: str, mode: str, size: str) -> Optional[Entry]:
    for entry in entries:
        if (entry['model'], entry['mode'], entry['size']) == (model, mode, size) and entry['status'] == 'measured':
            return entry
    return None


def _quotient(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def slope(points: List[Tuple[float, float]]) -> Optional[float]:
    """Least-squares slope of log(y) against log(x); None with fewer than two distinct x or a non-positive y."""
    if len({x for x, _ in points}) < 2 or any(y is None or y <= 0 for _, y in points):
        return None
    xs, ys = [math.log(x) for x, _ in points], [math.log(y) for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx)**2 for x in xs)


def exponents(entries: List[Entry], model: str, mode: str, field: str) -> Dict[str, Any]:
    """Scaling exponents of ``field`` (median_s or memory_bytes) against pixels: 512² to 1536², and fitted ≥ 512²."""
    measured = [e for e in entries if (e['model'], e['mode'], e['status']) == (model, mode, 'measured')
                and e[field] is not None]
    by_pixels = {e['pixels']: e[field] for e in measured}
    pair = None
    if EXPONENT_FROM in by_pixels and EXPONENT_TO in by_pixels:
        pair = slope([(p, by_pixels[p]) for p in (EXPONENT_FROM, EXPONENT_TO)])
    fitted = [e for e in measured if e['pixels'] >= EXPONENT_FROM]
    return dict(model=model, mode=mode, quantity='time' if field == 'median_s' else 'memory', from_512_to_1536=pair,
                fit_from_512=slope([(e['pixels'], e[field]) for e in fitted]),
                fit_sizes=[e['size'] for e in fitted])


def derive(entries: List[Entry]) -> Dict[str, Any]:
    """Ratios against Swin-T, scaling exponents and the with_cp memory ratios."""
    models = list(dict.fromkeys(e['model'] for e in entries))
    modes = list(dict.fromkeys(e['mode'] for e in entries))
    sizes = list(dict.fromkeys(e['size'] for e in entries))
    ratios = []
    for mode in modes:
        for size in sizes:
            base = find(entries, BASELINE, mode, size)
            for model in models:
                entry = find(entries, model, mode, size)
                if model == BASELINE or entry is None or base is None:
                    continue
                ratios.append(dict(model=model, mode=mode, size=size,
                                   time_vs_swin=_quotient(entry['median_s'], base['median_s']),
                                   memory_vs_swin=_quotient(entry['memory_bytes'], base['memory_bytes'])))
    scaling = [exponents(entries, model, mode, field) for mode in modes for model in models
               for field in ('median_s', 'memory_bytes') if any(e['model'] == model and e['mode'] == mode
                                                                for e in entries)]
    checkpoint = []
    for model in models:
        for size in sizes:
            plain, cp = find(entries, model, 'train', size), find(entries, model, 'train-cp', size)
            if plain is not None and cp is not None:
                checkpoint.append(dict(model=model, size=size, train_bytes=plain['memory_bytes'],
                                       train_cp_bytes=cp['memory_bytes'],
                                       ratio=_quotient(cp['memory_bytes'], plain['memory_bytes'])))
    return dict(ratios=ratios, exponents=scaling, checkpoint_memory=checkpoint)


def target_values(entries: List[Entry], derived: Dict[str, Any]) -> Dict[str, Optional[float]]:
    """The measured value of every target (None where it was not measured)."""
    def ratio(field: str) -> Optional[float]:
        return next((r[field] for r in derived['ratios']
                     if (r['model'], r['mode'], r['size']) == ('l2vit-t', 'infer', TARGET_SIZE)), None)

    entry = find(entries, 'l2vit-t', 'infer', TARGET_SIZE)
    return dict(
        latency_vs_swin=ratio('time_vs_swin'),
        memory_vs_swin=ratio('memory_vs_swin'),
        time_exponent=next((x['from_512_to_1536'] for x in derived['exponents']
                            if (x['model'], x['mode'], x['quantity']) == ('l2vit-t', 'infer', 'time')), None),
        gemm_percent=entry['gemm_percent'] if entry else None,
        checkpoint_memory=next((c['ratio'] for c in derived['checkpoint_memory']
                                if (c['model'], c['size']) == ('l2vit-t', TARGET_SIZE)), None),
    )


def evaluate_targets(entries: List[Entry], derived: Dict[str, Any]) -> List[Dict[str, Any]]:
    values = target_values(entries, derived)
    results = []
    for target in TARGETS:
        value = values[target['key']]
        if value is None:
            status = 'not measured'
        else:
            met = value <= target['limit'] if target['op'] == '<=' else value >= target['limit']
            status = 'met' if met else 'not met'
        results.append(dict(target, measured=value, status=status))
    return results


# ------------------------------------------------------------------------------------------------------ machine
def cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            match = re.search(r'^model name\s*:\s*(.+)$', f.read(), re.M)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: Any) -> Dict[str, Any]:
    import mmdet
    import mmengine
    import mmseg
    import torch
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:
        available = os.cpu_count()
    info = dict(cpu=cpu_model(), cpu_count=os.cpu_count(), cpus_available=available, platform=platform.platform(),
                device=device.type, device_name=None, cuda=None, python=platform.python_version(),
                torch=torch.__version__, mmengine=mmengine.__version__, mmdet=mmdet.__version__,
                mmseg=mmseg.__version__, threads=torch.get_num_threads())
    if device.type == 'cuda':
        info.update(device_name=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32, cudnn_benchmark=torch.backends.cudnn.benchmark)
    return info


# ------------------------------------------------------------------------------------------------------ rendering
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
    for t in report['targets']:
        digits = 1 if t['key'] == 'gemm_percent' else 2
        rows.append([t['text'], fmt(t['measured'], digits), t['status']])
    return _table(['target', 'measured', 'status'], rows, left=(0, 2))


def machine_lines(report: Report) -> List[str]:
    m, s, g = report['machine'], report['settings'], report['gemm']
    device = f'{m["device"]} ({m["device_name"]}, CUDA {m["cuda"]})' if m['device'] == 'cuda' else m['device']
    lines = [f'- machine: {m["cpu"]}, {m["cpu_count"]} cores ({m["cpus_available"]} available), {m["platform"]}',
             f'- device: {device}; torch intra-op threads: {m["threads"]}',
             f'- versions: python {m["python"]}, torch {m["torch"]}, mmengine {m["mmengine"]}, mmdet {m["mmdet"]}, '
             f'mmseg {m["mmseg"]}',
             f'- settings: batch {s["batch"]}, {plural(s["warmup"], "warm-up step")}, median (and min) of '
             f'{plural(s["repeats"], "interleaved round")}, budget {s["budget_s"]:g} s per first warm-up step',
             f'- GEMM reference: fp32 {g["op"]} {g["m"]}×{g["k"]} by {g["k"]}×{g["n"]}, timed once in every round: '
             f'median {fmt_ms(g["median_s"])} ms, {g["flops_per_s"] / 1e9:.1f} GFLOP/s (each size\'s % of GEMM uses '
             f'the GEMM times of its own rounds)']
    if m['device'] == 'cuda':
        lines.append(f'- TF32: matmul {m.get("matmul_allow_tf32")}, cuDNN {m.get("cudnn_allow_tf32")}')
    return lines


def report_lines(report: Report, heading: str = '###') -> List[str]:
    """The tables of one run, in Markdown (also what the tool prints)."""
    lines = machine_lines(report)
    lines += ['', 'Times per step in ms, peak memory of one step in MiB (beyond what was allocated before it); ratios '
              'against Swin-T at the same mode and size; FLOP/s = 2 × multiply-adds / median time.']
    for mode in report['settings']['modes']:
        lines += ['', f'{heading} {mode}', ''] + mode_table(report, mode)
    lines += ['', f'{heading} Scaling exponents (slope of log value against log pixels)', ''] + exponent_table(report)
    if report['derived']['checkpoint_memory']:
        lines += ['', f'{heading} Gradient checkpointing: peak memory of train-cp against train', '']
        lines += checkpoint_table(report)
    lines += ['', f'{heading} Targets', ''] + targets_table(report)
    if report['notes']:
        lines += [''] + [f'- note: {n}' for n in report['notes']]
    return lines


def section_title(report: Report) -> str:
    m = report['machine']
    if m['device'] == 'cuda':
        return f'GPU: {m["device_name"]}'
    return f'CPU: {m["cpu"]}, {plural(m["threads"], "thread")}'


def render_markdown(reports: Sequence[Report], json_paths: Sequence[str], docs_path: str,
                    images: Sequence[Optional[str]]) -> str:
    """The Markdown page for saved runs: a pure function of its arguments (no clock, no files)."""
    made = ' and '.join(f'`{r["command"]}` on {r["date"]}' for r in reports)
    rerender = command_line(['--from-json', *json_paths, '--docs', docs_path])
    measured = {model for r in reports for model in r['settings']['models']}
    lines = ['# Speed and memory: L²ViT-T, Swin-T and ViT-S/16 backbones', '',
             f'Generated by {made}; do not edit by hand; rerun the command to regenerate (or, to render this page '
             f'again from the saved results without measuring: `{rerender}`).', '',
             'Models: ' + '; '.join(f'`{k}` = {v}' for k, v in LABELS.items() if k in measured) + '. All are the '
             'backbones alone, built from the configs (L²ViT-T: `configs/maskrcnn_l2vit.py`, BN for SyncBN; '
             'Swin-T: mmdet\'s `swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py`; ViT-S/16: mmseg\'s `VisionTransformer`, '
             'global softmax attention), without pretrained weights. Modes: `infer` (eval, no_grad forward), `train` '
             '(forward, mean of the outputs, backward), `train-cp` (the same with `with_cp=True`).']
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
        ax.set_title(f'{mode} ({report["machine"]["device"]}, batch {report["settings"]["batch"]})')
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


def load_report(path: str) -> Report:
    if not osp.isfile(path):
        fail(f'--from-json: no such file: {path}')
    try:
        with open(path, encoding='utf-8') as f:
            report = json.load(f)
    except (OSError, ValueError) as err:
        fail(f'--from-json: cannot read {path} as JSON ({err})')
    if not isinstance(report, dict) or report.get('schema') != SCHEMA:
        fail(f'--from-json: {path} is not a benchmark.json of this tool (no "schema": "{SCHEMA}")')
    return report


# ------------------------------------------------------------------------------------------------------ main
def run_benchmark(args: argparse.Namespace, argv: Sequence[str]) -> Tuple[Report, str]:
    import torch
    device_name = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device_name == 'cuda' and not torch.cuda.is_available():
        fail('--device cuda, but torch sees no GPU (torch.cuda.is_available() is False)')
    device = torch.device(device_name)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out_dir, exist_ok=True)
    json_path = osp.normpath(osp.join(args.out_dir, 'benchmark.json'))
    date = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
    entries, gemm, notes = measure(args, device)
    derived = derive(entries)
    report = dict(
        schema=SCHEMA, command=command_line(argv), date=date, machine=machine_info(device),
        settings=dict(sizes=[size_key(s) for s in ordered_sizes(args.sizes)],
                      modes=list(args.modes), models=list(args.models) + ([COMPILED] if args.compile else []),
                      batch=args.batch, warmup=args.warmup, repeats=args.repeats, budget_s=args.budget,
                      device=device.type, threads=torch.get_num_threads(), flops=not args.no_flops,
                      out_dir=args.out_dir, docs=args.docs),
        gemm=gemm, results=entries,
        skipped=[dict(model=e['model'], mode=e['mode'], size=e['size'], status=e['status'], reason=e['reason'])
                 for e in entries if e['status'] != 'measured'],
        derived=derived, targets=evaluate_targets(entries, derived), notes=notes)
    with open(json_path, 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
    plot(report, osp.join(args.out_dir, 'benchmark.png'))
    return report, json_path


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.from_json:
        json_paths = [osp.normpath(p) for p in args.from_json]
        reports = [load_report(p) for p in json_paths]
    else:
        report, json_path = run_benchmark(args, argv)
        reports, json_paths = [report], [json_path]
    for report in reports:
        print_report(report)
        print()
    if not args.from_json:
        print(f'wrote {json_paths[0]} and {osp.join(args.out_dir, "benchmark.png")}')
    if args.docs:
        write_docs(reports, json_paths, args.docs)
    return 0


if __name__ == '__main__':
    sys.exit(main())
