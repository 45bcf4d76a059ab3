"""Where one step's time goes: ``torch.profiler`` self times of its ops summed by op family (:data:`OP_FAMILIES`)
and direction. An op is backward when it starts inside ``BACKWARD_MARK``'s time range (``loss.backward()``), so
that recomputed (checkpointed) forward ops count as backward: that is when they run."""
import collections
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ['FORWARD_MARK', 'BACKWARD_MARK', 'OP_FAMILIES', 'FAMILY_NAMES', 'op_family', 'family_legend',
           'gemm_flop', 'summarize_events', 'profile_step']

FORWARD_MARK = 'l2vit_benchmark::forward'
BACKWARD_MARK = 'l2vit_benchmark::backward'
DIRECTIONS = ('forward', 'backward')
OTHER = 'other'
#: How many ops the record lists per step (the largest by self time), and at most how many of family "other".
TOP_OPS = 15

#: The op families, in the order of the tables: (family, what it holds, the op names it holds: a regular expression
#: that must match the whole name without its namespace, ``aten::`` or other). The first family whose expression
#: matches an op is the op's; an op none matches is in "other" (whose ops the record lists, so nothing is hidden).
OP_FAMILIES: Tuple[Tuple[str, str, str], ...] = (
    ('GEMM', 'matrix products: mm, addmm, bmm, matmul, linear, einsum (their own time; the products they call are '
     'counted as such)',
     r'mm|addmm_?|_addmm_activation|bmm|baddbmm_?|addbmm_?|mv|addmv_?|dot|vdot|outer|matmul|linear|mkldnn_linear'
     r'|_mkl_linear|einsum|tensordot|bilinear'),
    ('attention (fused)', 'fused scaled-dot-product attention kernels, forward and backward',
     r'_?scaled_dot_product\w*|_flash_attention\w*|_efficient_attention\w*|_cudnn_attention\w*'),
    ('convolution', 'convolutions and their backward: convolution, mkldnn_convolution, _slow_conv2d, '
     'convolution_backward, cudnn, depthwise',
     r'conv\d?d|conv_transpose\d?d|_?convolution\w*|mkldnn_convolution\w*|_?slow_conv\w*|thnn_conv\w*'
     r'|_conv_depthwise\w*|conv_depthwise\w*|cudnn_convolution\w*|miopen_\w*convolution\w*|_nnpack_spatial\w*'),
    ('normalisation', 'layer, batch, group and RMS norms, forward and backward',
     r'\w*layer_norm\w*|\w*batch_norm\w*|\w*group_norm\w*|instance_norm|\w*rms_norm\w*'),
    ('activation', 'gelu, relu (on CPU relu runs as clamp_min), silu, sigmoid ... and their backward '
     '(relu\'s is threshold_backward)',
     r'(gelu|relu|relu6|silu|sigmoid|tanh|elu|selu|celu|hardswish|hardsigmoid|hardtanh|leaky_relu|softplus|mish'
     r'|threshold|clamp_min)(_backward)?_?'),
    ('softmax', 'softmax and log-softmax, forward and backward', r'_?(log_)?softmax(_backward_data)?'),
    ('element-wise', 'add, mul, div, sub, neg, pow, sqrt, exp, where, masked_fill, clamp, comparisons ...',
     r'(add|sub|rsub|mul|div|true_divide|floor_divide|neg|pow|sqrt|rsqrt|exp|exp2|expm1|log|log1p|log2|log10|abs'
     r'|floor|ceil|round|trunc|frac|sign|sgn|reciprocal|square|where|masked_fill|clamp|clamp_max|maximum|minimum'
     r'|fmax|fmin|eq|ne|lt|gt|le|ge|logical_\w+|bitwise_\w+|addcmul|addcdiv|lerp|fmod|remainder|sin|cos|erf|erfc'
     r'|erfinv|nan_to_num|isnan|isinf|isfinite|copysign|hypot|atan2|xlogy)_?'),
    ('reduction', 'sum, mean, max, min, var, norm ...',
     r'(sum|nansum|mean|nanmean|amax|amin|max|min|aminmax|var|std|var_mean|std_mean|norm|linalg_vector_norm|prod'
     r'|cumsum|cumprod|logsumexp|argmax|argmin|all|any|count_nonzero)_?'),
    ('dropout, random', 'dropout and drop path\'s random numbers: dropout, bernoulli, rand, uniform_ ...',
     r'\w*dropout\w*|bernoulli_?|rand|rand_like|randn|randn_like|randint|randint_like|randperm|uniform_|normal_'),
    ('copy, layout', 'data moved, rearranged or resampled: copy_, _to_copy, to, contiguous, clone, cat, roll, pad, '
     'index, im2col, slice_backward ...',
     r'copy_|_copy_from\w*|_to_copy|to|contiguous|clone|cat|_cat|stack|hstack|vstack|roll|flip|repeat'
     r'|repeat_interleave|tile|pad|_pad_enum|_pad_circular|constant_pad_nd|reflection_pad\w*|replication_pad\w*'
     r'|index|_unsafe_index\w*|index_select\w*|_index_put_impl_|index_put_?|index_add_?|index_copy_?|index_fill_?'
     r'|gather|scatter\w*|masked_scatter_?|masked_select|take|put_|im2col|col2im|unfold_backward|slice_backward'
     r'|select_backward|narrow_copy|\w+_copy|tril_?|triu_?|diag\w*|one_hot|embedding\w*|upsample\w*'
     r'|_upsample\w*|grid_sampler\w*|channel_shuffle|pixel_shuffle|pixel_unshuffle'),
    ('views, metadata', 'no data moved: view, reshape, permute, transpose, expand, slice, select, as_strided, '
     'detach, and metadata queries',
     r'view|_unsafe_view|view_as\w*|reshape|reshape_as|_reshape_alias|as_strided_?|permute|transpose_?|t_?'
     r'|expand|expand_as|slice|select|narrow|unsqueeze_?|squeeze_?|flatten|unflatten|unbind|split'
     r'|split_with_sizes|unsafe_split\w*|chunk|unsafe_chunk|tensor_split|unfold|movedim|moveaxis|swapaxes|swapdims'
     r'|detach_?|alias|lift|lift_fresh|resolve_conj|resolve_neg|conj|_neg_view|_conj|broadcast_tensors|meshgrid'
     r'|item|_local_scalar_dense|is_nonzero|result_type|promote_types|_nnpack_available|is_same_size'
     r'|_has_compatible_shallow_copy_type|size|stride|numel|dim|_shape_as_tensor|set_'),
    ('allocation, fill', 'new tensors and filling them: empty, zeros, ones_like, full, fill_, zero_, resize_ ...',
     r'empty|empty_like|empty_strided|empty_permuted|new_empty|new_empty_strided|zeros|zeros_like|new_zeros|ones'
     r'|ones_like|new_ones|full|full_like|new_full|fill_|zero_|resize_|resize_as_|arange|linspace|scalar_tensor'
     r'|tensor|record_stream'),
    ('autograd engine', 'the engine\'s own time: its evaluate_function events and the autograd nodes (XBackward0, '
     'AccumulateGrad), beyond the ops they call',
     r'autograd::engine::evaluate_function:.*|(\w+::)*(\w*Backward\d*|AccumulateGrad|CopySlices|GraphRoot|Error)'),
    ('device runtime', 'CUDA runtime and driver calls on the CPU (kernel launches, copies, synchronisation)',
     r'cuda[A-Z]\w*|cu[A-Z]\w*|hip[A-Z]\w*'),
    ('between ops', 'the step\'s own time outside any op: Python between the ops (also inside the forward of '
     'autograd Functions: gradient checkpointing\'s CheckpointFunction, the linear attention\'s '
     'LinearAttentionFunction, l2vit.models.cpu\'s _AfterRecomputed and _DepthwiseConv; on a GPU also the '
     'wait for the autograd engine\'s device thread)',
     re.escape(FORWARD_MARK) + '|' + re.escape(BACKWARD_MARK)
     + '|CheckpointFunction|LinearAttentionFunction|_AfterRecomputed|_DepthwiseConv'),
)
FAMILY_NAMES = tuple(f[0] for f in OP_FAMILIES) + (OTHER, )
#: Families whose expressions match the whole event name, namespace included.
_WHOLE_NAME = ('autograd engine', 'between ops')
_PATTERNS = [(family, re.compile(pattern)) for family, _, pattern in OP_FAMILIES]


def op_family(name: str) -> str:
    """The family of the op named ``name`` (as the profiler names it, e.g. ``aten::addmm``); "other" if none."""
    bare = name.rsplit('::', 1)[-1]
    for family, pattern in _PATTERNS:
        if pattern.fullmatch(name if family in _WHOLE_NAME else bare):
            return family
    return OTHER


def family_legend() -> List[Dict[str, str]]:
    """What each family holds, in table order, "other" last (for the record, so that a page explains itself)."""
    return [dict(family=f, holds=holds) for f, holds, _ in OP_FAMILIES] + [
        dict(family=OTHER, holds='every op no family above names (listed by name below the tables)')]


#: Where the operands of a matrix product are in its recorded ``input_shapes``, by op (without namespace): the index
#: of the left operand; the right one follows it. An added term (``addmm``'s first input) comes before, also in the
#: in-place forms (``baddbmm_``).
_PRODUCT_OPERANDS = {'mm': 0, 'bmm': 0, 'mv': 0, 'dot': 0, 'vdot': 0, '_addmm_activation': 1,
                     **{op + suffix: 1 for op in ('addmm', 'baddbmm', 'addbmm', 'addmv') for suffix in ('', '_')}}


def gemm_flop(name: str, shapes: Sequence[Sequence[int]]) -> Optional[int]:
    """Floating-point operations (2 per multiply-add) of the matrix product op ``name`` (e.g. ``aten::addmm``) on
    operands of ``shapes`` (the event's ``input_shapes``): mm, bmm, mv, dot and their ``add*`` forms. None for other
    ops (``matmul``, ``linear`` call one of these) or shapes that are not a product's."""
    index = _PRODUCT_OPERANDS.get(name.rsplit('::', 1)[-1])
    if index is None or len(shapes) < index + 2:
        return None
    left, right = (list(s) for s in shapes[index:index + 2])
    if len(left) == 3 and len(right) == 3 and left[0] == right[0] and left[2] == right[1]:  # (b, m, k) @ (b, k, n)
        return 2 * left[0] * left[1] * left[2] * right[2]
    if len(left) == 2 and len(right) == 2 and left[1] == right[0]:  # (m, k) @ (k, n)
        return 2 * left[0] * left[1] * right[1]
    if len(left) == 2 and len(right) == 1 and left[1] == right[0]:  # (m, k) @ (k,)
        return 2 * left[0] * left[1]
    if len(left) == 1 and len(right) == 1 and left[0] == right[0]:  # (k,) . (k,)
        return 2 * left[0]
    return None


def summarize_events(events: Sequence[Any], clock: str = 'cpu', top: int = TOP_OPS) -> Dict[str, Any]:
    """Self time (ms) of one profiled step's CPU-side events (``prof.events()``; ``clock`` 'cuda': their kernels'
    self device time) per op, input shapes and direction (inside ``BACKWARD_MARK``'s time range or not), summed by
    torch's ``FunctionEventAvg``; summed by family (``families``, ``by_direction``, ``total_ms``); the
    ``top`` largest ops (``top_ops``) and of family "other" (``other_ops``, ``other_ops_left``); with shapes
    recorded, ``gemm_products``: the matrix products' operations (:func:`gemm_flop`), time, calls and rate."""
    import torch
    from torch.autograd.profiler_util import FunctionEventAvg
    marks = [e.time_range for e in events if e.name == BACKWARD_MARK]
    groups: Dict[Tuple[str, str, str], Any] = collections.defaultdict(FunctionEventAvg)
    for e in events:
        if e.device_type == torch.autograd.DeviceType.CPU and not e.is_async:
            backward = any(m.start <= e.time_range.start <= m.end for m in marks)
            groups[(e.key, DIRECTIONS[backward], str(e.input_shapes))].add(e)
    by_op: Dict[Tuple[str, str], List[float]] = {}
    products = dict(flop=0, ms=0.0, calls=0)
    for (name, direction, _), avg in groups.items():
        ms = (avg.self_cpu_time_total if clock == 'cpu' else avg.self_device_time_total) / 1e3
        cell = by_op.setdefault((name, direction), [0.0, 0])
        cell[0], cell[1] = cell[0] + ms, cell[1] + avg.count
        flop = gemm_flop(name, avg.input_shapes or [])
        if flop is not None:
            products.update(flop=products['flop'] + flop * avg.count, ms=products['ms'] + ms,
                            calls=products['calls'] + avg.count)
    total = sum(ms for ms, _ in by_op.values())
    families: Dict[Tuple[str, str], List[float]] = {}
    for (name, direction), (ms, calls) in by_op.items():
        cell = families.setdefault((op_family(name), direction), [0.0, 0])
        cell[0], cell[1] = cell[0] + ms, cell[1] + calls

    def row(ms: float, calls: int, **keys: str) -> Dict[str, Any]:
        return dict(keys, ms=ms, share=100 * ms / total if total else None, calls=calls)

    rows = [row(*families[(f, d)], family=f, direction=d) for f in FAMILY_NAMES for d in DIRECTIONS
            if (f, d) in families]
    ops = [row(ms, calls, op=name, family=op_family(name), direction=direction)
           for (name, direction), (ms, calls) in sorted(by_op.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    other = [op for op in ops if op['family'] == OTHER]
    seconds = products['ms'] / 1e3
    return dict(clock=clock, total_ms=total,
                by_direction={d: sum(r['ms'] for r in rows if r['direction'] == d) for d in DIRECTIONS},
                families=rows, top_ops=ops[:top], other_ops=other[:top], other_ops_left=max(0, len(other) - top),
                gemm_products=dict(products, flop_per_s=products['flop'] / seconds if seconds else None)
                if products['calls'] else None)


def profile_step(step: Callable[[], None], device: Any, top: int = TOP_OPS) -> Dict[str, Any]:
    """Run ``step`` (warmed up, marked) once under ``torch.profiler.profile`` with input shapes recorded: its
    ``wall_ms`` (profiler overhead included), ``events`` and ``clocks`` (``cpu``, and ``cuda`` on a GPU:
    :func:`summarize_events`)."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.benchmark import timer  # synchronises the accelerator before reading the clock
    os.environ.setdefault('KINETO_LOG_LEVEL', '6')  # no profiler progress lines or a CPU machine's 'ERROR'
    clocks = ['cpu'] + (['cuda'] if device.type == 'cuda' else [])
    with profile(activities=[getattr(ProfilerActivity, c.upper()) for c in clocks], record_shapes=True) as prof:
        begin = timer()
        step()
        wall = timer() - begin
    events = prof.events()
    return dict(wall_ms=wall * 1e3, events=sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CPU),
                clocks={clock: summarize_events(events, clock, top) for clock in clocks})
