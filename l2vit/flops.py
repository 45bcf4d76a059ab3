"""FLOP counting for L²ViT models with mmengine's :class:`~mmengine.analysis.FlopAnalyzer`, attention included.

Convention: mmengine's. One multiply-add is one flop (a Linear layer on N tokens costs N·C_in·C_out, a convolution
kernel_elements·output_elements); element-wise operations (additions of residuals, activations, the division and the
clamp of the linear attention, softmax) are not counted, normalisation layers are counted as mmengine does.

mmengine's jit-trace handles do not know ``aten::scaled_dot_product_attention`` (the window attention uses it), so
without help the window attention's two matrix products would silently count as zero. :func:`sdpa_flop_jit` counts
them as multiply-adds: ``q·kᵀ`` and ``attn·v`` each cost ``batch·heads·N_q·N_k·head_dim``.

The linear attention is written with ``torch.einsum``, which the trace records as ``aten::einsum``. mmengine's own
einsum handle already counts multiply-adds, but reads them from the text numpy's ``einsum_path`` prints, rounded to
four significant digits; :func:`einsum_flop_jit` counts a two-operand einsum exactly (one multiply-add per element
of the joint index space: ``N·heads·d·d`` for ``kᵀv`` and for ``q·(kᵀv)``, ``N·heads·d`` for ``q·Σk``) and leaves
other einsums to mmengine's handle.

    >>> flops, params, table = count_flops(model.eval(), (torch.randn(1, 3, 224, 224), ))
"""
import math
from collections import OrderedDict
from typing import Any, Dict, List, Sequence, Tuple, Union

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import einsum_flop_jit as _mmengine_einsum_flop_jit
from mmengine.analysis.jit_handles import get_shape
from mmengine.analysis.print_helper import complexity_stats_table
from torch import Tensor, nn

__all__ = ['sdpa_flop_jit', 'einsum_flop_jit', 'ATTENTION_FLOP_HANDLES', 'flop_analyzer', 'count_flops',
           'sdpa_macs']

# The fused attention kernels take (query, key, value, ...) first, all shaped (..., L, E) like the public op.
# (aten::_flash_attention_forward / _efficient_attention_forward use (B, L, H, E) and are not listed: a trace of a
# model records the public op or these, never those.)
_SDPA_OPS = (
    'aten::scaled_dot_product_attention',
    'aten::_scaled_dot_product_attention_math',
    'aten::_scaled_dot_product_flash_attention',
    'aten::_scaled_dot_product_flash_attention_for_cpu',
    'aten::_scaled_dot_product_efficient_attention',
    'aten::_scaled_dot_product_cudnn_attention',
)


def sdpa_macs(q_shape: Sequence[int], k_shape: Sequence[int], v_shape: Sequence[int]) -> int:
    """Multiply-adds of softmax attention on (..., L, E) queries, (..., S, E) keys, (..., S, Ev) values:
    ``batch·L·S·E`` for ``q·kᵀ`` plus ``batch·L·S·Ev`` for ``attn·v`` (batch: all leading dims, heads included).

    A causal mask is not subtracted: the products are computed over the full L×S matrix, as for any mask."""
    try:
        batch = torch.broadcast_shapes(tuple(q_shape[:-2]), tuple(k_shape[:-2]), tuple(v_shape[:-2]))
    except RuntimeError:  # grouped-query attention: fewer key/value heads than query heads
        batch = tuple(q_shape[:-2])
    L, E = q_shape[-2], q_shape[-1]
    S, Ev = k_shape[-2], v_shape[-1]
    return math.prod(batch) * L * S * (E + Ev)


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """mmengine/fvcore jit handle for ``aten::scaled_dot_product_attention`` and its fused variants."""
    shapes = [get_shape(v) for v in inputs[:3]]
    if any(s is None for s in shapes):
        raise ValueError('scaled_dot_product_attention traced without complete shapes of query, key and value')
    return sdpa_macs(*shapes)


def _einsum_terms(equation: str, shapes: List[List[int]]) -> List[Tuple[str, List[int]]]:
    """Split the input side of an einsum equation into (letters, shape) pairs, ``...`` replaced by fresh
    placeholder characters aligned from the right (as broadcasting aligns them)."""
    lhs = equation.split('->')[0]
    terms = lhs.split(',')
    if len(terms) != len(shapes):
        raise ValueError(f'einsum {equation!r} has {len(terms)} operands but {len(shapes)} shapes were traced')
    ellipsis_len = max((len(s) - len(t.replace('...', '')) for t, s in zip(terms, shapes) if '...' in t), default=0)
    placeholders = [chr(0x3b1 + i) for i in range(ellipsis_len)]  # greek letters: never in a torch equation
    out = []
    for term, shape in zip(terms, shapes):
        if '...' in term:
            n = len(shape) - len(term.replace('...', ''))
            term = term.replace('...', ''.join(placeholders[ellipsis_len - n:]))
        if len(term) != len(shape):
            raise ValueError(f'einsum term {term!r} does not match the traced shape {shape}')
        out.append((term, list(shape)))
    return out


def einsum_flop_jit(inputs: List[Any], outputs: List[Any]) -> Union[int, Any]:
    """Exact multiply-adds of a two-operand ``aten::einsum``: the product of the sizes of all its indices (each
    combination of output element and summed index is one multiply-add). Other einsums go to mmengine's handle."""
    equation = inputs[0].toIValue().replace(' ', '')
    shapes = [get_shape(v) for v in inputs[1].node().inputs()]
    if len(shapes) != 2 or any(s is None for s in shapes):
        return _mmengine_einsum_flop_jit(inputs, outputs)
    sizes: Dict[str, int] = OrderedDict()
    for term, shape in _einsum_terms(equation, shapes):
        for letter, size in zip(term, shape):
            sizes[letter] = max(sizes.get(letter, 1), size)  # size-1 dims broadcast
    return math.prod(sizes.values())


#: Handles added to (or replacing) mmengine's defaults.
ATTENTION_FLOP_HANDLES = {op: sdpa_flop_jit for op in _SDPA_OPS}
ATTENTION_FLOP_HANDLES['aten::einsum'] = einsum_flop_jit


def flop_analyzer(model: nn.Module, inputs: Union[Tensor, Tuple[Any, ...]]) -> FlopAnalyzer:
    """mmengine's FlopAnalyzer with the attention handles, quiet about the element-wise ops it skips by design
    (``analyzer.unsupported_ops()`` still lists them). Put the model in eval mode first (BatchNorm, DropPath)."""
    if isinstance(inputs, Tensor):
        inputs = (inputs, )
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(**ATTENTION_FLOP_HANDLES)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return analyzer


def count_flops(model: nn.Module, inputs: Union[Tensor, Tuple[Any, ...]],
                max_depth: int = 3) -> Tuple[int, int, str]:
    """FLOPs (multiply-adds, attention products included), parameter count and mmengine's per-module table of
    ``model`` on ``inputs`` (a tensor or a tuple of ``model.forward``'s positional arguments)."""
    analyzer = flop_analyzer(model, inputs)
    with torch.no_grad():
        flops = int(analyzer.total())
    params = int(parameter_count(model)[''])
    table = complexity_stats_table(analyzer, max_depth=max_depth, show_param_shapes=False)
    return flops, params, table
