"""Downstream comparison: one detection or segmentation config of ours, its L²ViT backbone swapped for Swin-T
(mmdet's ``SwinTransformer``), ConvNeXt-T (mmpretrain's ``ConvNeXt``, as ``mmpretrain.ConvNeXt``) or ResNet-50
(mmdet's ``ResNet``), everything else kept: what ``tools/analysis/compare_backbones.py`` measures.

What changes with the backbone (:func:`backbone_variants`), and nothing else:

* ``model.backbone``: the peer's backbone dict as the peer's own library config for this task builds it
  (:data:`PEER_RECIPES`: mmdet's Mask R-CNN configs for detection, mmseg's UperNet configs for segmentation), with
  the class named above (mmseg's ``ResNetV1c`` becomes mmdet's ``ResNet`` with ``deep_stem=True``, which is what
  ``ResNetV1c`` is), the config's ``out_indices``, its L²ViT's ``drop_path_rate`` (regularisation follows the
  config's schedule) and its backbone norm (plain BN where the config's L²ViT uses plain BN). Pretrained weights:
  the recipe's ImageNet checkpoint when the config's L²ViT starts from ImageNet weights, none when it trains from
  scratch (then a ResNet's stem and BN statistics are not frozen either).
* When the config's L²ViT has custom widths (an ``arch`` dict, as in ``configs/demo/``), every peer is narrowed to
  the parameter count of that L²ViT (:func:`match_width`: the width of the recipe's layout whose backbone
  parameter count is nearest, with the L²ViT's depths for Swin and ConvNeXt); with a named arch the peers are the
  recipes' T-size models and ResNet-50.
* The neck's ``in_channels`` (mmdet) or the decode and auxiliary heads' ``in_channels`` (mmseg): the widths the
  built backbone outputs, read from a forward pass.
* The optimizer: the recipe's (type, learning rate, weight decay, betas or momentum), its ``paramwise_cfg`` and
  ``constructor``; the config's wrapper type and gradient clipping stay. The learning rate is multiplied by the
  factor between the config's learning rate and the L²ViT recipe's (:data:`L2VIT_RECIPE_LR`; 1 for the COCO and
  ADE20K configs, 10 for ``make demo``'s from-scratch config), so that a config that trains faster than the paper's
  recipe does so for every backbone.

Measured (:func:`compare`): parameters and FLOPs of the backbone and the whole model at the paper's input size
(:data:`PAPER_SHAPES`, :mod:`l2vit.analysis.flops`); inference images/s (``test_step``) and the training-iteration
time and peak memory (``train_step``, the optimizer step included) of the whole model, every backbone interleaved
in one process (:func:`l2vit.analysis.benchmark.measure_size`); with ``train_iters``: each backbone trained by
mmengine's runner from the same seed on the config's data for the same number of iterations, the config's schedule
mapped onto them (:func:`iteration_schedule`), evaluated every ``eval_interval`` iterations.
"""
import argparse
import copy
import functools
import importlib
import inspect
import os
import os.path as osp
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import ToolError

__all__ = ['BACKBONES', 'LIBRARIES', 'PEER_RECIPES', 'PAPER_SHAPES', 'L2VIT_RECIPE_LR', 'SCHEMA', 'Variant',
           'check_backbones', 'task_of', 'backbone_variants', 'build_variant', 'match_width', 'iteration_schedule',
           'train_config', 'packed_inputs', 'measure_speed', 'count_variant', 'train_variant', 'compare']

SCHEMA = 'l2vit-compare/1'
#: The backbones the tool knows, in the order they are reported.
BACKBONES = ('l2vit-t', 'swin-t', 'convnext-t', 'r50')
LABELS = {'l2vit-t': 'L²ViT-T', 'swin-t': 'Swin-T', 'convnext-t': 'ConvNeXt-T', 'r50': 'ResNet-50'}
#: (package, what of it builds the backbone, pip requirement) per backbone.
LIBRARIES = {
    'l2vit-t': ('l2vit', 'L2ViT', 'pip install -e . (this repository)'),
    'swin-t': ('mmdet', 'mmdet.SwinTransformer', "pip install 'mmdet>=3.0,<3.4' (or pip install -e .[det])"),
    'convnext-t': ('mmpretrain', 'mmpretrain.ConvNeXt',
                   "pip install 'mmpretrain>=1.0,<1.3' (or pip install -e .[pretrain])"),
    'r50': ('mmdet', 'mmdet.ResNet', "pip install 'mmdet>=3.0,<3.4' (or pip install -e .[det])"),
}
#: The library config each peer's backbone settings and optimizer are read from, per task.
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
#: (H, W) at which parameters and FLOPs are reported: the papers' convention (COCO 1280×800, ADE20K 512×2048).
PAPER_SHAPES = {'mmdet': (800, 1280), 'mmseg': (512, 2048)}
#: The learning rate of the L²ViT recipe per task (our Mask R-CNN / RetinaNet and UperNet configs, the authors').
L2VIT_RECIPE_LR = {'mmdet': 1e-4, 'mmseg': 6e-5}
#: The metric each task's curves and tables show first.
PRIMARY_METRIC = {'mmdet': 'coco/bbox_mAP', 'mmseg': 'mIoU'}
#: Width steps tried when narrowing a peer (Swin/ConvNeXt: first stage width; ResNet: base channels).
WIDTH_STEP = {'swin-t': 8, 'convnext-t': 8, 'r50': 4}


class Variant:
    """One backbone's version of the config: ``cfg`` (an mmengine Config), its ``name``, and what was changed and
    why (``settings``, JSON-able)."""

    def __init__(self, name: str, cfg: Any, settings: Dict[str, Any]) -> None:
        self.name, self.cfg, self.settings = name, cfg, settings


# ---------------------------------------------------------------------------------------------- checking inputs
def check_backbones(names: Sequence[str]) -> List[str]:
    """The names, validated: known (:data:`BACKBONES`), not repeated, and each one's library importable."""
    if not names:
        raise ToolError(f'no backbone named; choose from {", ".join(BACKBONES)}')
    unknown = [n for n in names if n not in BACKBONES]
    if unknown:
        raise ToolError(f'unknown backbone {", ".join(map(repr, unknown))}; the backbones compare_backbones knows '
                        f'are {", ".join(BACKBONES)} (e.g. --backbones l2vit-t swin-t convnext-t r50)')
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise ToolError(f'backbone {", ".join(repeated)} named more than once in --backbones')
    for name in names:
        package, builder, install = LIBRARIES[name]
        try:
            importlib.import_module(package)
        except ImportError as err:
            raise ToolError(f'backbone {name} is built by {builder}, but {package} is not installed ({err}); install '
                            f'it with {install}, or leave {name} out of --backbones') from None
    return list(names)


def task_of(cfg: Any) -> str:
    """'mmdet' or 'mmseg': the library of a detection or segmentation config with an L2ViT backbone."""
    scope = cfg.get('default_scope')
    model = cfg.get('model') or {}
    if scope not in PEER_RECIPES:
        kind = model.get('type', 'no model')
        raise ToolError(f'{cfg.filename} is neither a detection (mmdet) nor a segmentation (mmseg) config: its '
                        f'default_scope is {scope!r} and its model {kind!r}. compare_backbones swaps the backbone of '
                        f'a detector or segmentor; give one of configs/mask_rcnn, cascade_rcnn, retinanet, upernet '
                        f'or demo.')
    backbone = model.get('backbone')
    if not isinstance(backbone, dict) or str(backbone.get('type', '')).split('.')[-1] != 'L2ViT':
        found = backbone.get('type') if isinstance(backbone, dict) else backbone
        raise ToolError(f'the model of {cfg.filename} has backbone {found!r}, not L2ViT; compare_backbones compares '
                        f'other backbones against the L2ViT of one of our configs.')
    return scope


# --------------------------------------------------------------------------------------------- building variants
def _build_backbone(backbone: Dict[str, Any], scope: str) -> Any:
    import torch
    from mmengine.registry import MODELS, DefaultScope
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(copy.deepcopy(backbone))


def _params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def _out_widths(module: Any) -> List[int]:
    """The channel counts of the backbone's outputs (a 64×64 forward pass, stride 32 at most)."""
    import torch
    module.eval()
    with torch.no_grad():
        outs = module(torch.zeros(1, 3, 64, 64))
    return [int(o.shape[1]) for o in outs]


def _widened(name: str, backbone: Dict[str, Any], width: int, l2vit_arch: Dict[str, Any]) -> Dict[str, Any]:
    """The peer's backbone dict with its first width set to ``width`` (and the L²ViT's depths for Swin/ConvNeXt)."""
    backbone = copy.deepcopy(backbone)
    depths = list(l2vit_arch['depths'])
    if name == 'swin-t':
        backbone.update(embed_dims=width, depths=depths, num_heads=list(l2vit_arch['num_heads']))
    elif name == 'convnext-t':
        backbone['arch'] = dict(depths=depths, channels=[width * 2**i for i in range(len(depths))])
    else:  # a ResNet: same depth, narrower
        backbone.update(base_channels=width, stem_channels=width)
    return backbone


def _width_fits(name: str, width: int, l2vit_arch: Dict[str, Any]) -> bool:
    if name != 'swin-t':
        return True
    return all((width * 2**i) % heads == 0 for i, heads in enumerate(l2vit_arch['num_heads']))


def match_width(name: str, backbone: Dict[str, Any], scope: str, target: int,
                l2vit_arch: Dict[str, Any]) -> Tuple[Dict[str, Any], int]:
    """The peer narrowed to about ``target`` backbone parameters: widths tried in steps of :data:`WIDTH_STEP` from
    the smallest up, the nearest count kept. Returns (backbone dict, its parameters)."""
    step, best = WIDTH_STEP[name], None
    width = step
    while width <= 1024:
        if _width_fits(name, width, l2vit_arch):
            candidate = _widened(name, backbone, width, l2vit_arch)
            count = _params(_build_backbone(candidate, scope))
            if best is None or abs(count - target) < abs(best[1] - target):
                best = (candidate, count)
            if count >= target:
                break
        width += step
    return best


@functools.lru_cache(maxsize=None)
def _recipe(scope: str, name: str) -> Any:
    """The peer's library config (read once; only read from, never changed)."""
    from .detector import base_config
    return base_config(PEER_RECIPES[scope][name])


def _norm_like_config(backbone: Dict[str, Any], l2vit: Dict[str, Any]) -> None:
    """The peer's BatchNorm follows the config's L²ViT: plain BN where it uses plain BN."""
    norm = backbone.get('norm_cfg')
    own = (l2vit.get('norm_cfg') or {}).get('type', 'BN')
    if isinstance(norm, dict) and norm.get('type') in ('SyncBN', 'BN') and own in ('SyncBN', 'BN'):
        backbone['norm_cfg'] = dict(norm, type=own)


def _peer_backbone(name: str, scope: str, recipe: Any, l2vit: Dict[str, Any],
                   pretrained: bool) -> Tuple[Dict[str, Any], List[str]]:
    """The recipe's backbone dict with the class the tool names, the config's out_indices and norm, pretrained
    weights as the config's L²ViT has them; and notes on what was changed."""
    backbone = recipe.model.backbone.to_dict()
    notes = []
    kind = backbone.pop('type')
    if kind == 'ResNetV1c':
        backbone.update(deep_stem=True, avg_down=False)
        notes.append("mmseg's ResNetV1c as mmdet's ResNet(deep_stem=True, avg_down=False), the same network")
    backbone['type'] = LIBRARIES[name][1]
    from ..apis.config_tree import as_list, is_pretrained
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
    _norm_like_config(backbone, l2vit)
    from mmengine.registry import MODELS, DefaultScope
    with DefaultScope.overwrite_default_scope(scope):
        cls = MODELS.get(backbone['type'])
    accepted = inspect.signature(cls.__init__).parameters
    dropped = sorted(k for k in backbone if k not in accepted and k != 'type')
    for key in dropped:
        backbone.pop(key)
    if dropped:
        notes.append(f'recipe keys {cls.__name__} does not take, dropped: {", ".join(dropped)}')
    return backbone, notes


def _peer_optimizer(cfg: Any, recipe: Any, scale: float) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The config's optim_wrapper with the recipe's optimizer, paramwise_cfg and constructor (lr × ``scale``); and
    what was applied, for the record."""
    wrapper = copy.deepcopy(cfg.optim_wrapper.to_dict())
    theirs = recipe.optim_wrapper.to_dict()
    optimizer = dict(theirs['optimizer'])
    optimizer['lr'] = optimizer['lr'] * scale
    wrapper['optimizer'] = optimizer
    for key in ('paramwise_cfg', 'constructor'):
        wrapper.pop(key, None)
        if theirs.get(key) is not None:
            wrapper[key] = theirs[key]
    applied = dict(optimizer=optimizer, paramwise_cfg=theirs.get('paramwise_cfg'),
                   constructor=theirs.get('constructor', 'DefaultOptimWrapperConstructor'),
                   lr_scale=scale, recipe_lr=theirs['optimizer']['lr'],
                   wrapper_type=wrapper.get('type', 'OptimWrapper'),
                   recipe_wrapper_type=theirs.get('type', 'OptimWrapper'), clip_grad=wrapper.get('clip_grad'))
    return wrapper, applied


def _rewire_heads(cfg: Any, scope: str, widths: List[int]) -> Dict[str, Any]:
    """Point the neck (mmdet) or the decode/auxiliary heads (mmseg) at ``widths``, the backbone's output widths;
    return the new in_channels by config key."""
    from ..apis.config_tree import as_list
    changed = {}
    if scope == 'mmdet':
        for neck in as_list(cfg.model.get('neck'))[:1]:  # the first neck takes the backbone's outputs
            neck['in_channels'] = list(widths)
            changed['model.neck.in_channels'] = list(widths)
        return changed
    for key in ('decode_head', 'auxiliary_head'):
        for i, head in enumerate(as_list(cfg.model.get(key))):
            index = head.get('in_index', -1)
            head['in_channels'] = [widths[j] for j in index] if isinstance(index, (list, tuple)) else widths[index]
            changed[f'model.{key}' + (f'.{i}' if isinstance(cfg.model[key], list) else '') + '.in_channels'] = \
                head['in_channels']
    return changed


def _imports(cfg: Any, package: str) -> None:
    imports = dict(cfg.get('custom_imports') or dict(imports=[], allow_failed_imports=False))
    names = list(imports.get('imports') or [])
    if package not in names:
        names.append(package)
    imports['imports'] = names
    cfg.custom_imports = imports


def lr_scale(cfg: Any, scope: str) -> float:
    """The config's learning rate over the L²ViT recipe's (:data:`L2VIT_RECIPE_LR`)."""
    return float(cfg.optim_wrapper.optimizer.lr) / L2VIT_RECIPE_LR[scope]


def backbone_variants(cfg: Any, names: Sequence[str], scale: Optional[float] = None) -> List[Variant]:
    """One :class:`Variant` per backbone name (checked with :func:`check_backbones`) of the config ``cfg`` (an
    mmengine Config of ours, loaded). ``scale``: the peers' learning-rate factor (default :func:`lr_scale`)."""
    scope = task_of(cfg)
    names = check_backbones(names)
    importlib.import_module('mmdet_l2vit' if scope == 'mmdet' else 'mmseg_l2vit')
    for name in names:  # the peers' registries (what a config's custom_imports would load)
        if name != 'l2vit-t':
            importlib.import_module(LIBRARIES[name][0] + '.models')
    from .benchmark import quiet_logger
    quiet_logger('l2vit_compare')
    scale = lr_scale(cfg, scope) if scale is None else scale
    l2vit = cfg.model.backbone.to_dict()
    from ..models import L2ViT
    named = not isinstance(l2vit.get('arch', 'tiny'), dict)
    l2vit_notes = []
    if named and L2ViT.parse_arch(l2vit.get('arch', 'tiny')) != L2ViT.parse_arch('tiny'):
        l2vit_notes.append(f'the config\'s L2ViT arch {l2vit["arch"]!r} replaced by tiny (this tool compares T sizes)')
        l2vit['arch'] = 'tiny'
    l2vit_arch = L2ViT.parse_arch(l2vit.get('arch', 'tiny'))
    l2vit_module = _build_backbone(l2vit, scope)
    target = _params(l2vit_module)
    l2vit_widths = _out_widths(l2vit_module)
    from ..apis.config_tree import pretrained_checkpoints
    pretrained = any(True for _ in pretrained_checkpoints(l2vit, 'model.backbone'))
    variants = []
    for name in names:
        variant_cfg = copy.deepcopy(cfg)
        settings: Dict[str, Any] = dict(label=LABELS[name], builder=LIBRARIES[name][1], notes=[])
        if name == 'l2vit-t':
            backbone, widths, count = l2vit, l2vit_widths, target
            variant_cfg.model.backbone = l2vit
            settings['notes'] += l2vit_notes
            own = cfg.optim_wrapper
            settings.update(recipe=cfg.filename,
                            optimizer=dict(optimizer=own.optimizer.to_dict(), paramwise_cfg=own.get('paramwise_cfg'),
                                           constructor=own.get('constructor'), source='the config, unchanged'))
        else:
            recipe = _recipe(scope, name)
            backbone, notes = _peer_backbone(name, scope, recipe, l2vit, pretrained)
            settings['notes'] += notes
            if not named:
                backbone, count = match_width(name, backbone, scope, target, l2vit_arch)
                settings['notes'].append(f'narrowed to {count / 1e6:.2f} M backbone parameters, the nearest to the '
                                         f'L2ViT\'s {target / 1e6:.2f} M')
            module = _build_backbone(backbone, scope)
            count, widths = _params(module), _out_widths(module)
            variant_cfg.model.backbone = backbone
            if variant_cfg.model.get('pretrained'):
                variant_cfg.model.pretrained = None
            wrapper, applied = _peer_optimizer(cfg, recipe, scale)
            variant_cfg.optim_wrapper = wrapper
            applied['source'] = PEER_RECIPES[scope][name]
            settings.update(recipe=PEER_RECIPES[scope][name], optimizer=applied)
            _imports(variant_cfg, LIBRARIES[name][0] + '.models')
        settings.update(backbone=_plain(backbone), backbone_params=count, out_channels=widths,
                        in_channels=_rewire_heads(variant_cfg, scope, widths))
        variants.append(Variant(name, variant_cfg, settings))
    return variants


def _plain(value: Any) -> Any:
    """A JSON-able copy (tuples as lists, other objects as text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def build_variant(variant: Variant, with_optimizer: bool = True) -> Tuple[Any, Any]:
    """(model, optim_wrapper or None) of a variant, for one process (SyncBN as BN), no pretrained weights, weights
    initialised after ``torch.manual_seed(0)``: as mmengine's runner builds them."""
    from ..apis.config_tree import drop_pretrained, sync_bn_to_bn
    from .detector import build_detector
    cfg = copy.deepcopy(variant.cfg)
    drop_pretrained(cfg.model)
    sync_bn_to_bn(cfg.model)
    if not with_optimizer:
        cfg.optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.0))
    detector = build_detector(cfg, 'cpu')
    return detector.model, detector.optim_wrapper if with_optimizer else None


# ------------------------------------------------------------------------------------------------------ measuring
def packed_inputs(scope: str, size: Tuple[int, int], batch: int, num_classes: int) -> Dict[str, Any]:
    """A batch as the data loader packs one, with random ground truth: mmdet's (boxes, labels, masks; see
    :func:`l2vit.analysis.detector.packed_batch`) or mmseg's (a label map per image); seeded."""
    import torch
    if scope == 'mmdet':
        from .detector import packed_batch
        return packed_batch(size, batch, num_classes=num_classes)
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    generator = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, *size), generator=generator, dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size, scale_factor=(1., 1.),
                                             flip=False))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, *size), generator=generator))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _num_classes(cfg: Any, scope: str) -> int:
    from ..apis.config_tree import config_dicts
    for _, node in config_dicts(cfg.model, skip=('train_cfg', 'test_cfg', 'data_preprocessor')):
        if isinstance(node.get('num_classes'), int):
            return node['num_classes']
    return 80 if scope == 'mmdet' else 150


class _WholeModelStep:
    """What :func:`l2vit.analysis.benchmark.measure_size` times for a whole model: called (its ``infer`` step) it
    runs ``test_step`` (data preprocessing and prediction), and ``train_step`` (its ``detector-train`` step) runs
    the runner's training iteration (losses, backward, optimizer step); both on the batch given here, whatever
    batch the benchmark passes."""

    def __init__(self, model: Any, optim_wrapper: Any, data: Dict[str, Any]) -> None:
        self.model, self.optim_wrapper, self.data = model, optim_wrapper, data

    def __call__(self, _ignored: Any) -> Any:
        return self.model.test_step(self.data)

    def train_step(self, _ignored: Any) -> Any:
        return self.model.train_step(self.data, self.optim_wrapper)


def measure_speed(variants: Sequence[Variant], size: Tuple[int, int], batch: int, warmup: int, repeats: int,
                  budget: float) -> Dict[str, Dict[str, Any]]:
    """Per variant: ``infer`` (images/s, median and min seconds per batch, peak memory) and ``train`` (seconds per
    iteration, peak memory), every variant interleaved round by round (benchmark's ``measure_size``, CPU)."""
    from mmengine.registry import DefaultScope

    from .benchmark import DETECTOR_MODE, gemm_step, measure_size, select_device
    device = select_device('cpu')
    options = argparse.Namespace(warmup=warmup, repeats=repeats, budget=budget, batch=batch)
    scope = variants[0].cfg.default_scope
    steps = {}
    for variant in variants:
        model, optim_wrapper = build_variant(variant)
        data = packed_inputs(scope, size, batch, _num_classes(variant.cfg, scope))
        steps[variant.name] = _WholeModelStep(model, optim_wrapper, data)
    results: Dict[str, Dict[str, Any]] = {v.name: {} for v in variants}
    gemm = gemm_step(device)
    with DefaultScope.overwrite_default_scope(scope):
        for mode, label in (('infer', 'infer'), (DETECTOR_MODE, 'train')):
            for step in steps.values():
                step.model.train(mode != 'infer')
            print(f'timing: {label} at {size[0]}x{size[1]}, batch {batch} ...', file=sys.stderr, flush=True)
            entries, _ = measure_size(steps, mode, size, options, device, {}, gemm)
            for entry in entries:
                record = dict(status=entry['status'], reason=entry['reason'], times_s=entry['times_s'],
                              median_s=entry['median_s'], min_s=entry['min_s'], memory_bytes=entry['memory_bytes'])
                if label == 'infer' and entry['median_s']:
                    record['images_per_s'] = batch / entry['median_s']
                results[entry['model']][label] = record
    return results


def count_variant(variant: Variant, shape: Tuple[int, int]) -> Dict[str, Any]:
    """Parameters and FLOPs (multiply-adds, :mod:`l2vit.analysis.flops`) of the backbone and the whole model on one
    ``shape`` image, with the counter's notes."""
    import warnings

    import torch

    from .flops import count_model
    model, _ = build_variant(variant, with_optimizer=False)
    model.eval()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        rows, notes, _ = count_model(model, variant.cfg.default_scope, shape, variant.cfg.filename)
    counted = {part: dict(params=params, flops=flops) for part, params, flops in rows}
    return dict(shape=list(shape), backbone=counted['backbone'], model=counted['whole model'], notes=notes)


# ------------------------------------------------------------------------------------------------------ training
def _scaled(value: Any, factor: float) -> Any:
    if isinstance(value, (list, tuple)):
        return [max(1, round(v * factor)) for v in value]
    return max(1, round(value * factor)) if value else value


def iteration_schedule(cfg: Any, iters: int) -> List[Dict[str, Any]]:
    """The config's ``param_scheduler`` as iteration-based schedulers over ``iters`` iterations: positions in
    epochs (``by_epoch=True``) and, in an iteration-based config, positions in iterations, are mapped
    proportionally (epoch e of E -> iteration e/E·iters); an epoch-based config's iteration-unit warm-up keeps its
    length."""
    train_cfg = cfg.get('train_cfg') or {}
    epochs = train_cfg.get('max_epochs')
    config_iters = train_cfg.get('max_iters')
    schedulers = []
    for scheduler in copy.deepcopy(list(cfg.get('param_scheduler') or [])):
        scheduler = dict(scheduler)
        by_epoch = scheduler.pop('by_epoch', True)
        scheduler.pop('convert_to_iter_based', None)
        if by_epoch and epochs:
            factor = iters / epochs
        elif not by_epoch and config_iters:
            factor = iters / config_iters
        else:
            factor = 1.0
        for key in ('begin', 'end', 'milestones', 'T_max'):
            if key in scheduler and scheduler[key] is not None:
                scheduler[key] = _scaled(scheduler[key], factor)
        if scheduler.get('end', 0) and scheduler['end'] >= 10**8:
            scheduler['end'] = iters  # an open end (mmengine's default is 'never')
        if by_epoch and 'begin' not in scheduler:
            scheduler['begin'] = 0
        if by_epoch and 'end' not in scheduler:
            scheduler['end'] = iters
        scheduler['by_epoch'] = False
        schedulers.append(scheduler)
    return schedulers


def train_config(variant: Variant, iters: int, eval_interval: int, seed: int, work_dir: str) -> Any:
    """The variant's config for ``iters`` training iterations (mmengine's IterBasedTrainLoop), evaluated every
    ``eval_interval`` and at the end, with ``seed`` (same data order and initialisation seed for every backbone)."""
    cfg = copy.deepcopy(variant.cfg)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=eval_interval)
    cfg.param_scheduler = iteration_schedule(variant.cfg, iters)
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'  # the progress bar speaks; the losses and metrics are recorded by the hook
    cfg.log_processor = dict(type='LogProcessor', window_size=10, by_epoch=False)
    hooks = cfg.default_hooks
    hooks.logger = dict(type='LoggerHook', interval=max(1, min(50, iters // 10)), log_metric_by_epoch=False)
    hooks.checkpoint = dict(type='CheckpointHook', interval=iters, by_epoch=False, max_keep_ckpts=1)
    if 'visualization' in hooks:
        hooks.visualization.draw = False
    if cfg.get('visualizer') is not None:
        # The libraries name their visualizer 'visualizer', an mmengine singleton: a second runner in this process
        # would get the first one's back, and its scalars would land in the first backbone's work dir.
        cfg.visualizer.name = f'visualizer_{variant.name}'
    cfg.resume, cfg.load_from = False, None
    return cfg


class _Silenced:
    """stdout to nowhere while evaluating (pycocotools prints its tables), restored after."""

    def __enter__(self) -> None:
        self.saved = sys.stdout
        sys.stdout = open(os.devnull, 'w')

    def __exit__(self, *exc: Any) -> None:
        sys.stdout.close()
        sys.stdout = self.saved


def _progress_hook(name: str, iters: int) -> Any:
    """An mmengine hook that moves a progress bar per training iteration, records every iteration's loss and, at
    each evaluation, the metrics and the training time so far (evaluation time excluded)."""
    from mmengine.hooks import Hook
    from mmengine.utils import ProgressBar

    class CompareProgress(Hook):
        priority = 'VERY_LOW'

        def __init__(self) -> None:
            self.losses: List[float] = []
            self.evals: List[Dict[str, Any]] = []
            self.val_seconds = 0.0
            self.silenced = None

        def before_train(self, runner) -> None:
            print(f'training {name}: {iters} iterations', flush=True)
            self.bar = ProgressBar(iters)
            self.start = time.perf_counter()

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            loss = (outputs or {}).get('loss')
            loss = loss.detach() if hasattr(loss, 'detach') else loss
            self.losses.append(float(loss) if loss is not None else float('nan'))
            self.bar.update()

        def before_val_epoch(self, runner) -> None:
            self.val_start = time.perf_counter()
            self.silenced = _Silenced()
            self.silenced.__enter__()

        def after_val_epoch(self, runner, metrics=None) -> None:
            if self.silenced is not None:
                self.silenced.__exit__()
                self.silenced = None
            now = time.perf_counter()
            self.val_seconds += now - self.val_start
            self.evals.append(dict(iter=runner.iter, train_s=now - self.start - self.val_seconds,
                                   eval_s=now - self.val_start, metrics={k: _number(v) for k, v in
                                                                         (metrics or {}).items()}))

        def after_train(self, runner) -> None:
            print(flush=True)

    return CompareProgress()


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def train_variant(variant: Variant, iters: int, eval_interval: int, seed: int, out_dir: str) -> Dict[str, Any]:
    """Train the variant as ``tools/train.py`` would (its config written to ``out_dir/train/<name>/<name>.py`` and
    prepared by :func:`l2vit.apis.run.prepare_train`), and return its curves: the loss of every iteration, and the
    metrics, iteration and training seconds of every evaluation."""
    from ..apis.run import build_runner, prepare_train
    work_dir = osp.join(out_dir, 'train', variant.name)
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, f'{variant.name}.py')  # its name names the runner's logger and visualizer
    train_config(variant, iters, eval_interval, seed, work_dir).dump(path)
    cfg = prepare_train(path, work_dir=work_dir)
    runner = build_runner(cfg)
    hook = _progress_hook(variant.name, iters)
    runner.register_hook(hook)
    start = time.perf_counter()
    runner.train()
    wall = time.perf_counter() - start
    per_iter = [s for s in [e['train_s'] for e in hook.evals]]
    return dict(config=path, iters=iters, eval_interval=eval_interval, seed=seed, losses=hook.losses,
                evals=hook.evals, wall_s=wall, train_s=per_iter[-1] if per_iter else None,
                schedule=_plain(cfg.param_scheduler))


# ------------------------------------------------------------------------------------------------------ the whole
def _save_partial(record: Dict[str, Any], out_dir: str) -> None:
    """``out_dir/compare.json`` as far as measured, so that an interrupted run keeps what it measured (the finished
    run writes it again, whole, with the table and plots)."""
    import json
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'compare.json'), 'w', encoding='utf-8') as f:
        json.dump(dict(record, complete=False), f, indent=1, ensure_ascii=False)


def _machine() -> Dict[str, Any]:
    from .benchmark import machine_info, select_device
    return machine_info(select_device('cpu'))


def compare(config: str, backbones: Sequence[str], train_iters: Optional[int] = None,
            eval_interval: Optional[int] = None, out_dir: str = 'work_dirs/compare_backbones',
            time_size: Optional[Tuple[int, int]] = None, flops_size: Optional[Tuple[int, int]] = None,
            batch: int = 2, warmup: int = 1, repeats: int = 3, budget: float = 120.0, seed: Optional[int] = None,
            lr_factor: Optional[float] = None, cfg_options: Optional[dict] = None,
            argv: Sequence[str] = ()) -> Dict[str, Any]:
    """Everything ``tools/analysis/compare_backbones.py`` measures, as a JSON-able record (``schema``
    :data:`SCHEMA`); :mod:`l2vit.analysis.compare_report` writes it out. Inputs are checked before anything is
    measured: the backbone names and their libraries, the kind of config, and with ``train_iters`` its data."""
    from ..apis.config import check_inputs, read_config
    if train_iters is not None and train_iters < 1:
        raise ToolError(f'--train needs a positive number of iterations, got {train_iters}')
    cfg = read_config(config, cfg_options)
    scope = task_of(cfg)
    check_backbones(backbones)
    if train_iters is not None:
        check_inputs(cfg, ['train_dataloader', 'val_dataloader'], check_pretrained=False)
    start = time.perf_counter()
    variants = backbone_variants(cfg, backbones, lr_factor)
    flops_shape = tuple(flops_size or PAPER_SHAPES[scope])
    time_shape = tuple(time_size or flops_shape)
    record: Dict[str, Any] = dict(
        schema=SCHEMA, command=' '.join(['python', 'tools/analysis/compare_backbones.py', *argv]), config=config,
        task=scope, metric=PRIMARY_METRIC[scope], date=time.strftime('%Y-%m-%d %H:%M:%S %Z'), machine=_machine(),
        settings=dict(flops_shape=list(flops_shape), time_shape=list(time_shape), time_batch=batch, warmup=warmup,
                      repeats=repeats, lr_scale=lr_factor if lr_factor is not None else lr_scale(cfg, scope),
                      train_iters=train_iters, eval_interval=None, seed=None),
        backbones={v.name: dict(v.settings) for v in variants}, timings_s={})
    for variant in variants:
        print(f'counting: {variant.name} at {flops_shape[0]}x{flops_shape[1]} ...', file=sys.stderr, flush=True)
        record['backbones'][variant.name]['complexity'] = count_variant(variant, flops_shape)
    record['timings_s']['count'] = time.perf_counter() - start
    _save_partial(record, out_dir)
    mark = time.perf_counter()
    for name, speed in measure_speed(variants, time_shape, batch, warmup, repeats, budget).items():
        record['backbones'][name].update(speed)
    record['timings_s']['speed'] = time.perf_counter() - mark
    _save_partial(record, out_dir)
    if train_iters is not None:
        interval = eval_interval or max(1, train_iters // 2)
        seed = seed if seed is not None else int((cfg.get('randomness') or {}).get('seed') or 0)
        record['settings'].update(eval_interval=interval, seed=seed)
        mark = time.perf_counter()
        for variant in variants:
            record['backbones'][variant.name]['training'] = train_variant(variant, train_iters, interval, seed,
                                                                          out_dir)
            _save_partial(record, out_dir)
        record['timings_s']['train'] = time.perf_counter() - mark
    record['timings_s']['total'] = time.perf_counter() - start
    record['complete'] = True
    return record
