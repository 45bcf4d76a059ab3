"""A detection or segmentation config of ours with its L²ViT backbone swapped for Swin-T, ConvNeXt-T or ResNet-50,
everything else kept (``tools/analysis/compare_backbones.py``). Each peer is written as a user would write its config
(:func:`backbone_variants`): the backbone dict of the peer library's own config for the task (:data:`PEER_RECIPES`)
with the config's ``out_indices``, ``drop_path_rate`` and BN, narrowed to the L²ViT's parameter count when that has
custom widths (:func:`match_width`), the neck's or heads' ``in_channels`` following it, and the optimizer of the
library's config for the config's head and that peer (:data:`HEADS`), else of the task's recipe.
:func:`compare` counts, times (``test_step``, ``train_step``) and optionally trains every variant.
"""
import bisect
import contextlib
import copy
import functools
import importlib
import inspect
import io
import json
import numbers
import os
import os.path as osp
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from ..errors import ToolError
from .ablation import VARIANTS
from .benchmark import _progress, hxw, packed_inputs

__all__ = ['Backbone', 'BACKBONES', 'PEER_RECIPES', 'HEADS', 'head_of', 'Variant', 'check_backbones',
           'backbone_variants', 'build_variant', 'iteration_schedule', 'measure_speed', 'count_variant',
           'train_variant', 'compare']

SCHEMA = 'l2vit-compare/1'


class Backbone(NamedTuple):
    """A backbone the tool knows: its ``label`` in reports, the registry type that builds it (``builder``), the
    ``package`` that registers it and how to ``install`` that; a peer's ``width_step`` (its first width, or a
    ResNet's base channels, when narrowed: :func:`match_width`); for a variant of the config's own L2ViT, the
    ``l2vit`` keys set on its backbone dict (None for a peer, whose backbone comes from :data:`PEER_RECIPES`)."""
    label: str
    builder: str
    package: str
    install: str
    width_step: int = 0
    l2vit: Optional[Dict[str, Any]] = None


#: The backbones the tool knows (``--backbones``), in the order they are reported. A variant of the config's L2ViT
#: (an ablation) is one more entry with ``l2vit=dict(key=value)``.
BACKBONES = {
    'l2vit-t': Backbone('L²ViT-T', 'L2ViT', 'l2vit', 'pip install -e . (this repository)', l2vit={}),
    'swin-t': Backbone('Swin-T', 'mmdet.SwinTransformer', 'mmdet', 'pip install -e .[det]', 8),
    'convnext-t': Backbone('ConvNeXt-T', 'mmpretrain.ConvNeXt', 'mmpretrain', 'pip install -e .[pretrain]', 8),
    'r50': Backbone('ResNet-50', 'mmdet.ResNet', 'mmdet', 'pip install -e .[det]', 4),
    # The ablations (l2vit.analysis.ablation, docs/ablation.md): the config's L2ViT with modules replaced.
    **{f'l2vit-t:{v}': Backbone(f'L²ViT-T {v}', 'L2ViT', 'l2vit', 'pip install -e . (this repository)',
                                l2vit={} if v == 'full' else dict(type='L2ViTAblation', variant=v)) for v in VARIANTS},
}
#: The library config each peer's backbone settings (and, for a head without one below, optimizer) are read from.
PEER_RECIPES = {
    'mmdet': {
        'swin-t': 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
        'convnext-t': 'mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py',
        'r50': 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    },
    'mmseg': {
        'swin-t': 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
        'convnext-t': 'mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py',
        'r50': 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
    },
}


class Head(NamedTuple):
    """What a head's comparison follows: the learning rate of the L²ViT config's recipe (the peers' lr is scaled by
    the config's lr over it), the (H, W) its papers report at, and per peer the library's own config for that head
    whose optimizer the peer gets (a peer without one gets its :data:`PEER_RECIPES` optimizer, and the record says
    so)."""
    lr: float
    shape: Tuple[int, int]
    optimizers: Dict[str, str]


#: Per library and head (:func:`head_of`); the Mask R-CNN and UperNet recipes are :data:`PEER_RECIPES` themselves.
HEADS = {
    ('mmdet', 'default'): Head(1e-4, (800, 1280), {}),
    ('mmseg', 'default'): Head(6e-5, (512, 2048), {}),
    ('mmdet', 'CascadeRCNN'): Head(2e-4, (800, 1280), {
        'convnext-t': 'mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py',
        'r50': 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py'}),
    ('mmdet', 'RetinaNet'): Head(1e-4, (800, 1280), {
        'swin-t': 'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py',
        'r50': 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'}),
    ('mmdet', 'DINO'): Head(1e-4, (800, 1333), {
        'swin-t': 'mmdet::dino/dino-5scale_swin-l_8xb2-12e_coco.py',
        'r50': 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'}),
    ('mmdet', 'Mask2Former'): Head(1e-4, (1024, 1024), {
        'swin-t': 'mmdet::mask2former/mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco.py',
        'r50': 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py'}),
    ('mmseg', 'Mask2FormerHead'): Head(1e-4, (512, 512), {
        'swin-t': 'mmseg::mask2former/mask2former_swin-t_8xb2-160k_ade20k-512x512.py',
        'r50': 'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py'}),
}
#: The metric each task's curves and tables show first.
PRIMARY_METRIC = {'mmdet': 'coco/bbox_mAP', 'mmseg': 'mIoU'}


class Variant(NamedTuple):
    """One backbone's version of the config: its ``name``, ``cfg`` (an mmengine Config) and what was changed and
    why (``settings``, JSON-able)."""
    name: str
    cfg: Any
    settings: Dict[str, Any]


def check_backbones(names: Sequence[str]) -> List[str]:
    """The names, validated: known (:data:`BACKBONES`), not repeated, and each one's library importable."""
    unknown = [n for n in names if n not in BACKBONES]
    if not names or unknown:
        raise ToolError(f'unknown backbone {", ".join(map(repr, unknown))}; the backbones compare_backbones knows '
                        f'are {", ".join(BACKBONES)} (e.g. --backbones l2vit-t swin-t convnext-t r50)')
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise ToolError(f'backbone {", ".join(repeated)} named more than once in --backbones')
    for name in names:
        _, builder, package, install = BACKBONES[name][:4]
        try:
            importlib.import_module(package)
        except ImportError as err:
            raise ToolError(f'backbone {name} is built by {builder}, but {package} is not installed ({err}); install '
                            f'it with {install}, or leave {name} out of --backbones') from None
    return list(names)


def task_of(cfg: Any) -> str:
    """'mmdet' or 'mmseg': the library of a detection or segmentation config with an L2ViT backbone."""
    scope, model = cfg.get('default_scope'), cfg.get('model') or {}
    if scope not in PEER_RECIPES:
        raise ToolError(f'{cfg.filename} is neither a detection (mmdet) nor a segmentation (mmseg) config: its '
                        f'default_scope is {scope!r} and its model {model.get("type", "no model")!r}. '
                        'compare_backbones swaps the backbone of a detector or segmentor; give one of configs/'
                        'mask_rcnn, cascade_rcnn, retinanet, dino, mask2former, upernet, mask2former_ade20k or demo.')
    backbone = model.get('backbone')
    if not isinstance(backbone, dict) or str(backbone.get('type', '')).split('.')[-1] != 'L2ViT':
        found = backbone.get('type') if isinstance(backbone, dict) else backbone
        raise ToolError(f'the model of {cfg.filename} has backbone {found!r}, not L2ViT; compare_backbones compares '
                        f'other backbones against the L2ViT of one of our configs.')
    return scope


def _built(backbone: Dict[str, Any], scope: str, widths: bool = True) -> Tuple[int, List[int]]:
    """(parameters, output widths from a 64×64 forward pass, or [] without ``widths``) of a backbone dict."""
    import torch
    from mmengine.registry import MODELS, DefaultScope
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(scope):
        module = MODELS.build(copy.deepcopy(backbone))
    if not widths:
        return sum(p.numel() for p in module.parameters()), []
    module.eval()  # (not chained: some backbones' train() returns None)
    with torch.no_grad():
        outs = module(torch.zeros(1, 3, 64, 64))
    return sum(p.numel() for p in module.parameters()), [int(o.shape[1]) for o in outs]


def _widened(name: str, backbone: Dict[str, Any], width: int, arch: Dict[str, Any]) -> Dict[str, Any]:
    """The peer's backbone dict with its first width ``width`` (and the L²ViT's depths for Swin/ConvNeXt)."""
    backbone, depths = copy.deepcopy(backbone), list(arch['depths'])
    if name == 'swin-t':
        backbone.update(embed_dims=width, depths=depths, num_heads=list(arch['num_heads']))
    elif name == 'convnext-t':
        backbone['arch'] = dict(depths=depths, channels=[width * 2**i for i in range(len(depths))])
    else:  # a ResNet: same depth, narrower
        backbone.update(base_channels=width, stem_channels=width)
    return backbone


def match_width(name: str, backbone: Dict[str, Any], scope: str, target: int,
                arch: Dict[str, Any]) -> Tuple[Dict[str, Any], int]:
    """The peer narrowed to the width (a multiple of its ``width_step``, divisible by Swin's heads) whose backbone
    parameter count is nearest ``target``: the count grows with the width, so the first width that reaches the
    target is found by doubling from the narrowest, then bisecting. Returns (backbone dict, its parameters)."""
    step = BACKBONES[name].width_step
    widths = [w for w in range(step, 1025, step) if name != 'swin-t' or all(
        (w * 2**i) % heads == 0 for i, heads in enumerate(arch['num_heads']))]
    count = functools.lru_cache(maxsize=None)(
        lambda width: _built(_widened(name, backbone, width, arch), scope, widths=False)[0])
    high = 0
    while high < len(widths) - 1 and count(widths[high]) < target:
        high = min(2 * high + 1, len(widths) - 1)
    first = bisect.bisect_left(widths, target, high // 2, high, key=count)  # the first to reach it (or the widest)
    best = min(widths[max(first - 1, 0):first + 1], key=lambda width: abs(count(width) - target))
    return _widened(name, backbone, best, arch), count(best)


@functools.lru_cache(maxsize=None)
def _recipe(path: str) -> Any:
    from .benchmark import base_config
    return base_config(path)


def _peer_backbone(name: str, scope: str, recipe: Any, l2vit: Dict[str, Any],
                   pretrained: bool) -> Tuple[Dict[str, Any], List[str]]:
    """The recipe's backbone dict with the class the tool names, the config's out_indices, drop_path_rate and BN
    type, the recipe's weights if the config's L²ViT is pretrained; and notes on what was changed."""
    from mmengine.registry import MODELS, DefaultScope

    from ..apis.config_tree import as_list, is_pretrained
    backbone, notes = recipe.model.backbone.to_dict(), []
    if backbone.pop('type') == 'ResNetV1c':
        backbone.update(deep_stem=True, avg_down=False)
        notes.append("mmseg's ResNetV1c as mmdet's ResNet(deep_stem=True, avg_down=False), the same network")
    backbone['type'] = BACKBONES[name].builder
    weights = next((dict(item) for item in as_list(backbone.get('init_cfg')) if is_pretrained(item)), None)
    if weights is None and isinstance(recipe.model.get('pretrained'), str):  # mmseg's ResNet recipes
        weights = dict(type='Pretrained', checkpoint=recipe.model.pretrained)
    backbone['init_cfg'] = weights if pretrained else None
    backbone.pop('pretrained', None)
    if name == 'r50' and not pretrained:
        backbone.update(frozen_stages=-1, norm_eval=False)
        notes.append('from scratch: no frozen stem, BN statistics trained (frozen_stages=-1, norm_eval=False)')
    backbone['out_indices'] = tuple(l2vit.get('out_indices', (0, 1, 2, 3)))
    if 'drop_path_rate' in backbone:  # regularisation follows the config's schedule (1x, 3x, from scratch)
        own = l2vit.get('drop_path_rate', 0.0)
        if backbone['drop_path_rate'] != own:
            notes.append(f'drop_path_rate {own} as the config\'s L2ViT (the recipe has {backbone["drop_path_rate"]})')
        backbone['drop_path_rate'] = own
    norm, own = backbone.get('norm_cfg'), (l2vit.get('norm_cfg') or {}).get('type', 'BN')
    if isinstance(norm, dict) and norm.get('type') in ('SyncBN', 'BN') and own in ('SyncBN', 'BN'):
        backbone['norm_cfg'] = dict(norm, type=own)
    with DefaultScope.overwrite_default_scope(scope):
        cls = MODELS.get(backbone['type'])
    dropped = sorted(k for k in backbone if k not in inspect.signature(cls.__init__).parameters and k != 'type')
    if dropped:
        notes.append(f'recipe keys {cls.__name__} does not take, dropped: {", ".join(dropped)}')
    return {k: v for k, v in backbone.items() if k not in dropped}, notes


def _peer_optimizer(cfg: Any, recipe: Any, scale: float) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The config's optim_wrapper with the recipe's optimizer (lr × ``scale``), paramwise_cfg and constructor; and
    what was applied, for the record."""
    wrapper, theirs = copy.deepcopy(cfg.optim_wrapper.to_dict()), recipe.optim_wrapper.to_dict()
    wrapper['optimizer'] = optimizer = dict(theirs['optimizer'], lr=theirs['optimizer']['lr'] * scale)
    for key in ('paramwise_cfg', 'constructor'):
        wrapper.pop(key, None)
        if theirs.get(key) is not None:
            wrapper[key] = theirs[key]
    return wrapper, dict(optimizer=optimizer, paramwise_cfg=theirs.get('paramwise_cfg'),
                         constructor=theirs.get('constructor', 'DefaultOptimWrapperConstructor'), lr_scale=scale,
                         recipe_lr=theirs['optimizer']['lr'], wrapper_type=wrapper.get('type', 'OptimWrapper'),
                         recipe_wrapper_type=theirs.get('type', 'OptimWrapper'), clip_grad=wrapper.get('clip_grad'))


def _rewire_heads(cfg: Any, scope: str, widths: List[int]) -> Dict[str, Any]:
    """Point the first neck (mmdet; Mask2Former's panoptic_head, which has none) or the decode/auxiliary heads
    (mmseg) at ``widths``; the new in_channels by key."""
    from ..apis.config_tree import as_list
    changed = {}
    if scope == 'mmdet':
        for neck in as_list(cfg.model.get('neck'))[:1]:
            neck['in_channels'] = changed['model.neck.in_channels'] = list(widths)
        if not cfg.model.get('neck') and cfg.model.get('panoptic_head'):
            cfg.model.panoptic_head['in_channels'] = changed['model.panoptic_head.in_channels'] = list(widths)
        return changed
    for key in ('decode_head', 'auxiliary_head'):
        for i, head in enumerate(as_list(cfg.model.get(key))):
            # A head without in_index but with a list of in_channels (mmseg's Mask2FormerHead) reads every stage.
            every = list(range(len(widths))) if isinstance(head.get('in_channels'), (list, tuple)) else -1
            index = head.get('in_index', every)
            head['in_channels'] = [widths[j] for j in index] if isinstance(index, (list, tuple)) else widths[index]
            changed[f'model.{key}' + (f'.{i}' if isinstance(cfg.model[key], list) else '') + '.in_channels'] = \
                head['in_channels']
    return changed


def head_of(cfg: Any, scope: str) -> Head:
    """The :data:`HEADS` entry of a config: by ``model.type`` (mmdet) or the decode head's type (mmseg)."""
    from ..apis.config_tree import as_list
    named = cfg.model
    if scope == 'mmseg':  # (a cascade's last decode head is the one that predicts)
        named = ([{}] + as_list(named.get('decode_head')))[-1]
    kind = str(named.get('type', '')).split('.')[-1]
    return HEADS.get((scope, kind), HEADS[(scope, 'default')])


def lr_scale(cfg: Any, scope: str) -> float:
    """The config's learning rate over its head's L²ViT recipe's (:data:`HEADS`)."""
    return float(cfg.optim_wrapper.optimizer.lr) / head_of(cfg, scope).lr


def backbone_variants(cfg: Any, names: Sequence[str], scale: Optional[float] = None) -> List[Variant]:
    """One :class:`Variant` per backbone name of ``cfg`` (a loaded config of ours). ``scale``: the peers'
    learning-rate factor (default :func:`lr_scale`)."""
    from ..apis.config_tree import pretrained_checkpoints
    from ..models import L2ViT
    from .benchmark import _quiet_logger
    scope, names = task_of(cfg), check_backbones(names)
    for package in ['mmdet_l2vit' if scope == 'mmdet' else 'mmseg_l2vit'] + [
            BACKBONES[n].package + '.models' for n in names if BACKBONES[n].l2vit is None]:  # as custom_imports
        importlib.import_module(package)
    _quiet_logger('l2vit_compare')
    head = head_of(cfg, scope)
    scale = lr_scale(cfg, scope) if scale is None else scale
    l2vit, l2vit_notes = cfg.model.backbone.to_dict(), []
    # A named size, also when written as a dict (the Mask2Former configs do, so that a child's dict arch merges):
    # the peers are the standard T models; only a custom width narrows them to its parameter count.
    named = any(L2ViT.parse_arch(l2vit.get('arch', 'tiny')) == L2ViT.parse_arch(size) for size in L2ViT.arch_zoo)
    if named and L2ViT.parse_arch(l2vit.get('arch', 'tiny')) != L2ViT.parse_arch('tiny'):
        l2vit_notes.append(f'the config\'s L2ViT arch {l2vit["arch"]!r} replaced by tiny (this tool compares T sizes)')
        l2vit['arch'] = 'tiny'
    arch = L2ViT.parse_arch(l2vit.get('arch', 'tiny'))
    target, l2vit_widths = _built(l2vit, scope)
    pretrained = any(True for _ in pretrained_checkpoints(l2vit, 'model.backbone'))
    variants = []
    for name in names:
        variant_cfg = copy.deepcopy(cfg)
        spec = BACKBONES[name]
        settings: Dict[str, Any] = dict(label=spec.label, builder=spec.builder, notes=[])
        if spec.l2vit is not None:
            backbone = dict(l2vit, **spec.l2vit)
            count, widths = _built(backbone, scope) if spec.l2vit else (target, l2vit_widths)
            if backbone.get('type') == 'L2ViTAblation':  # registered by l2vit.analysis.ablation, for every process
                imports = dict(variant_cfg.get('custom_imports') or dict(imports=[], allow_failed_imports=False))
                imports['imports'] = [*(imports.get('imports') or []), 'l2vit.analysis.ablation']
                variant_cfg.custom_imports = imports
            own = cfg.optim_wrapper
            settings['notes'] += l2vit_notes + ([f'the config\'s L2ViT with {spec.l2vit}'] if spec.l2vit else [])
            settings.update(recipe=cfg.filename,
                            optimizer=dict(optimizer=own.optimizer.to_dict(), paramwise_cfg=own.get('paramwise_cfg'),
                                           constructor=own.get('constructor'), source='the config, unchanged'))
        else:
            recipe = _recipe(PEER_RECIPES[scope][name])
            backbone, settings['notes'] = _peer_backbone(name, scope, recipe, l2vit, pretrained)
            if not named:
                backbone, count = match_width(name, backbone, scope, target, arch)
                settings['notes'].append(f'narrowed to {count / 1e6:.2f} M backbone parameters, the nearest to the '
                                         f'L2ViT\'s {target / 1e6:.2f} M')
            count, widths = _built(backbone, scope)
            if variant_cfg.model.get('pretrained'):
                variant_cfg.model.pretrained = None
            source = head.optimizers.get(name, PEER_RECIPES[scope][name])
            variant_cfg.optim_wrapper, applied = _peer_optimizer(cfg, _recipe(source), scale)
            if head.optimizers and name not in head.optimizers:
                settings['notes'].append(f'{scope} has no {spec.label} config for this head: the optimizer of '
                                         f'{PEER_RECIPES[scope][name]}')
            settings.update(recipe=PEER_RECIPES[scope][name], optimizer=dict(
                applied, source=source, fallback=bool(head.optimizers) and name not in head.optimizers))
            imports = dict(variant_cfg.get('custom_imports') or dict(imports=[], allow_failed_imports=False))
            imports['imports'] = list(dict.fromkeys([*(imports.get('imports') or []), spec.package + '.models']))
            variant_cfg.custom_imports = imports
        variant_cfg.model.backbone = backbone
        settings.update(backbone=_plain(backbone), backbone_params=count, out_channels=widths,
                        in_channels=_rewire_heads(variant_cfg, scope, widths))
        variants.append(Variant(name, variant_cfg, settings))
    return variants


def _plain(value: Any) -> Any:
    """A JSON-able copy (tuples as lists, other objects as text)."""
    return json.loads(json.dumps(value, default=str))


def build_variant(variant: Variant, with_optimizer: bool = True) -> Tuple[Any, Any]:
    """(model, optim_wrapper or None) of a variant as mmengine's runner builds them, for one process (SyncBN as BN),
    without pretrained weights, initialised after ``torch.manual_seed(0)``."""
    from .benchmark import build_detector, one_process
    return build_detector(one_process(copy.deepcopy(variant.cfg)), 'cpu', optimizer=with_optimizer)


def _num_classes(cfg: Any, scope: str) -> int:
    from ..apis.config_tree import config_dicts
    for _, node in config_dicts(cfg.model, skip=('train_cfg', 'test_cfg', 'data_preprocessor')):
        if isinstance(node.get('num_classes'), int):
            return node['num_classes']
    return 80 if scope == 'mmdet' else 150


def measure_speed(variants: Sequence[Variant], size: Tuple[int, int], batch: int, warmup: int, repeats: int,
                  budget: float) -> Dict[str, Dict[str, Any]]:
    """Per variant, on the CPU: ``infer`` (``test_step``: preprocessing and prediction; images/s) and ``train``
    (``train_step``: losses, backward, optimizer step), each with times and peak memory, the variants interleaved
    round by round (:func:`l2vit.analysis.benchmark.measure_steps`)."""
    import torch
    from mmengine.registry import DefaultScope

    from .benchmark import measure_steps
    scope, results = variants[0].cfg.default_scope, {v.name: {} for v in variants}
    built = {v.name: (*build_variant(v), packed_inputs(scope, size, batch, _num_classes(v.cfg, scope)))
             for v in variants}
    with DefaultScope.overwrite_default_scope(scope):
        for label in ('infer', 'train'):
            for model, _, _ in built.values():
                model.train(label == 'train')
            steps = {name: functools.partial(model.train_step, data, wrapper) if label == 'train' else
                     functools.partial(model.test_step, data) for name, (model, wrapper, data) in built.items()}
            _progress(f'timing: {label} at {hxw(size)}, batch {batch} ...')
            for name, result in measure_steps(steps, torch.device('cpu'), warmup, repeats, budget)[0].items():
                if label == 'infer' and result['median_s']:
                    result['images_per_s'] = batch / result['median_s']
                results[name][label] = result
    return results


def count_variant(variant: Variant, shape: Tuple[int, int]) -> Dict[str, Any]:
    """Parameters and FLOPs (multiply-adds, :mod:`l2vit.analysis.flops`) of the backbone and the whole model on one
    ``shape`` image, with the counter's notes."""
    import warnings

    import torch

    from .flops import count_model
    model = build_variant(variant, with_optimizer=False)[0].eval()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        rows, notes, _ = count_model(model, variant.cfg.default_scope, shape, variant.cfg.filename)
    counted = {part: dict(params=params, flops=flops) for part, params, flops in rows}
    return dict(shape=list(shape), backbone=counted['backbone'], model=counted['whole model'], notes=notes)


def iteration_schedule(cfg: Any, iters: int) -> List[Dict[str, Any]]:
    """The config's ``param_scheduler`` over ``iters`` iterations: positions in epochs (``by_epoch=True``) and, in an
    iteration-based config, in iterations, mapped proportionally (epoch e of E -> iteration e/E·iters); an
    epoch-based config's iteration-unit warm-up keeps its length."""
    train_cfg = cfg.get('train_cfg') or {}
    epochs, config_iters = train_cfg.get('max_epochs'), train_cfg.get('max_iters')
    schedulers = []
    for scheduler in copy.deepcopy(list(cfg.get('param_scheduler') or [])):
        scheduler = dict(scheduler)
        by_epoch = scheduler.pop('by_epoch', True)
        scheduler.pop('convert_to_iter_based', None)
        factor = iters / epochs if by_epoch and epochs else iters / config_iters if (
            not by_epoch and config_iters) else 1.0
        for key in ('begin', 'end', 'milestones', 'T_max'):
            value = scheduler.get(key)
            if isinstance(value, (list, tuple)):
                scheduler[key] = [max(1, round(v * factor)) for v in value]
            elif value:
                scheduler[key] = max(1, round(value * factor))
        if scheduler.get('end', 0) and scheduler['end'] >= 10**8:
            scheduler['end'] = iters  # an open end (mmengine's default is 'never')
        if by_epoch:
            scheduler.setdefault('begin', 0)
            scheduler.setdefault('end', iters)
        schedulers.append(dict(scheduler, by_epoch=False))
    return schedulers


def train_config(variant: Variant, iters: int, eval_interval: int, seed: int, work_dir: str) -> Any:
    """The variant's config for ``iters`` training iterations (IterBasedTrainLoop), evaluated every
    ``eval_interval`` and at the end, with ``seed`` (the same data order and initialisation for every backbone)."""
    cfg = copy.deepcopy(variant.cfg)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=eval_interval)
    cfg.param_scheduler = iteration_schedule(variant.cfg, iters)
    cfg.randomness, cfg.work_dir, cfg.log_level = dict(seed=seed), work_dir, 'WARNING'
    cfg.log_processor = dict(type='LogProcessor', window_size=10, by_epoch=False)
    hooks = cfg.default_hooks
    hooks.logger = dict(type='LoggerHook', interval=max(1, min(50, iters // 10)), log_metric_by_epoch=False)
    hooks.checkpoint = dict(type='CheckpointHook', interval=iters, by_epoch=False, max_keep_ckpts=1)
    if 'visualization' in hooks:
        hooks.visualization.draw = False
    if cfg.get('visualizer') is not None:
        # An mmengine singleton by name: a second runner in this process would get the first one's back.
        cfg.visualizer.name = f'visualizer_{variant.name}'
    cfg.resume, cfg.load_from = False, None
    return cfg


def _progress_hook(name: str, iters: int) -> Any:
    """An mmengine hook: a progress bar, every iteration's loss, and at each evaluation the metrics and the training
    time so far (evaluation excluded; pycocotools' printed tables silenced)."""
    from mmengine.hooks import Hook
    from mmengine.utils import ProgressBar

    class CompareProgress(Hook):
        priority, val_seconds, silenced = 'VERY_LOW', 0.0, contextlib.ExitStack()

        def before_train(self, runner) -> None:
            print(f'training {name}: {iters} iterations', flush=True)
            self.bar, self.start, self.losses, self.evals = ProgressBar(iters), time.perf_counter(), [], []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            loss = (outputs or {}).get('loss', float('nan'))
            self.losses.append(float(loss.detach() if hasattr(loss, 'detach') else loss))
            self.bar.update()

        def before_val_epoch(self, runner) -> None:
            self.val_start = time.perf_counter()
            self.silenced.enter_context(contextlib.redirect_stdout(io.StringIO()))

        def after_val_epoch(self, runner, metrics=None) -> None:
            self.silenced.close()
            now = time.perf_counter()
            self.val_seconds += now - self.val_start
            self.evals.append(dict(iter=runner.iter, train_s=now - self.start - self.val_seconds,
                                   eval_s=now - self.val_start,
                                   metrics={k: float(v) if isinstance(v, numbers.Number) else str(v)
                                            for k, v in (metrics or {}).items()}))

        def after_train(self, runner) -> None:
            print(flush=True)

    return CompareProgress()


def train_variant(variant: Variant, iters: int, eval_interval: int, seed: int, out_dir: str) -> Dict[str, Any]:
    """Train the variant as ``tools/train.py`` would (its config written to ``out_dir/train/<name>/<name>.py`` and
    prepared by :func:`l2vit.apis.run.prepare_train`); return the loss of every iteration and the metrics,
    iteration and training seconds of every evaluation."""
    from ..apis.run import build_runner, prepare_train
    work_dir = osp.join(out_dir, 'train', variant.name)
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, f'{variant.name}.py')  # its name names the runner's logger and visualizer
    train_config(variant, iters, eval_interval, seed, work_dir).dump(path)
    cfg = prepare_train(path, work_dir=work_dir)
    runner, hook = build_runner(cfg), _progress_hook(variant.name, iters)
    runner.register_hook(hook)
    start = time.perf_counter()
    runner.train()
    return dict(config=path, iters=iters, eval_interval=eval_interval, seed=seed, losses=hook.losses,
                evals=hook.evals, wall_s=time.perf_counter() - start,
                train_s=hook.evals[-1]['train_s'] if hook.evals else None, schedule=_plain(cfg.param_scheduler))


def compare(config: str, backbones: Sequence[str], train_iters: Optional[int] = None,
            eval_interval: Optional[int] = None, out_dir: str = 'work_dirs/compare_backbones',
            time_size: Optional[Tuple[int, int]] = None, flops_size: Optional[Tuple[int, int]] = None,
            batch: int = 2, warmup: int = 1, repeats: int = 3, budget: float = 120.0,
            seed: Optional[Union[int, Sequence[int]]] = None,
            lr_factor: Optional[float] = None, cfg_options: Optional[dict] = None, command: str = '',
            progress: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """Everything ``tools/analysis/compare_backbones.py`` measures, as a JSON-able record (``schema``
    :data:`SCHEMA`), the inputs checked first (backbone names and libraries, the kind of config, with
    ``train_iters`` its data). The trainings' work dirs go under ``out_dir``; ``progress`` is called with the record
    as far as measured after each part (the tool saves it, so that an interrupted run keeps what it measured)."""
    import torch

    from ..apis.config import check_inputs, read_config
    from .benchmark import machine_info
    if train_iters is not None and train_iters < 1:
        raise ToolError(f'--train needs a positive number of iterations, got {train_iters}')
    cfg = read_config(config, cfg_options)
    scope = task_of(cfg)
    check_backbones(backbones)
    if train_iters is not None:
        check_inputs(cfg, ['train_dataloader', 'val_dataloader'], check_pretrained=False)
    progress = progress or (lambda record: None)
    start, machine = time.perf_counter(), machine_info(torch.device('cpu'))  # the load before this run adds its own
    variants = backbone_variants(cfg, backbones, lr_factor)
    flops_shape = tuple(flops_size or head_of(cfg, scope).shape)
    time_shape = tuple(time_size or flops_shape)
    record: Dict[str, Any] = dict(
        schema=SCHEMA, command=command, config=config, task=scope, metric=PRIMARY_METRIC[scope],
        date=time.strftime('%Y-%m-%d %H:%M:%S %Z'), machine=machine,
        settings=dict(flops_shape=list(flops_shape), time_shape=list(time_shape), time_batch=batch, warmup=warmup,
                      repeats=repeats, lr_scale=lr_factor if lr_factor is not None else lr_scale(cfg, scope),
                      train_iters=train_iters, eval_interval=None, seed=None),
        backbones={v.name: dict(v.settings) for v in variants}, complete=False)
    for variant in variants:
        _progress(f'counting: {variant.name} at {hxw(flops_shape)} ...')
        record['backbones'][variant.name]['complexity'] = count_variant(variant, flops_shape)
    progress(record)
    for name, speed in measure_speed(variants, time_shape, batch, warmup, repeats, budget).items():
        record['backbones'][name].update(speed)
    progress(record)
    if train_iters is not None:
        interval = eval_interval or max(1, train_iters // 2)
        seeds = [seed] if seed is None or isinstance(seed, int) else list(seed)
        seeds = [int((cfg.get('randomness') or {}).get('seed') or 0) if s is None else s for s in seeds]
        record['settings'].update(eval_interval=interval, seed=seeds[0], seeds=seeds)
        for variant in variants:  # with several seeds, each one's runs under out_dir/seed<s> ('trainings')
            runs = [train_variant(variant, train_iters, interval, s, out_dir if len(seeds) == 1 else
                                  osp.join(out_dir, f'seed{s}')) for s in seeds]
            record['backbones'][variant.name].update(training=runs[0], **{'trainings': runs} if len(seeds) > 1 else {})
            progress(record)
    record.update(total_s=time.perf_counter() - start, complete=True)
    return record
