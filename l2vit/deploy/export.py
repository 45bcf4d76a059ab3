"""Exporting the models of our configs to ONNX (torch's TorchScript-based exporter), with dynamic batch and image
size when asked; docs/deployment.md describes the parts, the input and the opsets.

:data:`PARTS` (the tool's ``--part``): ``model``, an mmpretrain ``ImageClassifier`` (its logits) or an mmseg
``EncoderDecoder`` (the decode head's logits resized to the input size, as mmseg's inference does); ``backbone``, the
backbone of any config (outputs ``stage{i}``); ``neck``, the backbone and the neck (outputs ``neck{k}``). The input
is the image after the data preprocessor, ``(B, 3, H, W)`` float32; the config's mean, std and channel order are
stored in the file's metadata. A traced model runs its plain forward (the CPU fast paths step aside under a
trace: :mod:`l2vit.models.cpu`); with ``dynamic`` the
sizes are graph values, so the padding to whole windows and strides follows each input, and layers that would fix
the size are swapped for exact stand-ins first (:mod:`l2vit.deploy.traceable`).
"""
import copy
import os
import os.path as osp
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..checkpoint import unwrap_module_prefix
from ..errors import CheckpointError, ToolError
from .runtime import DEFAULT_TOLERANCE, check_sizes, format_parity, require_onnxruntime, verify
from .traceable import replace_adaptive_pools

PARTS = ('model', 'backbone', 'neck')
DEFAULT_OPSET = 17
#: The newest opset torch's TorchScript-based exporter writes.
MAX_OPSET = 20
#: (op, first opset it exports at, what of the model uses it), the ops that need more than ONNX's early opsets.
OPSET_NEEDS = (
    ('aten::scaled_dot_product_attention', 14, 'the window attention (F.scaled_dot_product_attention)'),
    ('aten::einsum', 12, 'the linear attention (torch.einsum)'),
)
#: The model types exported whole (``--part model``), per library (``default_scope``).
WHOLE_MODELS = {'mmpretrain': ('ImageClassifier', ), 'mmseg': ('EncoderDecoder', )}
SCOPES = ('mmpretrain', 'mmseg', 'mmdet')
INPUT_NAME = 'image'
#: The smallest export size: the deepest stride of the backbones here (L²ViT's last stage is at 1/32).
MIN_SIZE = 32


@dataclass
class ExportRequest:
    """What to export: a config (with ``cfg_options``), its weights (None: the initialisation), the part, the
    traced input ``(H, W)`` and batch, whether batch and size stay dynamic, the opset."""
    config: str
    out: str
    shape: Tuple[int, int]
    checkpoint: Optional[str] = None
    part: str = 'model'
    dynamic: bool = False
    opset: int = DEFAULT_OPSET
    batch: int = 1
    cfg_options: Optional[dict] = None


@dataclass
class Exported:
    """What was exported: the file, the model in torch (the reference of the parity check, unchanged), the input
    and output names, the settings, the preprocessing the input expects and how long the export took."""
    path: str
    reference: nn.Module
    output_names: List[str]
    scope: str
    model_type: str
    request: ExportRequest
    preprocess: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    weights: str = ''


# ---------------------------------------------------------------------------------------------------- checks
def check_opset(opset: int) -> None:
    """Refuse an opset the models here cannot be exported at, naming the op that needs more."""
    if opset > MAX_OPSET:
        raise ToolError(f'--opset {opset}: torch\'s TorchScript-based ONNX exporter writes opsets up to {MAX_OPSET}; '
                        f'choose {DEFAULT_OPSET} (the default) to {MAX_OPSET}.')
    too_low = [(op, need, what) for op, need, what in OPSET_NEEDS if opset < need]
    if too_low:
        needs = '; '.join(f'{op} ({what}) needs opset {need}' for op, need, what in too_low)
        raise ToolError(f'--opset {opset} is too low: {needs}. Use --opset {DEFAULT_OPSET} (the default; from 17 '
                        f'LayerNorm is a single LayerNormalization node) or at least '
                        f'{max(need for _, need, _ in too_low)}.')


def check_shape(shape: Sequence[int]) -> Tuple[int, int]:
    """``--shape H [W]`` as (H, W); an image smaller than the deepest stride (32) is refused."""
    if not 1 <= len(shape) <= 2:
        raise ToolError(f'--shape takes H or H W, got {list(shape)}')
    height, width = shape[0], shape[-1]
    if min(height, width) < MIN_SIZE:
        raise ToolError(f'--shape {height} {width} is smaller than one stride of the deepest stage ({MIN_SIZE} '
                        f'pixels): its feature map would be less than one token per side. Export at {MIN_SIZE}x'
                        f'{MIN_SIZE} or more (with --dynamic the file then runs at other sizes too).')
    return height, width


def _model_type(cfg: Any) -> str:
    return str(cfg.model.get('type', '')).split('.')[-1]


def check_part(cfg: Any, part: str, config: str) -> None:
    """Refuse a config and part this module cannot export, saying what it can."""
    scope = cfg.default_scope
    model_type = _model_type(cfg)
    known = ', '.join(f'{t} ({s})' for s, types in WHOLE_MODELS.items() for t in types)
    if scope not in SCOPES:
        raise ToolError(f'{config}: default_scope {scope!r} is not one the export knows ({", ".join(SCOPES)}).')
    if part not in PARTS:
        raise ToolError(f'--part {part!r}: choose one of {", ".join(PARTS)}.')
    if part == 'model':
        if scope == 'mmdet':
            raise ToolError(f'{config}: whole detectors ({model_type}: RPN, RoI heads, NMS) are not exported by this '
                            f'tool (docs/deployment.md says why and what mmdeploy would need). Export the backbone '
                            f'(--part backbone) or the backbone and its FPN (--part neck).')
        if model_type not in WHOLE_MODELS.get(scope, ()):
            raise ToolError(f'{config}: the model type {model_type!r} ({scope}) is not one this tool exports whole; '
                            f'it knows {known}. Export its backbone with --part backbone.')
    elif part not in cfg.model or cfg.model.get(part) is None:
        raise ToolError(f'{config}: --part {part}: the model ({model_type}) has no {part}.')


# ---------------------------------------------------------------------------------------------------- the model
def load_model(cfg: Any) -> nn.Module:
    """The config's model in eval mode, with the config's initialisation but no pretrained weights (no download),
    SyncBN as BN (no process group)."""
    from mmengine.logging import MMLogger

    from ..apis.config import build_model
    from ..apis.config_tree import sync_bn_to_bn

    sync_bn_to_bn(cfg.model)
    if not MMLogger.check_instance_created('l2vit_export'):
        MMLogger.get_instance('l2vit_export', log_level='ERROR')  # init_weights stays quiet
    model = build_model(cfg, pretrained=False)
    model.init_weights()
    return model.eval()


def load_weights(model: nn.Module, checkpoint: str, part: str, config: str) -> None:
    """Load ``checkpoint`` (a file or URL; read weights-only by our loaders, the authors' files understood) into the
    modules ``part`` exports, strictly: every weight they have must be in it, with its shape. For ``model`` that is
    the whole model; for ``backbone`` (``neck``) the ``backbone.*`` (and ``neck.*``) entries, or a bare backbone state
    dict. Raises :class:`~l2vit.errors.ToolError` naming what does not fit."""
    from mmengine.runner.checkpoint import CheckpointLoader

    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise ToolError(f'--checkpoint: no such file: {checkpoint}')
    try:
        state = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
        state = state.get('state_dict', state) if isinstance(state, dict) else state
        if not isinstance(state, dict) or not state:
            raise ToolError('the checkpoint holds no state dict (expected {"state_dict": {...}} or the weights '
                            'themselves)')
        state = unwrap_module_prefix(state)
        if part == 'model':
            model.load_state_dict(state, strict=True)
            return
        for name in ('backbone', 'neck')[:2 if part == 'neck' else 1]:
            prefix = name + '.'
            entries = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if name == 'backbone' and not entries:
                entries = state  # a bare backbone state dict (the backbone understands the authors' layout)
            getattr(model, name).load_state_dict(entries, strict=True)
    except (CheckpointError, RuntimeError) as err:
        raise ToolError(f'--checkpoint {checkpoint} does not fit the {part} of {config}: {err}') from None


class _Part(nn.Module):
    """image -> the whole model's logits (a segmentor's at the input size, as mmseg's ``inference`` computes them
    before the argmax), or the backbone's maps (with ``neck``, the neck's maps on them) as a tuple."""

    def __init__(self, model: nn.Module, scope: str, part: str) -> None:
        super().__init__()
        self.scope, self.part = scope, part
        if part == 'model':
            self.model = model
        else:
            self.backbone, self.neck = model.backbone, model.neck if part == 'neck' else None

    def forward(self, image: Tensor) -> Union[Tensor, Tuple[Tensor, ...]]:
        if self.part == 'model':
            logits = self.model(image, mode='tensor')
            if self.scope == 'mmpretrain':
                return logits
            return nn.functional.interpolate(logits, size=image.shape[2:], mode='bilinear',
                                             align_corners=self.model.align_corners)
        feats = self.backbone(image)
        return tuple(self.neck(feats) if self.neck is not None else feats)


def output_names(module: nn.Module, part: str, scope: str, outputs: Sequence[Tensor]) -> List[str]:
    """``logits`` (classifier), ``seg_logits`` (segmentor), ``stage{i}`` per backbone output (the stage index for
    backbones with ``out_indices``), ``neck{k}`` per neck output."""
    if part == 'model':
        return ['logits' if scope == 'mmpretrain' else 'seg_logits']
    if part == 'neck':
        return [f'neck{k}' for k in range(len(outputs))]
    indices = list(getattr(module.backbone, 'out_indices', range(len(outputs))))
    if len(indices) != len(outputs):
        indices = list(range(len(outputs)))
    return [f'stage{i}' for i in indices]


#: The metadata key of the channel order, the same for every export: mmdet's and mmseg's data preprocessor name.
CHANNEL_ORDER_KEY = 'bgr_to_rgb'


def _preprocess(cfg: Any) -> Dict[str, Any]:
    """The config's ``mean``, ``std`` and ``bgr_to_rgb``: whether its data preprocessor reverses the channels of the
    loaded image (mmdet's and mmseg's ``bgr_to_rgb`` or ``rgb_to_bgr``, mmpretrain's ``to_rgb``), under one name."""
    pre = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    preprocess: Dict[str, Any] = {k: list(pre[k]) for k in ('mean', 'std') if k in pre}
    preprocess[CHANNEL_ORDER_KEY] = bool(pre.get('bgr_to_rgb') or pre.get('rgb_to_bgr') or pre.get('to_rgb'))
    return preprocess


def _dynamic_axes(names: List[str]) -> Dict[str, Dict[int, str]]:
    axes = {INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'}}
    for i, name in enumerate(names):
        axes[name] = {0: 'batch'} if name == 'logits' else {0: 'batch', 2: f'{name}_height', 3: f'{name}_width'}
    return axes


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def export_module(module: nn.Module, image: Tensor, path: str, names: List[str], opset: int = DEFAULT_OPSET,
                  dynamic: bool = True) -> None:
    """``torch.onnx.export`` (TorchScript-based) of ``module`` traced on ``image``, input ``image`` and outputs
    ``names``, with batch and sizes dynamic when asked; the exporter's errors become ToolErrors."""
    from torch.onnx.errors import OnnxExporterError, SymbolicValueError, UnsupportedOperatorError
    kwargs: Dict[str, Any] = dict(input_names=[INPUT_NAME], output_names=names, opset_version=opset,
                                  do_constant_folding=True, dynamo=False)
    if dynamic:
        kwargs['dynamic_axes'] = _dynamic_axes(names)
    try:
        with warnings.catch_warnings():
            # The legacy exporter's deprecation notice, and tracer warnings about the models' Python-side checks of
            # sizes (input validation, mmseg's own size warnings): the parity check at other sizes is what counts.
            warnings.simplefilter('ignore', DeprecationWarning)
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            # The exporter on its constant folding of strided slices (the graph is right, only not folded there).
            warnings.filterwarnings('ignore', message='Constant folding - Only steps=1', category=UserWarning,
                                    module=r'torch\.onnx\.')
            with torch.no_grad():
                torch.onnx.export(module, (image, ), path, **kwargs)
    except UnsupportedOperatorError as err:
        raise ToolError(f'the exporter cannot write an op of this model at opset {opset}: {_first_line(err)}') from None
    except (SymbolicValueError, OnnxExporterError) as err:
        raise ToolError(f'ONNX export failed at opset {opset}: {_first_line(err)}') from None


def _finish(path: str, exported: 'Exported') -> None:
    """Check the file with onnx's checker and record what the input expects in its metadata."""
    import onnx
    model = onnx.load(path)
    onnx.checker.check_model(model)
    request = exported.request
    meta = dict(config=osp.basename(request.config), part=request.part, model_type=exported.model_type,
                weights=exported.weights, input='(B, 3, H, W) float32 after the data preprocessor',
                **{k: str(v) for k, v in exported.preprocess.items()})
    onnx.helper.set_model_props(model, meta)
    model.producer_name = 'l2vit-openmmlab'
    onnx.save(model, path)


def export_onnx(request: ExportRequest) -> Exported:
    """Export what ``request`` asks for; returns the file's path, the torch reference and the output names.
    Raises :class:`~l2vit.errors.ToolError` for what cannot be exported, saying why and what would work."""
    check_opset(request.opset)
    shape = check_shape(request.shape)
    try:
        import onnx  # noqa: F401  (the file is checked and annotated with it)
    except ImportError:
        raise ToolError('ONNX export needs the onnx package: pip install -e ".[deploy]" (or pip install '
                        'onnx onnxruntime onnxscript, versions in requirements/constraints.txt).') from None
    from ..apis.config import read_config
    cfg = read_config(request.config, request.cfg_options)
    check_part(cfg, request.part, request.config)

    torch.manual_seed(0)
    model = load_model(cfg)
    if request.checkpoint:
        load_weights(model, request.checkpoint, request.part, request.config)
        weights = request.checkpoint
    else:
        weights = 'none: the config\'s initialisation (pretrained init_cfg not loaded)'
    scope = cfg.default_scope
    reference = _Part(model, scope, request.part).eval()
    exported_module = copy.deepcopy(reference)
    replace_adaptive_pools(exported_module)

    image = torch.randn(request.batch, 3, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outputs = reference(image)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    names = output_names(reference, request.part, scope, outputs)
    os.makedirs(osp.dirname(osp.abspath(request.out)), exist_ok=True)
    start = time.perf_counter()
    export_module(exported_module, image, request.out, names, request.opset, request.dynamic)
    exported = Exported(path=request.out, reference=reference, output_names=names, scope=scope,
                        model_type=_model_type(cfg), request=request, preprocess=_preprocess(cfg), weights=weights)
    _finish(request.out, exported)
    exported.seconds = time.perf_counter() - start
    return exported


def run_export_tool(request: ExportRequest, check: bool = False, tolerance: float = DEFAULT_TOLERANCE) -> int:
    """Export as ``request`` asks and print what was written; with ``check``, run it in onnxruntime at the export
    size (and, for a dynamic export, at two other sizes and batch sizes) against torch and print the errors. Returns
    0; raises :class:`~l2vit.errors.ToolError` when the parity check fails."""
    ort = require_onnxruntime() if check else None  # before the export: a missing runtime is found at once
    if not request.checkpoint:
        print('note: no --checkpoint: exporting the config\'s initialisation (random weights; pretrained init_cfg '
              'not loaded). Good for checking the export, not for predictions.')
    exported = export_onnx(request)
    size_mb = osp.getsize(exported.path) / 2**20
    dims = 'batch, height and width dynamic' if request.dynamic else 'fixed size'
    print(f'config: {request.config} ({exported.scope}, {exported.model_type}), part: {request.part}')
    print(f'weights: {exported.weights}')
    print(f'wrote {exported.path} ({size_mb:.1f} MiB, opset {request.opset}, {dims}) in {exported.seconds:.1f} s')
    height, width = request.shape[0], request.shape[-1]
    normalised = '' if 'mean' in exported.preprocess else 'no normalisation in the config, '
    print(f'input: {request.batch}x3x{height}x{width} float32 named \'image\', after the data preprocessor '
          f'({normalised}{", ".join(f"{k}={v}" for k, v in exported.preprocess.items())})')
    print(f'outputs: {", ".join(exported.output_names)}')
    if not check:
        return 0
    sizes = check_sizes((height, width), request.batch, request.dynamic)
    rows = verify(exported.path, exported.reference, exported.output_names, sizes, tolerance)
    print(f'\nonnxruntime {ort.__version__} (CPUExecutionProvider) against torch eager, relative error = '
          f'max |ort - torch| / max |torch| per output:')
    print(format_parity(rows))
    worst = max(rows, key=lambda r: r.relative)
    if not all(r.ok for r in rows):
        raise ToolError(f'parity check failed: {worst.output} at input {"x".join(map(str, worst.input_shape))} has '
                        f'relative error {worst.relative:.3g} > {tolerance:g}')
    print(f'parity: every output within {tolerance:g} relative (worst {worst.relative:.3g}: {worst.output} at '
          f'{"x".join(map(str, worst.input_shape))})')
    return 0
