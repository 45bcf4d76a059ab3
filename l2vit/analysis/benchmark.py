"""Time and peak memory of backbones and whole detectors, measured side by side in one process; plain data out.

:func:`measure_steps` times plain callables in interleaved rounds (so that the machine's drift hits all alike) with
``torch.utils.benchmark``'s accelerator-synchronising clock (medians), then their peak tensor
memory (a GPU's ``max_memory_allocated``; on the CPU the running sum of ``torch.profiler``'s allocation records).
:func:`benchmark_backbones` runs it for L²ViT-T (a config's), Swin-T and ViT-S/16 per mode (``infer``, ``train``:
loss = sum of the outputs' means, backward; ``train-cp``: built ``with_cp``; ``detector-train``: one
``model.train_step`` of the config's detector, and with Swin-T's backbone) and size, and returns the record that
``tools/analysis/benchmark.py`` saves and renders.
"""
import contextlib
import copy
import datetime
import functools
import gc
import itertools
import logging
import math
import os
import os.path as osp
import platform
import statistics
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import ToolError

__all__ = ['SCHEMA', 'MODELS', 'MODES', 'DETECTOR_MODE', 'measure_steps', 'peak_memory', 'derive', 'slope',
           'benchmark_backbones', 'machine_info', 'cpu_info', 'busy_warning', 'hxw', 'base_config', 'one_process',
           'build_detector', 'packed_inputs']

SCHEMA = 'l2vit-benchmark/1'
MODELS = ('l2vit-t', 'swin-t', 'vit-s')
#: L²ViT-T without its CPU fast paths (``cpu_fast_paths=False``): measured only when named.
PLAIN = 'l2vit-t-plain'
DETECTOR_MODE = 'detector-train'
MODES = ('infer', 'train', 'train-cp', DETECTOR_MODE)
BASELINE = 'swin-t'
COMPILED = 'l2vit-t+compile'
#: Other ways to run L²ViT-T: (option of :func:`benchmark_backbones`'s ``runtimes``, model name); exported ones
#: run the ONNX file on the CPU, outside torch's allocator (no memory measured).
RUNTIMES = {'onnxruntime': 'l2vit-t+onnxruntime', 'openvino': 'l2vit-t+openvino'}
AUTOCAST_DTYPES = {'bf16': 'bfloat16', 'fp16': 'float16'}
SWIN_T_CONFIG = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
SWIN_T_CHANNELS = (96, 192, 384, 768)
VIT_S = dict(type='VisionTransformer', patch_size=16, embed_dims=384, num_layers=12, num_heads=6, mlp_ratio=4,
             img_size=(512, 512), out_indices=(2, 5, 8, 11), init_cfg=None)
#: Ground-truth instances per image of :func:`packed_inputs`.
BOXES = 3
EXPONENT_FROM, EXPONENT_TO = 512 * 512, 1536 * 1536


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _release(device: Any) -> None:
    import torch
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def _cpu_tensor_peak(step: Callable[[], Any]) -> int:
    """The most bytes CPU tensors hold at once during ``step`` beyond those held before: the running sum, in time
    order, of the profiler's allocation (+) and release (-) records (``prof.events()`` sums each op's records, which
    would miss a temporary freed inside an op)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    os.environ.setdefault('KINETO_LOG_LEVEL', '6')  # no profiler progress lines or a CPU machine's 'ERROR'
    from ..quiet import PROFILER_UNKNOWN_BLOCK, native_stderr_without
    with native_stderr_without(PROFILER_UNKNOWN_BLOCK):  # blocks from before the profile, freed in it
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
    records = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                     if e.name() == '[memory]' and e.device_type() == DeviceType.CPU)
    return max([0, *itertools.accumulate(nbytes for _, nbytes in records)])


def peak_memory(step: Callable[[], Any], device: Any) -> int:
    """The most tensor memory (bytes) one call of ``step`` holds at once beyond what was allocated before it."""
    import torch
    _release(device)
    if device.type != 'cuda':
        return _cpu_tensor_peak(step)
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def _seconds(step: Callable[[], Any]) -> float:
    from torch.utils.benchmark import timer  # synchronises the accelerator before reading the clock
    start = timer()
    step()
    return timer() - start


def _error_text(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f'{type(err).__name__}: {lines[0][:300] if lines else ""}'


def _result(status: str = 'measured', reason: Optional[str] = None) -> Dict[str, Any]:
    return dict(status=status, reason=reason, warmup_s=[], times_s=[], median_s=None, min_s=None, memory_bytes=None)


def measure_steps(steps: Dict[str, Callable[[], Any]], device: Any, warmup: int = 1, repeats: int = 3,
                  budget: float = math.inf, memory: bool = True, reference: Optional[Callable[[], Any]] = None,
                  judge_last: Sequence[str] = (), no_memory: Sequence[str] = (),
                  tolerate: Optional[Dict[str, type]] = None) -> Tuple[Dict[str, dict], list]:
    """Time every step of ``steps`` (name -> callable) on ``device``: ``warmup`` calls each, then ``repeats`` rounds
    that call each once in turn (and ``reference`` once, e.g. a GEMM), then with ``memory`` one more call for its
    peak tensor memory (:func:`peak_memory`; not for the names in ``no_memory``, which allocate outside torch). A
    step whose first warm-up call (its last, for names in ``judge_last``: a compiled model compiles in its first)
    takes longer than ``budget`` seconds is not timed; an error of a type in ``tolerate`` (by name; default: a GPU
    out of memory) ends its step's measuring.

    Returns ({name: dict(status 'measured' | 'skipped' | 'error', reason, warmup_s, times_s, median_s, min_s,
    memory_bytes)}, the reference's times)."""
    import torch
    results = {name: _result() for name in steps}
    live, tolerate = dict(steps), tolerate or {}

    def attempt(name: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except tolerate.get(name, torch.OutOfMemoryError) as err:
            live.pop(name, None)
            results[name].update(status='error', reason=_error_text(err))
            _release(device)
            return None

    for name, step in steps.items():
        for i in range(warmup):
            seconds = attempt(name, lambda: _seconds(step))
            if seconds is None:
                break
            results[name]['warmup_s'].append(seconds)
            if i == (warmup - 1 if name in judge_last else 0) and seconds > budget:
                which = 'last' if name in judge_last else 'first'
                results[name].update(status='skipped', reason=f'its {which} warm-up step took {seconds:.3g} s, over '
                                     f'the budget of {budget:g} s')
                live.pop(name)
                break
    reference_times = []
    for _ in range(repeats):
        if reference is not None:
            reference_times.append(_seconds(reference))
        for name in list(live):
            seconds = attempt(name, lambda: _seconds(live[name]))
            if seconds is not None:
                results[name]['times_s'].append(seconds)
    for name in list(live):
        if memory and name not in no_memory:
            results[name]['memory_bytes'] = attempt(name, lambda: peak_memory(live[name], device))
    for result in results.values():
        if result['status'] == 'measured':
            result.update(median_s=statistics.median(result['times_s']), min_s=min(result['times_s']))
    _release(device)
    return results, reference_times


def base_config(config: str) -> Any:
    """An mmengine ``Config`` of a file or of a library config named ``pkg::path`` (as a ``_base_`` names one)."""
    from mmengine.config import Config
    return Config.fromstring(f'_base_ = {config!r}', '.py') if '::' in config else Config.fromfile(config)


def one_process(cfg: Any) -> Any:
    """``cfg`` with every SyncBN as BN and no ``init_cfg`` that loads weights (changed in place)."""
    from ..apis.config_tree import drop_pretrained, sync_bn_to_bn
    drop_pretrained(cfg.model)
    sync_bn_to_bn(cfg.model)
    return cfg


def build_detector(cfg: Any, device: Any, seed: int = 0, optimizer: bool = True) -> Tuple[Any, Any]:
    """(model, optim_wrapper or None without ``optimizer``) of a config, as mmengine's runner builds them, weights
    initialised after ``torch.manual_seed(seed)``, on ``device``."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from ..apis.config import build_model
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = build_model(cfg, pretrained=False)
        model.init_weights()
        model.to(device)
        return model, build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper)) if optimizer else None


def packed_inputs(scope: str, size: Tuple[int, int], batch: int, num_classes: int = 80) -> Dict[str, Any]:
    """A batch as the data loader packs one, with random ground truth (seeded), on the CPU: uint8 images of ``size``
    (H, W) and mmdet's :data:`BOXES` boxes, labels and masks each (its ``demo_mm_inputs``) or mmseg's label maps."""
    import torch
    if scope == 'mmdet':
        from mmdet.testing import demo_mm_inputs
        return demo_mm_inputs(batch_size=batch, image_shapes=(3, *size), num_items=[BOXES] * batch,
                              num_classes=num_classes, with_mask=True)
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    generator, inputs, samples = torch.Generator().manual_seed(0), [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, *size), generator=generator, dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size, scale_factor=(1., 1.),
                                             flip=False))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, *size), generator=generator))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _quiet_logger(name: str = 'l2vit_benchmark') -> None:
    from mmengine.logging import MMLogger
    if not MMLogger.check_instance_created(name):
        MMLogger.get_instance(name, log_level='ERROR')  # the latest logger is mmengine's current one


def _detector_configs(config: str, names: Sequence[str], device: Any) -> Dict[str, Any]:
    """``config`` (our Mask R-CNN) for one process, and the same with only the backbone replaced by mmdet's Swin-T
    (and the neck's in_channels by its widths), for the named models that have one. On a CPU L²ViT runs its CPU
    fast paths (``cpu_fast_paths=True``), and ``l2vit-t-plain`` is the same without them."""
    configs = {}
    for name in (n for n in names if n in ('l2vit-t', PLAIN, 'swin-t')):
        configs[name] = cfg = base_config(config)
        if name != 'swin-t':
            cfg.model.backbone.cpu_fast_paths = name == 'l2vit-t' and device.type == 'cpu'
        if name == 'swin-t':
            cfg.model.backbone = dict(base_config(SWIN_T_CONFIG).model.backbone.to_dict(), init_cfg=None)
            cfg.model.neck.in_channels = list(SWIN_T_CHANNELS)
        one_process(cfg)
    return configs


def _build_backbones(config: str, names: Sequence[str], with_cp: bool, device: Any) -> Dict[str, Any]:
    import mmseg.models  # noqa: F401
    import torch
    from mmengine.registry import MODELS as REGISTRY
    from mmengine.registry import DefaultScope

    import mmdet_l2vit  # noqa: F401  (registers L2ViT in mmdet's MODELS)

    configs = _detector_configs(config, names, device)
    models = {}
    for name in names:
        cfg, scope = (configs[name].model.backbone, 'mmdet') if name in configs else (VIT_S, 'mmseg')
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope(scope):
            model = REGISTRY.build(dict(cfg, with_cp=with_cp))
        model.init_weights()
        models[name] = model.to(device)
    return models


def _backbone_step(model: Any, mode: str, images: Any, autocast: Optional[str], marked: bool = False):
    """One step of ``mode``; ``marked``: forward and backward inside the profiler ranges of
    :mod:`~l2vit.analysis.op_profile` (how a profile tells them apart)."""
    import torch
    from torch.profiler import record_function

    from .op_profile import BACKWARD_MARK, FORWARD_MARK
    mark = record_function if marked else (lambda name: contextlib.nullcontext())
    dtype = getattr(torch, AUTOCAST_DTYPES[autocast]) if autocast else None

    def forward() -> Any:
        with mark(FORWARD_MARK), torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
            return model(images)

    def train() -> None:
        try:
            loss = sum(out.float().mean() for out in forward())
            with mark(BACKWARD_MARK):
                loss.backward()
        finally:
            for param in model.parameters():
                param.grad = None

    return torch.no_grad()(forward) if mode == 'infer' else train


def slope(points: Sequence[Tuple[float, float]]) -> Optional[float]:
    """Least-squares slope of log(y) against log(x): the exponent of a power law; None with fewer than two distinct
    x or a y that is not positive."""
    if len({x for x, _ in points}) < 2 or any(y is None or y <= 0 for _, y in points):
        return None
    return statistics.linear_regression([math.log(x) for x, _ in points], [math.log(y) for _, y in points]).slope


def _quotient(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def derive(entries: List[dict]) -> Dict[str, list]:
    """From the measured entries: time and memory against Swin-T at the same mode and size (``ratios``), against
    eager L²ViT-T for the other runtimes (``vs_eager``), the scaling exponents of time and memory against pixels
    (512² to 1536², and fitted from 512² up) and the train-cp / train memory ratio (``checkpoint_memory``)."""
    measured = {(e['model'], e['mode'], e['size']): e for e in entries if e['status'] == 'measured'}
    keys = list(dict.fromkeys((e['model'], e['mode']) for e in entries))
    ratios, vs_eager, checkpoint, scaling = [], [], [], []
    for (model, mode, size), e in measured.items():
        base, eager = measured.get((BASELINE, mode, size)), measured.get(('l2vit-t', mode, size))
        if base is not None and model != BASELINE:
            ratios.append(dict(model=model, mode=mode, size=size,
                               time_vs_swin=_quotient(e['median_s'], base['median_s']),
                               memory_vs_swin=_quotient(e['memory_bytes'], base['memory_bytes'])))
        if eager is not None and model in (COMPILED, *RUNTIMES.values()):
            vs_eager.append(dict(model=model, mode=mode, size=size, median_s=e['median_s'],
                                 eager_median_s=eager['median_s'],
                                 time_vs_eager=_quotient(e['median_s'], eager['median_s'])))
        plain = measured.get((model, 'train', size))
        if mode == 'train-cp' and plain is not None:
            checkpoint.append(dict(model=model, size=size, train_bytes=plain['memory_bytes'],
                                   train_cp_bytes=e['memory_bytes'],
                                   ratio=_quotient(e['memory_bytes'], plain['memory_bytes'])))
    for model, mode in keys:
        for field, quantity in (('median_s', 'time'), ('memory_bytes', 'memory')):
            rows = [e for (m, md, _), e in measured.items() if (m, md) == (model, mode) and e[field] is not None]
            fitted = [e for e in rows if e['pixels'] >= EXPONENT_FROM]
            ends = [(e['pixels'], e[field]) for e in rows if e['pixels'] in (EXPONENT_FROM, EXPONENT_TO)]
            scaling.append(dict(model=model, mode=mode, quantity=quantity, from_512_to_1536=slope(ends),
                                fit_from_512=slope([(e['pixels'], e[field]) for e in fitted]),
                                fit_sizes=[e['size'] for e in fitted]))
    return dict(ratios=ratios, exponents=scaling, checkpoint_memory=checkpoint, vs_eager=vs_eager)


#: The CPU flags a record keeps: the vector and matrix units that decide which kernels oneDNN and torch can run.
CPU_FLAGS = ('avx2', 'avx512f', 'avx512_bf16', 'avx512_vnni', 'amx_tile', 'amx_bf16', 'amx_int8', 'amx_fp16')


def hxw(size: Sequence[int]) -> str:
    """An (H, W) size as the tools take and write it: ``'800x1333'`` is 800 rows by 1333 columns."""
    return f'{size[0]}x{size[1]}'


def busy_warning(load: Optional[float], cores: int, threads: int) -> Optional[str]:
    """Why timings taken now would be skewed, or None: the 1-minute ``load`` average leaves fewer free cores than
    ``threads`` (torch's intra-op threads; a thread without a core of its own waits for one at every parallel
    region), or the machine is busy (``load`` >= ``cores`` - 0.5) on its own."""
    if load is None:
        return None
    free = cores - load
    if threads > free + 0.5 or free < 0.5:
        return (f'the machine is busy: 1-minute load average {load:.2f} on {cores} usable cores leaves about '
                f'{max(free, 0):.1f} free for {threads} torch threads, so the timings will be slow and noisy; '
                'measure on an idle machine, or with --threads at most the free cores')
    return None


def cpu_info(threads: int) -> Dict[str, Any]:
    """The CPU (``cpu``: /proc/cpuinfo's model name, ``cpu_flags``: those of :data:`CPU_FLAGS` it has, ``cores``:
    the cores this process may run on) and the load average now; logs :func:`busy_warning`'s warning for
    ``threads`` threads."""
    cpu, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError), open('/proc/cpuinfo') as f:
        first = (line.split(':', 1) for line in itertools.takewhile(str.strip, f) if ':' in line)  # processor 0
        info = {key.strip(): value.strip() for key, value in first}
        cpu, flags = info.get('model name', cpu), set(info.get('flags', '').split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    load = os.getloadavg() if hasattr(os, 'getloadavg') else None
    warning = busy_warning(load and load[0], cores, threads)
    if warning:
        logging.getLogger(__name__).warning('warning: %s', warning)
    return dict(cpu=cpu, cpu_flags=[flag for flag in CPU_FLAGS if flag in flags], cores=cores,
                cpu_count=os.cpu_count(), load_average=list(load) if load else None, busy=warning)


def machine_info(device: Any) -> Dict[str, Any]:
    """:func:`cpu_info` (as measuring starts), the device, the versions and the threads, for a record."""
    import mmdet
    import mmengine
    import mmseg
    import torch
    cuda = device.type == 'cuda'
    return dict(**cpu_info(torch.get_num_threads()), platform=platform.platform(), device=device.type,
                device_name=torch.cuda.get_device_name(device) if cuda else None,
                cuda=torch.version.cuda if cuda else None, python=platform.python_version(),
                torch=torch.__version__, mmengine=mmengine.__version__, mmdet=mmdet.__version__,
                mmseg=mmseg.__version__, threads=torch.get_num_threads(), **(dict(
                    matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    cudnn_benchmark=torch.backends.cudnn.benchmark) if cuda else {}))


def benchmark_backbones(config: str, sizes: Sequence[Tuple[int, int]], modes: Sequence[str] = MODES[:3],
                        models: Sequence[str] = MODELS, device: Optional[str] = None, threads: Optional[int] = None,
                        batch: Optional[int] = None, warmup: int = 2, repeats: int = 5, budget: float = 60.0,
                        compile: bool = False, runtimes: Sequence[str] = (), autocast: Optional[str] = None,
                        flops: bool = True, profile: Optional[Tuple[int, int]] = None, export_dir: str = '.',
                        notes: Sequence[str] = (), command: str = '', gemm_size: int = 2048) -> Dict[str, Any]:
    """Measure the backbones ``models`` (``l2vit-t``: ``config``'s, a Mask R-CNN config of ours; ``swin-t``: mmdet's
    Swin-T; ``vit-s``: mmseg's ViT-S/16; ``l2vit-t-plain``: L²ViT-T without its CPU fast paths) in every mode of
    ``modes`` at every (H, W) of ``sizes``; return the record (JSON-able; nothing is written but the exported files
    of ``runtimes`` in ``export_dir``). ``device``: 'cpu' or 'cuda' (None: cuda if available); ``batch``: images per
    step (None: 1, and 2 for ``detector-train``); ``budget``: a model whose first warm-up step at a size takes
    longer is skipped there and at the larger sizes of that mode; ``compile``: also ``torch.compile`` of L²ViT-T
    (infer, train); ``runtimes``: also L²ViT-T exported to ONNX and run by 'onnxruntime' / 'openvino' (infer, CPU);
    ``autocast``: 'bf16' or 'fp16'; ``flops``: count multiply-adds for FLOP/s in infer, also as a share of a
    ``gemm_size``³ GEMM timed once in each round; ``profile``: an (H, W) at which one step per model and backbone
    mode is profiled (:func:`l2vit.analysis.op_profile.profile_step`)."""
    import torch
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    unknown = [m for m in [*modes, *models, *runtimes, autocast or 'bf16'] if m not in (
        *MODES, *MODELS, PLAIN, *RUNTIMES, *AUTOCAST_DTYPES)]
    if unknown or not sizes or repeats < 1 or warmup < 1:
        raise ToolError(f'benchmark_backbones: unknown {unknown}, or no sizes, repeats or warm-up steps')
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ToolError('--device cuda, but torch sees no GPU (torch.cuda.is_available() is False)')
    if autocast and runtimes:
        raise ToolError(f'--autocast {autocast} times torch under autocast; {", ".join(RUNTIMES[r] for r in runtimes)}'
                        ' run the exported fp32 file. Measure them in a run without --autocast')
    if autocast and DETECTOR_MODE in modes and device.type != 'cuda':
        raise ToolError(f'--autocast {autocast} with {DETECTOR_MODE}: the detector iteration runs mmengine\'s '
                        'AmpOptimWrapper, as AMP configs train, and it needs a GPU. Use --device cuda, or drop '
                        f'{DETECTOR_MODE} from --modes on the CPU')
    if runtimes and device.type != 'cpu':
        raise ToolError(f'--{runtimes[0]} times a CPU runtime; run it with --device cpu')
    if threads:
        torch.set_num_threads(threads)
    _quiet_logger()
    sizes = sorted(dict.fromkeys(tuple(s) for s in sizes), key=lambda s: (s[0] * s[1], s))
    batches = {mode: batch or (2 if mode == DETECTOR_MODE else 1) for mode in modes}
    dtype = AUTOCAST_DTYPES[autocast] if autocast else 'float32'
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(gemm_size, gemm_size, generator=generator).to(device, getattr(torch, dtype)) for _ in 'ab')
    record = dict(schema=SCHEMA, command=command, date=datetime.datetime.now().astimezone().isoformat(
        timespec='seconds'), machine=machine_info(device), settings=dict(
            config=config, sizes=[hxw(s) for s in sizes], modes=list(modes), batch=batch or 1,
            batches=batches, warmup=warmup, repeats=repeats, budget_s=budget, device=device.type,
            threads=torch.get_num_threads(), flops=flops, autocast=autocast,
            profile=hxw(profile) if profile else None,
            models=[*models, *([COMPILED] if compile else []), *(RUNTIMES[r] for r in runtimes)]),
        results=[], notes=list(notes))
    built: Dict[str, Any] = {}

    def backbones(mode: str) -> Dict[str, Any]:
        """The models of a backbone mode, built once (with_cp ones for train-cp), in eval or train mode."""
        key = 'cp' if mode == 'train-cp' else 'plain'
        if key not in built:
            names = list(dict.fromkeys([*models, *(['l2vit-t'] if key == 'plain' and (compile or runtimes) else [])]))
            built[key] = _build_backbones(config, names, key == 'cp', device)
        chosen = {name: built[key][name] for name in models}
        if compile and mode in ('infer', 'train'):
            chosen[COMPILED] = built[COMPILED] = built.get(COMPILED) or torch.compile(built['plain']['l2vit-t'])
        for runtime in runtimes if mode == 'infer' else ():
            if runtime not in built:
                from ..deploy.runtime import OnnxRuntimeModel, OpenVinoModel, require_onnxruntime
                require_onnxruntime()
                os.makedirs(export_dir, exist_ok=True)
                path, eager = osp.join(export_dir, f'l2vit-t-{runtime}.onnx'), built['plain']['l2vit-t']
                _progress(f'exporting l2vit-t to {path} for {runtime} ...')
                built[runtime] = (OnnxRuntimeModel if runtime == 'onnxruntime' else OpenVinoModel)(
                    eager, path, [f'stage{i}' for i in eager.out_indices],
                    torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)), 17,
                    threads=torch.get_num_threads())
            chosen[RUNTIMES[runtime]] = built[runtime]
        for model in chosen.values():
            model.eval() if mode == 'infer' else model.train()  # (mmseg's ViT returns None: never chain)
        return chosen

    def detectors(size: Tuple[int, int]) -> Dict[str, Callable[[], Any]]:
        """One training iteration of each detector on a packed batch of ``size``; built once."""
        if DETECTOR_MODE not in built:
            configs = _detector_configs(config, models, device)
            for cfg in configs.values() if autocast else ():
                cfg.optim_wrapper = dict(cfg.optim_wrapper, type='AmpOptimWrapper', dtype=dtype)
            built[DETECTOR_MODE] = {name: build_detector(cfg, device) for name, cfg in configs.items()}
            optimizer = next(iter(configs.values())).optim_wrapper.optimizer if configs else {}
            record['settings']['detector'] = dict(
                config=config, swin_t_backbone_from=SWIN_T_CONFIG, boxes_per_image=BOXES,
                backbones={name: cfg.model.backbone.type for name, cfg in configs.items()},
                neck_in_channels={name: list(cfg.model.neck.in_channels) for name, cfg in configs.items()},
                optimizer={key: optimizer.get(key) for key in ('type', 'lr', 'weight_decay')})
        data = packed_inputs('mmdet', size, batches[DETECTOR_MODE])
        for model, _ in built[DETECTOR_MODE].values():
            model.train()
        return {name: functools.partial(model.train_step, data, wrapper)
                for name, (model, wrapper) in built[DETECTOR_MODE].items()}

    gemm_times = []
    for _ in range(warmup):
        torch.mm(a, b)
    for mode in modes:
        stopped: Dict[str, str] = {}  # model -> why it is not run at the larger sizes
        for size in sizes:
            _progress(f'{mode} {hxw(size)} ...')
            if mode == DETECTOR_MODE:
                steps = detectors(size)
            else:
                images = torch.randn(batches[mode], 3, *size, generator=torch.Generator().manual_seed(
                    size[0] * 100003 + size[1])).to(device)
                steps = {name: _backbone_step(model, mode, images, autocast) for name, model in backbones(mode).items()}
            timed = {name: step for name, step in steps.items() if name not in stopped}
            results, times = measure_steps(timed, device, warmup, repeats, budget, reference=lambda: torch.mm(a, b),
                                           judge_last=(COMPILED, ), no_memory=RUNTIMES.values(),
                                           tolerate={name: Exception for name in timed if name.startswith('l2vit-t+')})
            gemm_times += times
            for name in steps:
                result = results.get(name) or _result('skipped', stopped[name])
                if name in results and result['status'] != 'measured':
                    stopped[name] = f'at {hxw(size)}, a smaller size, {result["reason"]}'
                    print(f'note: {mode} {hxw(size)} {name}: {result["status"]}: {result["reason"]}')
                record['results'].append(dict(
                    model=name, mode=mode, size=hxw(size), height=size[0], width=size[1],
                    pixels=size[0] * size[1], **result, macs=None, flops_per_s=None, gemm_percent=None,
                    gemm_median_s=statistics.median(times) if result['status'] == 'measured' else None))
            del steps, timed
    if flops and 'infer' in modes:
        _count_flops(record, built['plain'], batches['infer'], device)
    median = statistics.median(gemm_times)
    record['gemm'] = dict(op='torch.mm', dtype=dtype, m=gemm_size, n=gemm_size, k=gemm_size, times_s=gemm_times,
                          median_s=median, min_s=min(gemm_times), flops_per_s=2 * gemm_size**3 / median)
    for entry in record['results']:
        if entry['macs'] is not None:
            entry['flops_per_s'] = 2 * entry['macs'] / entry['median_s']
            entry['gemm_percent'] = 100 * entry['flops_per_s'] * entry['gemm_median_s'] / (2 * gemm_size**3)
    record['derived'] = derive(record['results'])
    if profile and [m for m in modes if m != DETECTOR_MODE]:
        record['profile'] = _profile(profile, [m for m in modes if m != DETECTOR_MODE], models, backbones, batch or 1,
                                     device, budget, autocast)
    for runtime in runtimes:
        model = built[runtime]
        record['settings'][runtime] = dict(
            version=getattr(model, 'version', None) or __import__('onnxruntime').__version__, opset=model.opset,
            exporter='torch.onnx.export(dynamo=False)', dynamic=True, **(
                dict(provider='CPUExecutionProvider', intra_op_threads=model.threads) if runtime == 'onnxruntime'
                else dict(device='CPU', inference_threads=model.threads)))
    return record


def _count_flops(record: dict, models: Dict[str, Any], batch: int, device: Any) -> None:
    """Multiply-adds of each measured infer entry (eager L²ViT-T's for its other runtimes), one count per model and
    size; a model that cannot be traced gets a note instead."""
    import warnings

    import torch

    from .flops import count
    _progress('counting FLOPs ...')
    counted: Dict[Tuple[str, str], Optional[int]] = {}
    for entry in record['results']:
        if entry['mode'] != 'infer' or entry['status'] != 'measured':
            continue
        key = (entry['model'] if entry['model'] in models else 'l2vit-t', entry['size'])
        if key not in counted:
            models[key[0]].eval()  # (not chained: some backbones' train() returns None)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore')
                    counted[key] = count(models[key[0]], torch.randn(
                        batch, 3, entry['height'], entry['width']).to(device))[0]
            except Exception as err:  # noqa: BLE001  (a model that cannot be traced: keep its timings)
                counted[key] = None
                record['notes'].append(f'FLOPs of {key[0]} at {key[1]} could not be counted ({_error_text(err)})')
        entry['macs'] = counted[key]


def _profile(size, modes, models, backbones, batch, device, budget, autocast) -> Dict[str, Any]:
    """The record's ``profile``: one warm-up step, then one profiled step, per backbone mode and model."""
    import torch

    from .op_profile import TOP_OPS, profile_step
    load = (lambda: os.getloadavg()[0]) if hasattr(os, 'getloadavg') else (lambda: None)
    before, runs = load(), []
    images = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(1)).to(device)
    for mode in modes:
        chosen = backbones(mode)
        for name in models:
            _progress(f'profile {mode} {hxw(size)} {name} ...')
            step = _backbone_step(chosen[name], mode, images, autocast, marked=True)
            run = dict(model=name, mode=mode, size=hxw(size), status='profiled', reason=None,
                       warmup_s=_seconds(step))
            if run['warmup_s'] > budget:
                run.update(status='skipped', reason=f'its warm-up step took {run["warmup_s"]:.3g} s, over the '
                           f'budget of {budget:g} s')
            else:
                run.update(profile_step(step, device))
            runs.append(run)
    return dict(size=hxw(size), modes=list(modes), models=list(models), batch=batch, top_ops=TOP_OPS,
                load_average_before=before, load_average_after=load(), runs=runs)
