"""FLOP counting with mmengine's :class:`~mmengine.analysis.FlopAnalyzer`, attention included; mmengine's
convention: one multiply-add is one flop, element-wise ops (residuals, activations, softmax) are not counted.

Two handles are added: :func:`sdpa_flop_jit` for ``aten::scaled_dot_product_attention`` (the window attention),
which mmengine would count as zero (``q·kᵀ`` and ``attn·v``: ``batch·heads·N_q·N_k·head_dim`` each), and
:func:`einsum_flop_jit`, exact for a two-operand einsum (the linear attention's ``kᵀv``, ``q·(kᵀv)``, ``q·Σk``),
where mmengine's reads the count from numpy's printed ``einsum_path``, rounded to four digits.
:func:`build_model` and :func:`count_model` are what ``tools/analysis/get_flops.py`` prints: a config's model, counted
(mmpretrain: the whole classifier; mmdet, mmseg: the backbone, and the whole model in tensor mode).
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import einsum_flop_jit as _mmengine_einsum_flop_jit
from mmengine.analysis.jit_handles import get_shape
from mmengine.analysis.print_helper import complexity_stats_table
from torch import Tensor, nn

from ..errors import ToolError

__all__ = ['sdpa_flop_jit', 'einsum_flop_jit', 'flop_analyzer', 'count_flops', 'build_model',
           'count_model']

#: The input (H, W) counted per library when none is asked for (an mmpretrain config's test size comes first).
DEFAULT_SHAPES = {'mmpretrain': (224, 224), 'mmdet': (800, 1333), 'mmseg': (512, 512)}

# The public op and its fused kernels take (query, key, value, ...) first, all (..., L, E).
_SDPA_OPS = tuple(f'aten::{name}' for name in (
    'scaled_dot_product_attention', '_scaled_dot_product_attention_math', '_scaled_dot_product_flash_attention',
    '_scaled_dot_product_flash_attention_for_cpu', '_scaled_dot_product_efficient_attention',
    '_scaled_dot_product_cudnn_attention'))


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """mmengine/fvcore jit handle for ``aten::scaled_dot_product_attention`` and its fused variants: the
    multiply-adds of softmax attention on (..., L, E) queries, (..., S, E) keys, (..., S, Ev) values, ``batch·L·S·E``
    for ``q·kᵀ`` plus ``batch·L·S·Ev`` for ``attn·v`` (batch: all leading dims, heads included; a mask is not
    subtracted: the products are computed over the full L×S matrix)."""
    shapes = [get_shape(v) for v in inputs[:3]]
    if any(s is None for s in shapes):
        raise ValueError('scaled_dot_product_attention traced without complete shapes of query, key and value')
    (*batch, L, E), (*_, S, _), (*_, Ev) = shapes  # (grouped-query attention: the query's heads count)
    return math.prod(batch) * L * S * (E + Ev)


def einsum_flop_jit(inputs: List[Any], outputs: List[Any]) -> Union[int, Any]:
    """Exact multiply-adds of a two-operand ``aten::einsum``: the output's size times the sizes of the summed indices
    (each combination of output element and summed index is one multiply-add). Other einsums go to mmengine's."""
    equation = inputs[0].toIValue().replace(' ', '')
    shapes = [get_shape(v) for v in inputs[1].node().inputs()]
    output = get_shape(outputs[0])
    if len(shapes) != 2 or any(s is None for s in shapes) or output is None:
        return _mmengine_einsum_flop_jit(inputs, outputs)
    lhs, _, rhs = equation.partition('->')
    sizes: Dict[str, int] = {}
    for term, shape in zip(lhs.split(','), shapes):
        head, _, tail = term.partition('...')  # letters before an ellipsis count from the left, after it from the right
        for letter, size in [*zip(head, shape), *zip(tail[::-1], shape[::-1])]:
            sizes[letter] = max(sizes.get(letter, 1), size)  # size-1 dims broadcast
    summed = {letter for letter in sizes if (letter not in rhs if '->' in equation else lhs.count(letter) > 1)}
    return math.prod(output) * math.prod(sizes[letter] for letter in summed)


#: Handles added to (or replacing) mmengine's defaults.
ATTENTION_FLOP_HANDLES = {**{op: sdpa_flop_jit for op in _SDPA_OPS}, 'aten::einsum': einsum_flop_jit}


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


def count(model: nn.Module, inputs: Union[Tensor, Tuple[Any, ...]]) -> Tuple[int, int, FlopAnalyzer]:
    """(FLOPs, parameters, analyzer) of ``model`` on ``inputs`` (a tensor or a tuple of ``model.forward``'s
    positional arguments); the analyzer answers per module and per operator."""
    analyzer = flop_analyzer(model, inputs)
    with torch.no_grad():
        flops = int(analyzer.total())
    return flops, int(parameter_count(model)['']), analyzer


def count_flops(model: nn.Module, inputs: Union[Tensor, Tuple[Any, ...]],
                max_depth: int = 3) -> Tuple[int, int, str]:
    """FLOPs (multiply-adds, attention products included), parameter count and mmengine's per-module table of
    ``model`` on ``inputs`` (a tensor or a tuple of ``model.forward``'s positional arguments)."""
    flops, params, analyzer = count(model, inputs)
    return flops, params, complexity_stats_table(analyzer, max_depth=max_depth, show_param_shapes=False)


def build_model(config: str, cfg_options: Optional[dict] = None):
    """The config's model, built in its default scope without pretrained weights (initialised after
    ``torch.manual_seed(0)``), in eval mode; its scope and the loaded config. Raises
    :class:`~l2vit.errors.ToolError` for a config this cannot count."""
    from mmengine.logging import MMLogger

    from ..apis.config import read_config
    from .benchmark import build_detector
    cfg = read_config(config, cfg_options)
    scope = cfg.default_scope
    if scope not in DEFAULT_SHAPES:
        raise ToolError(f'{config} has default_scope {scope!r}; this tool knows {sorted(DEFAULT_SHAPES)} (inherit an '
                        f'mmdet::, mmseg:: or mmpretrain:: runtime base or set default_scope).')
    # The latest logger is mmengine's 'current' one: keep building and init_weights quiet (no list of parameters).
    MMLogger.get_instance('l2vit_get_flops', log_level='WARNING')
    model = build_detector(cfg, 'cpu', optimizer=False)[0]  # FLOPs need no weights; initialised after seed 0
    return model.eval(), scope, cfg


def classifier_test_size(cfg) -> Optional[Tuple[int, int]]:
    """(H, W) the test pipeline of an mmpretrain config gives its images (last fixed-size Resize or CenterCrop),
    e.g. 384×384 for the 384² fine-tuned base; None if it has none."""
    try:
        pipeline = cfg.test_dataloader.dataset.pipeline
    except AttributeError:
        pipeline = cfg.get('test_pipeline') or []
    size = None
    for step in pipeline:
        value = step.get('crop_size') if step.get('type') == 'CenterCrop' else (
            step.get('scale') if step.get('type') == 'Resize' else None)
        if isinstance(value, int):
            size = (value, value)
        elif isinstance(value, (list, tuple)) and len(value) == 2:
            size = (int(value[1]), int(value[0]))  # mmpretrain sizes are (w, h)
    return size


def whole_model_forward(model, scope: str, shape: Tuple[int, int]):
    """Make ``model(x)`` run the library's tensor-mode forward on a batch of one image (instance attribute, so the
    module tree and its names stay as they are)."""
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                             batch_input_shape=shape, scale_factor=(1., 1.)))
        model.forward = lambda x: model._forward(x, [sample])
    elif scope == 'mmseg':
        model.forward = lambda x: model._forward(x, None)
    # mmpretrain: forward(inputs) is already the tensor mode (class scores).
    return model


def _not_counted(analyzer: FlopAnalyzer) -> str:
    ops = [name.replace('aten::', '') for name, _ in analyzer.unsupported_ops().most_common()]
    return ', '.join(ops) if ops else 'none'


Row = Tuple[str, Optional[float], Optional[float]]


def count_model(model, scope: str, shape: Tuple[int, int],
                config: str) -> Tuple[List[Row], List[str], List[Tuple[str, FlopAnalyzer]]]:
    """Count a model built by :func:`build_model` on one random ``shape`` image: the (part, parameters, FLOPs) rows
    (FLOPs None where the whole model cannot be traced), the notes, and the (part, analyzer) per-module tables."""
    image = torch.randn(1, 3, *shape)
    backbone = getattr(model, 'backbone', None)
    rows: List[Row] = []
    notes, tables = [], []
    if scope == 'mmpretrain':
        flops, params, analyzer = count(model, (image, ))
        if backbone is not None:
            rows.append(('backbone', parameter_count(model)['backbone'], analyzer.total('backbone')))
        rows.append(('whole model', params, flops))
        notes.append(f'not counted (element-wise, mmengine convention): {_not_counted(analyzer)}')
        tables.append(('whole model', analyzer))
        return rows, notes, tables
    if backbone is None:
        raise ToolError(f'the model of {config} has no backbone')
    b_flops, b_params, b_analyzer = count(backbone, (image, ))
    rows.append(('backbone', b_params, b_flops))
    tables.append(('backbone', b_analyzer))
    try:
        flops, params, analyzer = count(whole_model_forward(model, scope, shape), (image, ))
    except Exception as err:  # noqa: BLE001  (any tracing failure: report it, keep the backbone numbers)
        rows.append(('whole model', parameter_count(model)[''], None))
        from .benchmark import _error_text
        notes.append(f'the whole model could not be traced ({_error_text(err)}); its FLOPs are not reported, the '
                     'backbone\'s are.')
        return rows, notes, tables
    rows.append(('whole model', params, flops))
    notes.append(f'not counted in the whole model (element-wise or custom ops): {_not_counted(analyzer)}')
    if scope == 'mmdet' and getattr(model, 'with_rpn', False):
        notes.append('the RoI head is counted on the proposals the RPN keeps for a random image (at most '
                     'the config\'s test max_per_img); real images may give a different count.')
    if scope == 'mmseg' and getattr(model, 'with_auxiliary_head', False):
        notes.append('the parameters include the auxiliary head (training only); the FLOPs do not.')
    tables.append(('whole model', analyzer))
    return rows, notes, tables


def count_config(config: str, shape: Optional[Sequence[int]] = None, cfg_options: Optional[dict] = None) -> dict:
    """What ``tools/analysis/get_flops.py`` prints: the ``scope``, ``model`` class name, ``size`` (H, W), ``rows``,
    ``notes`` and per-module ``tables`` (:func:`count_model`) of a config's model on one random image of ``shape``
    ((H, W) or (N, ): a square; default: :data:`DEFAULT_SHAPES`, or an mmpretrain config's test size)."""
    from ..models import L2ViT
    model, scope, cfg = build_model(config, cfg_options)
    backbone = getattr(model, 'backbone', None)
    notes = [] if isinstance(backbone, L2ViT) else [
        f'model.backbone is {type(backbone).__name__}, not L2ViT; counted all the same.']
    size = (shape[0], shape[-1]) if shape else (scope == 'mmpretrain' and classifier_test_size(cfg)) or \
        DEFAULT_SHAPES[scope]
    rows, more, tables = count_model(model, scope, size, config)
    return dict(scope=scope, model=type(model).__name__, size=size, rows=rows, notes=notes + more, tables=tables)
