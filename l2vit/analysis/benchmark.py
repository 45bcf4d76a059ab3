"""Measuring the speed and memory of the L²ViT-T backbone against Swin-T (mmdet) and ViT-S/16 (mmseg), and of the
whole Mask R-CNN with L²ViT-T against the same with Swin-T, in one process: the record that
``tools/analysis/benchmark.py`` saves as ``benchmark.json`` (:func:`measure_report`; a JSON-able dict, ``schema``
:data:`SCHEMA`) and that :mod:`l2vit.analysis.benchmark_report` renders.

The backbones are the ones the configs build, without pretrained weights:

* ``l2vit-t``: the backbone of ``configs/maskrcnn_l2vit.py`` with plain BN instead of SyncBN (no process group).
* ``swin-t``: the backbone of mmdet's ``swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py``.
* ``vit-s``: mmseg's ``VisionTransformer`` as ViT-S/16 (384 wide, 12 layers, 6 heads), global softmax attention
  over all tokens (position embedding resized to each input), so its cost grows with the square of the pixels.
* ``l2vit-t+compile`` (``--compile``): ``torch.compile`` of the same L²ViT-T module, in the ``infer`` and ``train``
  modes. Its compilation happens in the warm-up, so the budget (below) is checked on its last warm-up step.
* ``l2vit-t+onnxruntime`` (``--onnxruntime``, ``infer`` only): the same L²ViT-T module exported to ONNX once
  (TorchScript-based exporter, opset :data:`ONNX_OPSET`, batch and size dynamic: one file for every size) and run by
  an onnxruntime session on the CPU execution provider with as many intra-op threads as torch
  (:class:`l2vit.deploy.runtime.OnnxRuntimeModel`); its outputs come back as torch tensors, a copy included in its
  time. Its memory lives outside torch's allocator and is not measured. The record's ``derived.vs_eager`` gives its
  time (and the compiled model's) over torch eager L²ViT-T's at the same mode and size, from the same rounds.
* ``l2vit-t+openvino`` (``--openvino``, ``infer`` only, optional package): the same exported file compiled by
  OpenVINO for its CPU device with torch's number of threads (:class:`l2vit.deploy.runtime.OpenVinoModel`), timed and
  compared the same way.

What one step is, per mode: ``infer``: eval mode, a forward under ``torch.no_grad()``; ``train``: train mode, a
forward, loss = the sum of every output's mean, a backward, gradients dropped (set to None); ``train-cp``: the same
with backbones built with ``with_cp=True`` (gradient checkpointing); ``detector-train`` (only when asked for, not in
:data:`DEFAULT_MODES`: slow on CPU): one training iteration of the whole Mask R-CNN, exactly what mmengine's runner
does per iteration, ``model.train_step(data, optim_wrapper)`` (the model's data preprocessor, the losses, backward,
the AdamW step of the config's ``optim_wrapper``, zero_grad). Its detectors (:func:`detector_configs`,
:mod:`l2vit.analysis.detector`): ``l2vit-t`` is ``configs/maskrcnn_l2vit.py`` with BN for SyncBN and no pretrained
weights; ``swin-t`` the same config with only ``model.backbone`` replaced by mmdet's Swin-T backbone (the one above)
and ``model.neck.in_channels`` set to Swin-T's [96, 192, 384, 768], which are L²ViT-T's too, so the neck, the heads,
the data preprocessor and the optimizer (plain AdamW, lr 1e-4, weight decay 0.05; mmdet's Swin-T config would exempt
norms and position tables from decay) are the same. Its batch is ``--batch`` images or 2 (:data:`MODE_BATCH`; the
other modes 1), packed as a data loader packs them: uint8 images with ``DetDataSample`` s of 3 random gt boxes,
labels and masks each (mmdet's ``demo_mm_inputs``, seeded). Only ``l2vit-t`` and ``swin-t`` have a detector here
(:data:`DETECTOR_MODELS`); the mode is not profiled (``--profile``) and has no FLOPs.

Precision: fp32 unless ``--autocast bf16|fp16`` (the record's ``settings.autocast``): then every backbone step runs
its forward and its loss under ``torch.autocast`` in that dtype and its backward outside it, as mixed-precision
training does; the detector iteration trains with mmengine's ``AmpOptimWrapper`` in that dtype (what an AMP config
such as ``configs/mask_rcnn/mask-rcnn_l2vit-t_fpn_amp-ms-crop-3x_coco.py`` uses; GPU only), and the reference GEMM
(below) runs in that dtype.

How it is measured, per mode and size (sizes in increasing pixel count, one random batch of :func:`mode_batch`
images the same for every model):

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
* FLOP/s (``infer``): 2 × the multiply-adds :func:`l2vit.analysis.flops.count_flops` counts for the model at that
  size (mmengine's convention, attention products included) divided by the median time, also as a percentage of the
  FLOP/s of an fp32 2048×2048×2048 ``torch.mm`` timed once in each of the same rounds (its median there), so that
  both see the machine in the same state. ``--no-flops`` skips the counting.

With ``--profile`` (:func:`measure_profile`, the record's ``profile``): after the timing, one step of each model in
each backbone mode at one size (the ``--profile`` size, or the first of ``--sizes``) is profiled after one warm-up
step, and the self time of its ops is summed by op family and by direction, forward or backward
(:mod:`l2vit.analysis.op_profile`: what a family holds, and how backward is told from forward). The profiler's own
overhead is in that step, so its times are a breakdown, not a timing: shares are what it is for.

Derived (:func:`derive`, :func:`evaluate_targets`): time and memory of each model relative to Swin-T (same mode and
size; in ``detector-train``, Mask R-CNN L²ViT-T against Mask R-CNN Swin-T); scaling exponents, the slope of log(time)
(and of log(memory)) against log(pixels) from 512² to 1536² and the least-squares slope over all sizes from 512² up;
the train-cp / train memory ratio; and the project's targets (:data:`TARGETS`: one field of the L²ViT-T row of one
table, picked by mode, size...), each met, not met or not measured.

The functions that measure take the tool's options as one object with its attributes (``sizes`` as (H, W) pairs,
``modes``, ``models``, ``compile``, ``batch`` (None: per mode, :func:`mode_batch`), ``warmup``, ``repeats``,
``budget``, ``device``, ``threads``, ``no_flops``, ``out_dir``, ``docs``, and optionally ``profile``: None, True or
an (H, W) pair, ``note``: texts to record in the notes, and ``autocast``: None or a key of :data:`AUTOCAST_DTYPES`),
e.g. the tool's ``argparse.Namespace``.
"""
import argparse
import datetime
import decimal
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
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import ToolError

__all__ = [
    'SCHEMA', 'MODEL_NAMES', 'COMPILED', 'BASELINE', 'DETECTOR_MODE', 'MODES', 'DEFAULT_MODES', 'DETECTOR_MODELS',
    'DEFAULT_BATCH', 'MODE_BATCH', 'DEFAULT_SIZES', 'LABELS', 'TARGETS', 'parse_size', 'size_key', 'ordered_sizes',
    'command_line', 'detector_configs', 'build_models', 'build_detectors', 'peak_memory', 'mode_batch', 'new_entry',
    'measure', 'derive', 'evaluate_targets', 'machine_info', 'select_device', 'profile_size', 'measure_profile',
    'measure_report', 'save_report', 'load_report', 'ONNXRUNTIME', 'OPENVINO', 'ONNX_OPSET', 'AUTOCAST_DTYPES',
    'autocast_dtype', 'check_autocast'
]

ROOT = Path(__file__).resolve().parents[2]

SCHEMA = 'l2vit-benchmark/1'
MODEL_NAMES = ('l2vit-t', 'swin-t', 'vit-s')
COMPILED = 'l2vit-t+compile'
ONNXRUNTIME = 'l2vit-t+onnxruntime'
OPENVINO = 'l2vit-t+openvino'
ONNX_OPSET = 17
#: Models that are L²ViT-T run another way (compiled, exported): compared with eager L²ViT-T in ``derived.vs_eager``.
RUNTIMES = (COMPILED, ONNXRUNTIME, OPENVINO)
#: The exported runtimes: (option, model name) of each; their memory is outside torch's allocator.
EXPORTED = (('onnxruntime', ONNXRUNTIME), ('openvino', OPENVINO))
BASELINE = 'swin-t'
DETECTOR_MODE = 'detector-train'
MODES = ('infer', 'train', 'train-cp', DETECTOR_MODE)
#: The modes measured when none are named: the backbone modes (the detector iteration is slow on CPU).
DEFAULT_MODES = ('infer', 'train', 'train-cp')
COMPILED_MODES = ('infer', 'train')
#: The models that have a detector in ``detector-train`` (the others of ``--models`` are not timed there).
DETECTOR_MODELS = ('l2vit-t', 'swin-t')
#: Images per step when ``--batch`` is not given: 1, and 2 per iteration for the detector (2 images/GPU, as trained).
DEFAULT_BATCH = 1
MODE_BATCH = {DETECTOR_MODE: 2}
DEFAULT_SIZES = ('224', '512', '800x1333', '1024', '1536', '2048')
LABELS = {'l2vit-t': 'L²ViT-T', 'swin-t': 'Swin-T', 'vit-s': 'ViT-S/16', COMPILED: 'L²ViT-T, torch.compile',
          ONNXRUNTIME: 'L²ViT-T, onnxruntime (CPU)', OPENVINO: 'L²ViT-T, OpenVINO (CPU)'}
VIT_S = dict(type='VisionTransformer', patch_size=16, embed_dims=384, num_layers=12, num_heads=6, mlp_ratio=4,
             img_size=(512, 512), out_indices=(2, 5, 8, 11), init_cfg=None)
GEMM_N = 2048
#: Sizes of the two-point scaling exponent, and the smallest size of the fitted one.
EXPONENT_FROM, EXPONENT_TO = 512 * 512, 1536 * 1536
TARGET_SIZE = '800x1333'
#: ``--autocast``: the lower precisions a run can measure in (torch.autocast's dtype), by the option's name.
AUTOCAST_DTYPES = {'bf16': 'bfloat16', 'fp16': 'float16'}


def _target(key: str, text: str, op: str, limit: float, table: str, field: str, **where: str) -> Dict[str, Any]:
    """A target on ``field`` of the L²ViT-T row of ``table`` (``results``, the measured entries, or a table of
    :func:`derive`: ``ratios``, ``exponents``, ``checkpoint_memory``) whose keys equal ``where`` (mode, size, ...)."""
    return dict(key=key, text=text, op=op, limit=limit, table=table, field=field, where=dict(model='l2vit-t', **where))


def _vs_swin(mode: str, size: str, quantity: str, limit: float, key: Optional[str] = None,
             what: Optional[str] = None) -> Dict[str, Any]:
    """A target on L²ViT-T / Swin-T of ``quantity`` (time or memory) in ``mode`` at ``size`` (≤ ``limit``)."""
    height, width = size.split('x')
    shown = f'{height}²' if height == width else f'{height}×{width}'
    what = what or {'time': 'time', 'memory': 'peak memory'}[quantity]
    return _target(key or f'{mode}_{quantity}_vs_swin_{size}', f'{mode} at {shown}: L²ViT-T / Swin-T {what} ≤ '
                   f'{limit:.2f}', '<=', limit, 'ratios', f'{quantity}_vs_swin', mode=mode, size=size)


#: The project's targets (from its issues): the L²ViT-T row of one table (mode, size...) and one field of it; ``op``
#: compares the measured value with ``limit``. The ``detector-train`` limits (≤ 1.00: not slower, not bigger than
#: Mask R-CNN Swin-T) are ours; the issue asks for those ratios to be measured, not for a limit.
TARGETS = (
    _vs_swin('infer', TARGET_SIZE, 'time', 0.90, key='latency_vs_swin', what='latency'),
    _vs_swin('infer', TARGET_SIZE, 'memory', 0.90, key='memory_vs_swin'),
    _target('time_exponent', 'infer: L²ViT-T time exponent (log time / log pixels) from 512² to 1536² ≤ 1.10', '<=',
            1.10, 'exponents', 'from_512_to_1536', mode='infer', quantity='time'),
    _target('gemm_percent', 'infer at 800×1333: L²ViT-T FLOP/s ≥ 70 % of the same-process fp32 GEMM', '>=', 70.0,
            'results', 'gemm_percent', mode='infer', size=TARGET_SIZE),
    _target('checkpoint_memory', '800×1333: L²ViT-T train-cp peak memory ≤ 0.6 × train', '<=', 0.60,
            'checkpoint_memory', 'ratio', size=TARGET_SIZE),
    *(_vs_swin('train', size, quantity, 0.90) for size in ('512x512', TARGET_SIZE, '1536x1536')
      for quantity in ('time', 'memory')),
    _vs_swin('train-cp', TARGET_SIZE, 'memory', 1.00),
    *(_vs_swin(DETECTOR_MODE, TARGET_SIZE, quantity, 1.00, what=f'Mask R-CNN iteration {what}')
      for quantity, what in (('time', 'time'), ('memory', 'peak memory'))),
)
MIB = 2**20

Entry = Dict[str, Any]
Report = Dict[str, Any]
#: The tool's parsed options (or any object with the same attributes).
Options = argparse.Namespace


def note(message: str) -> None:
    print(f'note: {message}', flush=True)


# ------------------------------------------------------------------------------------------------------ sizes
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


def command_line(argv: Sequence[str]) -> str:
    return ' '.join(shlex.quote(a) for a in ['python', 'tools/analysis/benchmark.py', *argv])


# ------------------------------------------------------------------------------------------------------ models
def quiet_logger(name: str = 'l2vit_benchmark') -> None:
    """Make an ERROR-level mmengine logger ``name`` the current one (once), so that building models and their
    ``init_weights`` stay quiet."""
    from mmengine.logging import MMLogger
    if not MMLogger.check_instance_created(name):
        # The latest logger is mmengine's current one.
        MMLogger.get_instance(name, log_level='ERROR')


def detector_configs(names: Sequence[str]) -> Dict[str, Any]:
    """The Mask R-CNN config of each named model (of :data:`DETECTOR_MODELS`): ``configs/maskrcnn_l2vit.py`` for
    one process (:func:`l2vit.analysis.detector.detector_config`), for ``swin-t`` with mmdet's Swin-T backbone and
    its widths in the neck, the same config apart from the backbone."""
    from .detector import SWIN_T_CHANNELS, detector_config, swin_t_backbone
    return {name: detector_config() if name == 'l2vit-t' else detector_config(swin_t_backbone(), SWIN_T_CHANNELS)
            for name in names}


def build_models(names: Sequence[str], with_cp: bool, device: Any) -> Dict[str, Any]:
    """The named backbones (same seed, so the with_cp copies have the same weights), on ``device``: the backbones of
    :func:`detector_configs`, and ViT-S/16."""
    import torch
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS as MMSEG_MODELS

    importlib.import_module('mmdet_l2vit')  # registers L2ViT in mmdet's MODELS
    quiet_logger()
    configs = detector_configs([n for n in names if n in DETECTOR_MODELS])
    models = {}
    for name in names:
        if name in configs:
            cfg, scope, registry = dict(configs[name].model.backbone, with_cp=with_cp), 'mmdet', MMDET_MODELS
        else:
            cfg, scope, registry = dict(VIT_S, with_cp=with_cp), 'mmseg', MMSEG_MODELS
        torch.manual_seed(0)
        # A registry builds in the current default scope's registry when there is one; name the model's own.
        with DefaultScope.overwrite_default_scope(scope):
            model = registry.build(cfg)
        model.init_weights()
        models[name] = model.to(device)
    return models


def build_detectors(configs: Dict[str, Any], device: Any, autocast: Optional[str] = None) -> Dict[str, Any]:
    """The detector of each config (:func:`detector_configs`) with its optimizer wrapper
    (:class:`l2vit.analysis.detector.Detector`, same seed), on ``device``; with ``autocast`` (a key of
    :data:`AUTOCAST_DTYPES`) the optimizer wrapper is mmengine's ``AmpOptimWrapper`` in that dtype
    (:func:`l2vit.analysis.detector.amp_config`), as an AMP config trains."""
    from .detector import amp_config, build_detector
    quiet_logger()
    if autocast:
        configs = {name: amp_config(cfg, AUTOCAST_DTYPES[autocast]) for name, cfg in configs.items()}
    return {name: build_detector(cfg, device) for name, cfg in configs.items()}


def detector_settings(configs: Dict[str, Any]) -> Dict[str, Any]:
    """What the record says of the detectors of ``configs``: the config, each one's backbone and neck widths, the
    optimizer, the ground truth per image."""
    from .detector import BOXES, MASK_RCNN_CONFIG, SWIN_T_CONFIG
    optimizer = next(iter(configs.values())).optim_wrapper.optimizer if configs else {}
    return dict(config=MASK_RCNN_CONFIG.relative_to(ROOT).as_posix(), swin_t_backbone_from=SWIN_T_CONFIG,
                backbones={name: cfg.model.backbone.type for name, cfg in configs.items()},
                neck_in_channels={name: list(cfg.model.neck.in_channels) for name, cfg in configs.items()},
                optimizer={key: optimizer.get(key) for key in ('type', 'lr', 'weight_decay')}, boxes_per_image=BOXES)


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


def make_step(model: Any, mode: str, images: Any, marked: bool = False,
              autocast: Optional[str] = None) -> Callable[[], None]:
    """One step of ``mode`` (the caller has put the model in eval or train mode) on ``images``
    (:func:`step_inputs`). ``marked``: the same step with its forward (the loss included) and its backward each
    inside a ``torch.profiler.record_function`` range (:data:`~l2vit.analysis.op_profile.FORWARD_MARK`,
    :data:`~l2vit.analysis.op_profile.BACKWARD_MARK`), which is how a profile tells them apart; timed steps are not
    marked. ``autocast`` (a key of :data:`AUTOCAST_DTYPES`): the forward and the loss run under ``torch.autocast``
    in that dtype on the images' device, the backward outside it, as mixed-precision training does.
    ``detector-train``: one training iteration of the :class:`~l2vit.analysis.detector.Detector` (its own backward
    happens inside mmengine's ``train_step``, so it cannot be marked; its autocast is its optimizer wrapper's, see
    :func:`build_detectors`)."""
    import contextlib

    import torch
    from torch.profiler import record_function

    from .op_profile import BACKWARD_MARK, FORWARD_MARK

    def mark(name: str) -> Any:
        return record_function(name) if marked else contextlib.nullcontext()

    def cast() -> Any:
        if autocast is None or mode == DETECTOR_MODE:
            return contextlib.nullcontext()
        return torch.autocast(images.device.type, dtype=getattr(torch, AUTOCAST_DTYPES[autocast]))

    if mode == DETECTOR_MODE:
        if marked:
            raise ValueError(f'a {DETECTOR_MODE} step cannot be marked (its backward is inside train_step)')

        def step() -> None:
            model.train_step(images)
    elif mode == 'infer':
        def step() -> None:
            with mark(FORWARD_MARK), torch.no_grad(), cast():
                model(images)
    else:
        def step() -> None:
            try:
                with mark(FORWARD_MARK), cast():
                    loss = sum(out.float().mean() for out in model(images))
                with mark(BACKWARD_MARK):
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
    the running sum, in time order, of the allocation (+) and release (-) records of torch's profiler
    (``profile_memory=True``).

    The records are read from the profiler's public Chrome-trace export: one ``[memory]`` event per record, its
    signed size in ``args.Bytes``, ``args['Device Type']`` 0 for CPU, ``ts`` in µs with ns decimals (read exactly,
    as decimals). The public ``prof.events()`` / ``key_averages()`` give each op only its records summed over the
    op's duration, whose running sum would miss the peaks inside an op (a temporary freed before the op returns)."""
    from torch.profiler import ProfilerActivity, profile

    from .op_profile import quiet_profiler
    quiet_profiler()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, 'trace.json')
        prof.export_chrome_trace(path)
        with open(path, encoding='utf-8') as f:
            events = json.load(f, parse_float=decimal.Decimal)['traceEvents']
    records = sorted((decimal.Decimal(e['ts']), int(e['args']['Bytes'])) for e in events
                     if e.get('name') == '[memory]' and e.get('args', {}).get('Device Type') == 0)
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


def gemm_step(device: Any, dtype: str = 'float32') -> Callable[[], None]:
    """One GEMM of 2048×2048 by 2048×2048 in ``dtype`` (fp32 unless a run measures under autocast: then in its
    dtype), the machine's reference speed."""
    import torch
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(GEMM_N, GEMM_N, generator=generator).to(device, getattr(torch, dtype))
    b = torch.randn(GEMM_N, GEMM_N, generator=generator).to(device, getattr(torch, dtype))

    def step() -> None:
        torch.mm(a, b)

    return step


def gemm_flops_per_s(seconds: float) -> float:
    return 2 * GEMM_N**3 / seconds


def gemm_summary(times: List[float], dtype: str = 'float32') -> Dict[str, Any]:
    median = statistics.median(times)
    return dict(op='torch.mm', dtype=dtype, m=GEMM_N, n=GEMM_N, k=GEMM_N, times_s=times, median_s=median,
                min_s=min(times), flops_per_s=gemm_flops_per_s(median))


# ------------------------------------------------------------------------------------------------------ measuring
def random_images(size: Tuple[int, int], batch: int, device: Any) -> Any:
    """A random batch of images of ``size``, the same for every model and run at that size."""
    import torch
    generator = torch.Generator().manual_seed(size[0] * 100003 + size[1])
    return torch.randn(batch, 3, *size, generator=generator).to(device)


def mode_batch(options: Options, mode: str) -> int:
    """Images per step in ``mode``: ``--batch``, else :data:`MODE_BATCH` or :data:`DEFAULT_BATCH`."""
    return options.batch or MODE_BATCH.get(mode, DEFAULT_BATCH)


def autocast_dtype(options: Options) -> str:
    """The dtype the run's steps compute in: ``--autocast``'s (:data:`AUTOCAST_DTYPES`), else float32."""
    name = getattr(options, 'autocast', None)
    return AUTOCAST_DTYPES[name] if name else 'float32'


def check_autocast(options: Options, device: Any) -> None:
    """What ``--autocast`` cannot be combined with, as a :class:`~l2vit.errors.ToolError` that says what to do: the
    exported runtimes (fp32 files), and ``detector-train`` off a GPU (mmengine's ``AmpOptimWrapper``, which AMP
    configs train with, runs on GPUs only)."""
    name = getattr(options, 'autocast', None)
    if not name:
        return
    if name not in AUTOCAST_DTYPES:
        raise ToolError(f'--autocast {name}: unknown; choose one of {", ".join(AUTOCAST_DTYPES)}')
    exported = _exported(options)
    if exported:
        raise ToolError(f'--autocast {name} times torch under autocast; {", ".join(exported)} run the exported fp32 '
                        'file. Measure them in a run without --autocast')
    if DETECTOR_MODE in options.modes and device.type != 'cuda':
        raise ToolError(f'--autocast {name} with {DETECTOR_MODE}: the detector iteration runs mmengine\'s '
                        'AmpOptimWrapper, as AMP configs train, and it needs a GPU. Use --device cuda, or drop '
                        f'{DETECTOR_MODE} from --modes on the CPU')


def step_inputs(mode: str, size: Tuple[int, int], batch: int, device: Any) -> Any:
    """What a step of ``mode`` takes at ``size``: a random image batch (:func:`random_images`), or for
    ``detector-train`` a packed batch with ground truth (:func:`l2vit.analysis.detector.packed_batch`)."""
    if mode == DETECTOR_MODE:
        from .detector import packed_batch
        return packed_batch(size, batch)
    return random_images(size, batch, device)


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


def measure_size(models: Dict[str, Any], mode: str, size: Tuple[int, int], options: Options, device: Any,
                 stopped: Dict[str, str], gemm: Callable[[], None]) -> Tuple[List[Entry], List[float]]:
    """Warm-up, interleaved timed rounds and a memory step of every model at one size of one mode; each round also
    times the reference GEMM, so the models' FLOP/s are compared with the machine's speed at the same moments.
    Returns the entries and the GEMM times."""
    import torch
    images = step_inputs(mode, size, mode_batch(options, mode), device)
    entries, steps = [], {}

    def guarded(entry: Entry, action: Callable[[], Any]) -> Any:
        """Run ``action``; a failed compilation or a GPU out of memory becomes the entry's error."""
        tolerated = Exception if entry['model'] in RUNTIMES else torch.OutOfMemoryError
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
        step = steps[name] = make_step(model, mode, images, autocast=getattr(options, 'autocast', None))
        for i in range(options.warmup):
            seconds = guarded(entry, lambda: time_step(step, device))
            if seconds is None:
                break
            entry['warmup_s'].append(seconds)
            # A compiled model compiles in its first step: judge it on its last warm-up step.
            which = 'last' if name == COMPILED else 'first'
            if i == (options.warmup - 1 if name == COMPILED else 0) and seconds > options.budget:
                steps.pop(name)
                took = f'its {which} warm-up step took {seconds:.3g} s, over the budget of {options.budget:g} s'
                _stop(entry, 'skipped', took, stopped, f'at {entry["size"]}, a smaller size, {took}')
                break
    by_name = {e['model']: e for e in entries}
    gemm_times = []
    for _ in range(options.repeats):
        gemm_times.append(time_step(gemm, device))
        for name in list(steps):
            seconds = guarded(by_name[name], lambda: time_step(steps[name], device))
            if seconds is not None:
                by_name[name]['times_s'].append(seconds)
    for name in list(steps):
        if name not in dict(EXPORTED).values():  # the exported runtimes allocate outside torch
            by_name[name]['memory_bytes'] = guarded(by_name[name], lambda: peak_memory(steps[name], device))
    for entry in entries:
        if entry['status'] == 'measured':
            entry.update(median_s=statistics.median(entry['times_s']), min_s=min(entry['times_s']),
                         gemm_median_s=statistics.median(gemm_times))
    steps.clear()
    release_free_memory(device)
    return entries, gemm_times


def models_for_mode(mode: str, options: Options, device: Any, cache: Dict[str, Dict[str, Any]]):
    """The models timed in ``mode``, in train or eval mode (models are built once, with_cp ones for train-cp; for
    ``detector-train`` the detectors of the :data:`DETECTOR_MODELS` in ``options.models``)."""
    if mode == DETECTOR_MODE:
        if 'detector' not in cache:
            configs = detector_configs([n for n in options.models if n in DETECTOR_MODELS])
            cache['detector'] = build_detectors(configs, device, getattr(options, 'autocast', None))
            cache['detector_settings'] = detector_settings(configs)
        for detector in cache['detector'].values():
            detector.train()
        return dict(cache['detector'])
    with_cp = mode == 'train-cp'
    key = 'cp' if with_cp else 'plain'
    if key not in cache:
        names = list(options.models)
        if (options.compile or _exported(options)) and 'l2vit-t' not in names and not with_cp:
            names.append('l2vit-t')
        cache[key] = build_models(names, with_cp, device)
        if options.compile and not with_cp:
            cache['compiled'] = {COMPILED: compile_model(cache[key]['l2vit-t'])}
    models = {name: cache[key][name] for name in options.models}
    if options.compile and mode in COMPILED_MODES:
        models.update(cache['compiled'])
    for option, name in EXPORTED:
        if getattr(options, option, False) and mode == 'infer':
            if option not in cache:
                cache[option] = {name: exported_model(option, cache['plain']['l2vit-t'], options, device)}
            models.update(cache[option])
    for model in models.values():
        if mode == 'infer':
            model.eval()  # (mmseg's ViT returns None from train()/eval(): never chain them)
        else:
            model.train()
    return models


def _exported(options: Options) -> List[str]:
    """The exported runtimes ``options`` asks for (``--onnxruntime``, ``--openvino``)."""
    return [name for option, name in EXPORTED if getattr(options, option, False)]


def exported_model(option: str, model: Any, options: Options, device: Any) -> Any:
    """``model`` (eager L²ViT-T) exported with dynamic batch and size to ``options.out_dir/l2vit-t-<option>.onnx``
    and run on the CPU with torch's intra-op threads by onnxruntime
    (:class:`l2vit.deploy.runtime.OnnxRuntimeModel`) or OpenVINO (:class:`l2vit.deploy.runtime.OpenVinoModel`)."""
    import torch

    from ..deploy.runtime import OnnxRuntimeModel, OpenVinoModel, require_onnxruntime
    if device.type != 'cpu':
        raise ToolError(f'--{option} times a CPU runtime; run it with --device cpu')
    require_onnxruntime()
    names = [f'stage{i}' for i in model.out_indices]
    example = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    path = osp.join(options.out_dir, f'l2vit-t-{option}.onnx')
    print(f'exporting l2vit-t to {path} for {option} ...', file=sys.stderr, flush=True)
    runtime = OnnxRuntimeModel if option == 'onnxruntime' else OpenVinoModel
    return runtime(model, path, names, example, ONNX_OPSET, threads=torch.get_num_threads())


def count_macs(cache: Dict[str, Dict[str, Any]], entries: List[Entry], batch: int, device: Any) -> List[str]:
    """Fill ``macs`` of the measured infer entries (one count per model and size); return notes for failures."""
    import torch

    from .flops import count_flops
    counted: Dict[Tuple[str, str], Optional[int]] = {}
    notes = []
    for entry in entries:
        if entry['mode'] != 'infer' or entry['status'] != 'measured':
            continue
        base = 'l2vit-t' if entry['model'] in RUNTIMES else entry['model']
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


def measure(options: Options, device: Any,
            cache: Optional[Dict[str, Dict[str, Any]]] = None) -> Tuple[List[Entry], Dict[str, Any], List[str]]:
    """Every entry (model × mode × size), the GEMM reference and notes. ``cache``: where the models built are kept
    (:func:`models_for_mode`), to be used again after."""
    sizes = ordered_sizes(options.sizes)
    gemm = gemm_step(device, autocast_dtype(options))
    for _ in range(options.warmup):
        time_step(gemm, device)
    cache = {} if cache is None else cache
    entries, notes, gemm_times = [], [], []
    for mode in options.modes:
        models = models_for_mode(mode, options, device, cache)
        stopped: Dict[str, str] = {}
        for size in sizes:
            print(f'{mode} {size_key(size)} ...', file=sys.stderr, flush=True)
            measured, times = measure_size(models, mode, size, options, device, stopped, gemm)
            entries.extend(measured)
            gemm_times.extend(times)
    if not options.no_flops and 'infer' in options.modes:
        print('counting FLOPs ...', file=sys.stderr, flush=True)
        notes.extend(count_macs(cache, entries, mode_batch(options, 'infer'), device))
    for entry in entries:
        if entry['macs'] is not None and entry['median_s']:
            entry['flops_per_s'] = 2 * entry['macs'] / entry['median_s']
            entry['gemm_percent'] = 100 * entry['flops_per_s'] / gemm_flops_per_s(entry['gemm_median_s'])
    return entries, gemm_summary(gemm_times, autocast_dtype(options)), notes


def profile_size(options: Options) -> Optional[Tuple[int, int]]:
    """The size ``--profile`` asks for: None (no profile), the size given, or (``--profile`` alone, ``True``) the
    first of ``--sizes``."""
    size = getattr(options, 'profile', None)
    return tuple(options.sizes[0]) if size is True else tuple(size) if size else None


def profiled_modes(options: Options) -> List[str]:
    """The modes of ``options.modes`` that ``--profile`` profiles: the backbone ones (not ``detector-train``)."""
    return [mode for mode in options.modes if mode != DETECTOR_MODE]


def measure_profile(options: Options, device: Any, cache: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The record's ``profile``: in every mode of :func:`profiled_modes`, each model of ``options.models`` (not the
    compiled one) at :func:`profile_size`: one warm-up step, then one marked step profiled
    (:func:`l2vit.analysis.op_profile.profile_step`). A model whose warm-up step takes longer than the budget is
    skipped; a GPU out of memory is the run's error. Also the families (what each holds) and the load average
    (1 min) before and after, a hint of how busy the machine was."""
    import torch

    from .op_profile import TOP_OPS, family_legend, profile_step
    size = profile_size(options)
    load_before = _load_average()
    modes = profiled_modes(options)
    batch = mode_batch(options, 'train')  # the backbone modes' batch, the same in all of them
    images = random_images(size, batch, device)
    runs = []
    for mode in modes:
        models = models_for_mode(mode, options, device, cache)
        for name in options.models:
            print(f'profile {mode} {size_key(size)} {name} ...', file=sys.stderr, flush=True)
            run = dict(model=name, mode=mode, size=size_key(size), status='profiled', reason=None, warmup_s=None)
            runs.append(run)
            step = make_step(models[name], mode, images, marked=True, autocast=getattr(options, 'autocast', None))
            try:
                run['warmup_s'] = time_step(step, device)
                if run['warmup_s'] > options.budget:
                    run.update(status='skipped', reason=f'its warm-up step took {run["warmup_s"]:.3g} s, over the '
                               f'budget of {options.budget:g} s')
                else:
                    run.update(profile_step(step, device))
            except torch.OutOfMemoryError as err:
                run.update(status='error', reason=_error_text(err))
            if run['status'] != 'profiled':
                note(f'profile {mode} {run["size"]} {name}: {run["status"]}: {run["reason"]}')
            del step
            release_free_memory(device)
    return dict(size=size_key(size), modes=modes, models=list(options.models), batch=batch,
                top_ops=TOP_OPS, load_average_before=load_before, load_average_after=_load_average(),
                families=family_legend(), runs=runs)


def _load_average() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


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
    vs_eager = []
    for mode in modes:
        for size in sizes:
            eager = find(entries, 'l2vit-t', mode, size)
            for model in RUNTIMES:
                entry = find(entries, model, mode, size)
                if entry is not None and eager is not None:
                    vs_eager.append(dict(model=model, mode=mode, size=size, median_s=entry['median_s'],
                                         eager_median_s=eager['median_s'],
                                         time_vs_eager=_quotient(entry['median_s'], eager['median_s'])))
    return dict(ratios=ratios, exponents=scaling, checkpoint_memory=checkpoint, vs_eager=vs_eager)


def target_values(entries: List[Entry], derived: Dict[str, Any]) -> Dict[str, Optional[float]]:
    """The measured value of every target (None where it was not measured): its field of the first row of its table
    that matches its ``where``."""
    tables = dict(derived, results=[e for e in entries if e['status'] == 'measured'])
    return {t['key']: next((row[t['field']] for row in tables[t['table']]
                            if all(row.get(k) == v for k, v in t['where'].items())), None) for t in TARGETS}


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


# ------------------------------------------------------------------------------------------------------ the record
def select_device(name: Optional[str], threads: Optional[int] = None) -> Any:
    """The torch device to measure on (``None``: cuda if available, else cpu), with ``threads`` intra-op threads
    when given."""
    import torch
    device_name = name or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device_name == 'cuda' and not torch.cuda.is_available():
        raise ToolError('--device cuda, but torch sees no GPU (torch.cuda.is_available() is False)')
    if threads:
        torch.set_num_threads(threads)
    return torch.device(device_name)


def measure_report(options: Options, argv: Sequence[str], device: Any) -> Report:
    """Measure everything ``options`` asks for on ``device`` (:func:`select_device`) and return the record, a
    JSON-able dict: schema, the command (``argv`` as given to the tool), date, machine, settings, the GEMM reference,
    every entry (``results``; ``skipped`` repeats the ones not measured, with why), the derived values, the
    targets, notes (``options.note`` first) and, with ``options.profile``, the ``profile``
    (:func:`measure_profile`)."""
    import torch
    check_autocast(options, device)
    date = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
    cache: Dict[str, Dict[str, Any]] = {}
    entries, gemm, notes = measure(options, device, cache)
    size = profile_size(options) if profiled_modes(options) else None
    profile = measure_profile(options, device, cache) if size else None
    derived = derive(entries)
    report = dict(
        schema=SCHEMA, command=command_line(argv), date=date, machine=machine_info(device),
        settings=dict(sizes=[size_key(s) for s in ordered_sizes(options.sizes)],
                      modes=list(options.modes),
                      models=list(options.models) + ([COMPILED] if options.compile else [])
                      + _exported(options),
                      batch=mode_batch(options, 'train'), batches={m: mode_batch(options, m) for m in options.modes},
                      warmup=options.warmup, repeats=options.repeats, budget_s=options.budget,
                      device=device.type, threads=torch.get_num_threads(), flops=not options.no_flops,
                      autocast=getattr(options, 'autocast', None),
                      out_dir=options.out_dir, docs=options.docs, profile=size_key(size) if size else None),
        gemm=gemm, results=entries,
        skipped=[dict(model=e['model'], mode=e['mode'], size=e['size'], status=e['status'], reason=e['reason'])
                 for e in entries if e['status'] != 'measured'],
        derived=derived, targets=evaluate_targets(entries, derived),
        notes=list(getattr(options, 'note', None) or []) + notes)
    if profile is not None:
        report['profile'] = profile
    if 'detector_settings' in cache:
        report['settings']['detector'] = cache['detector_settings']
    if 'onnxruntime' in cache:
        import onnxruntime
        runtime = cache['onnxruntime'][ONNXRUNTIME]
        report['settings']['onnxruntime'] = dict(version=onnxruntime.__version__, provider='CPUExecutionProvider',
                                                 opset=runtime.opset, intra_op_threads=runtime.threads,
                                                 exporter='torch.onnx.export(dynamo=False)', dynamic=True)
    if 'openvino' in cache:
        runtime = cache['openvino'][OPENVINO]
        report['settings']['openvino'] = dict(version=runtime.version, device='CPU', opset=runtime.opset,
                                              inference_threads=runtime.threads,
                                              exporter='torch.onnx.export(dynamo=False)', dynamic=True)
    return report


def load_report(path: str) -> Report:
    """A saved ``benchmark.json``, checked to be one (:class:`~l2vit.errors.ToolError` otherwise)."""
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


def save_report(report: Report, out_dir: str) -> str:
    """Write ``report`` as ``benchmark.json`` in ``out_dir``; return its path."""
    json_path = osp.normpath(osp.join(out_dir, 'benchmark.json'))
    with open(json_path, 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
    return json_path
