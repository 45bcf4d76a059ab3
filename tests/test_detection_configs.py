"""Every mmdet config under ``configs/`` trains and predicts with a small L2ViT, and the COCO recipes match the spec.

The configs are found by glob and selected by their ``default_scope``, so configs added later are covered. Each
detector is built once per config with the backbone shrunk (and the FPN's ``in_channels`` following), then runs a
``loss`` and a ``predict`` step on mmdet's demo inputs through its own data preprocessor. The recipe tests compare
the loaded configs with the authors' table (docs: /work/shared/reference/L2VIT_SPEC.md, "Training recipes").
"""
import copy
import inspect
import math
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmdet')
from mmengine.config import Config  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

from helpers import (CONFIG_DIR, FOREIGN_BACKBONE_KEYS, RELEASED_WEIGHTS, SMALL_ARCH, config_differences,  # noqa: E402
                     configs_of_scope, load_config)
from l2vit import L2ViT  # noqa: E402

IMAGE_SHAPES = [(3, 128, 160), (3, 96, 128)]  # two sizes, so batching pads


# The authors' COCO table: drop path per (schedule, size); epochs and lr milestones per schedule.
DROP_PATH = {('1x', 't'): 0.1, ('1x', 's'): 0.1, ('1x', 'b'): 0.2,
             ('3x', 't'): 0.2, ('3x', 's'): 0.2, ('3x', 'b'): 0.3}
SCHEDULE = {'1x': (12, [8, 11]), '3x': (36, [27, 33])}
ARCH_NAMES = {'t': 'tiny', 's': 'small', 'b': 'base'}
# Cascade Mask R-CNN follows mmdet's ConvNeXt 3x recipe (its warm-up and lr) with our per-block layer decay,
# chosen in configs/cascade_rcnn/cascade-mask-rcnn_l2vit-t_*.py to give ConvNeXt-T's lr profile.
LAYER_DECAY = {'t': 0.85, 's': 0.92, 'b': 0.92}
RECIPE_NAME = re.compile(r'^(?P<detector>mask-rcnn|cascade-mask-rcnn|retinanet)_l2vit-(?P<size>[tsb])_fpn_'
                         r'(?:4conv1fc-giou_)?(?P<amp>amp-)?(?P<strategy>fsdp-)?(?P<schedule>1x|ms-crop-3x)_coco\.py$')


# ---------------------------------------------------------------- finding and loading the configs
DET_CONFIGS = configs_of_scope('mmdet')
IDS = [str(p.relative_to(CONFIG_DIR)) for p in DET_CONFIGS]
RECIPES = [p for p in DET_CONFIGS if RECIPE_NAME.match(p.name)]
RECIPE_IDS = [str(p.relative_to(CONFIG_DIR)) for p in RECIPES]


def _recipe(path: Path) -> dict:
    match = RECIPE_NAME.match(path.name).groupdict()
    match['schedule'] = '3x' if match['schedule'].endswith('3x') else '1x'
    return match


def _expected_in_channels(backbone_cfg: dict) -> list:
    widths = L2ViT.parse_arch(backbone_cfg.get('arch', 'tiny'))['embed_dims']
    out_indices = backbone_cfg.get('out_indices', (0, 1, 2, 3))
    return [widths[i % len(widths)] for i in sorted(out_indices)]


def _reader(model_cfg: dict) -> dict:
    """What reads the backbone's outputs: the neck, or Mask2Former's panoptic_head (no neck)."""
    return model_cfg['neck'] if model_cfg.get('neck') is not None else model_cfg['panoptic_head']


# ---------------------------------------------------------------- building a small detector
def _small_model_cfg(cfg: Config) -> dict:
    """The config's model with a small L2ViT, no pretrained weights, BN, and few proposals (fast on a CPU)."""
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)  # what the Runner does
    backbone = model_cfg['backbone']
    out_indices = sorted(backbone.get('out_indices', (0, 1, 2, 3)))
    backbone.update(arch=copy.deepcopy(SMALL_ARCH), init_cfg=None, norm_cfg=dict(type='BN', requires_grad=True))
    _reader(model_cfg)['in_channels'] = [SMALL_ARCH['embed_dims'][i] for i in out_indices]

    train_cfg, test_cfg = model_cfg.get('train_cfg') or {}, model_cfg.get('test_cfg') or {}
    head = model_cfg.get('panoptic_head')
    if head is not None:  # Mask2Former: one encoder and one decoder layer, few queries and points
        head.update(num_queries=10)
        head['pixel_decoder']['encoder']['num_layers'] = head['transformer_decoder']['num_layers'] = 1
        train_cfg['num_points'] = 1024
        test_cfg['max_per_image'] = 5
    if 'rpn_proposal' in train_cfg:
        train_cfg['rpn_proposal'].update(nms_pre=200, max_per_img=50)
    rcnn_train = train_cfg.get('rcnn')
    for stage in (rcnn_train if isinstance(rcnn_train, list) else [rcnn_train] if rcnn_train else []):
        stage['sampler']['num'] = 32
    if 'rpn' in test_cfg:
        test_cfg['rpn'].update(nms_pre=100, max_per_img=20)
    if 'num_queries' in model_cfg:  # DETR-style (DINO): top-k over the encoder's tokens of a small image
        model_cfg['num_queries'] = 20
    # score_thr 0: even an untrained head returns boxes, so the mask head runs in predict mode too.
    head_test_cfg = test_cfg['rcnn'] if 'rcnn' in test_cfg else test_cfg
    head_test_cfg.update(score_thr=0.0, max_per_img=5)
    if 'nms_pre' in head_test_cfg:  # single-stage heads
        head_test_cfg['nms_pre'] = 100
    return model_cfg


def _num_classes(model_cfg: dict) -> int:
    if 'panoptic_head' in model_cfg:
        return model_cfg['panoptic_head']['num_things_classes'] + model_cfg['panoptic_head']['num_stuff_classes']
    head = model_cfg['roi_head']['bbox_head'] if 'roi_head' in model_cfg else model_cfg['bbox_head']
    return (head[0] if isinstance(head, list) else head)['num_classes']


def _has_masks(model_cfg: dict) -> bool:
    return model_cfg.get('roi_head', {}).get('mask_head') is not None or 'panoptic_head' in model_cfg


def _leaf_tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaf_tensors(item)


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize('path', DET_CONFIGS, ids=IDS)
def test_backbone_is_clean_l2vit(path):
    """`_delete_=True` worked (no ResNet/Swin/ConvNeXt keys), every key is an L2ViT argument, and the FPN reads
    exactly the widths of the stages in out_indices."""
    from mmdet.registry import MODELS

    import mmdet_l2vit  # noqa: F401
    cfg = load_config(path)
    backbone = cfg.model.backbone.to_dict()
    assert backbone['type'] in ('L2ViT', 'mmdet.L2ViT'), f'{path.name}: backbone type {backbone["type"]}'
    leaked = FOREIGN_BACKBONE_KEYS & backbone.keys()
    assert not leaked, f'{path.name}: backbone keys {sorted(leaked)} leaked from the base config (_delete_=True?)'
    accepted = set(inspect.signature(L2ViT.__init__).parameters) - {'self'}
    unknown = backbone.keys() - accepted - {'type'}
    assert not unknown, f'{path.name}: L2ViT does not take {sorted(unknown)}'
    assert list(_reader(cfg.model).in_channels) == _expected_in_channels(backbone), (
        f'{path.name}: neck in_channels {_reader(cfg.model).in_channels} != widths of out_indices '
        f'{backbone.get("out_indices")} for arch {backbone.get("arch")!r}')

    small = dict(backbone, arch=copy.deepcopy(SMALL_ARCH), init_cfg=None, norm_cfg=dict(type='BN'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        built = MODELS.build(small)
    assert isinstance(built, L2ViT)


@pytest.mark.parametrize('path', DET_CONFIGS, ids=IDS)
@pytest.mark.filterwarnings('ignore:To copy construct from a tensor:UserWarning')  # inside mmdet's FCNMaskHead
def test_loss_and_predict(path):
    """Loss mode gives finite scalar losses (mask losses for mask models); predict mode gives DetDataSamples with
    boxes (and masks at the original image size); the config's optimizer wrapper builds for the model."""
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.testing import demo_mm_inputs
    from mmengine.optim import build_optim_wrapper

    import mmdet_l2vit  # noqa: F401

    cfg = load_config(path)
    model_cfg = _small_model_cfg(cfg)
    with_mask = _has_masks(model_cfg)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(model_cfg)
        # As the Runner does: DETR-style detectors leave level_embed uninitialised memory until init_weights.
        model.init_weights()
        assert isinstance(model.backbone, L2ViT)
        data = demo_mm_inputs(batch_size=len(IMAGE_SHAPES), image_shapes=IMAGE_SHAPES,
                              num_classes=_num_classes(model_cfg), with_mask=with_mask,
                              with_semantic=(model_cfg.get('panoptic_head') or {}).get('num_stuff_classes', 0) > 0)

        model.train()
        losses = model(**model.data_preprocessor(copy.deepcopy(data), True), mode='loss')
        loss_keys = [k for k in losses if 'loss' in k]
        assert loss_keys, f'{path.name}: no losses in {sorted(losses)}'
        for key in loss_keys:
            tensors = list(_leaf_tensors(losses[key]))
            assert tensors, f'{path.name}: {key} holds no tensor'
            for tensor in tensors:
                # one value each (mmdet's mask loss comes shaped (1,), the others ())
                assert tensor.numel() == 1 and torch.isfinite(tensor).all(), f'{path.name}: {key} = {tensor}'
        total, _ = model.parse_losses(losses)
        assert torch.isfinite(total) and total.requires_grad
        if with_mask and 'roi_head' in model_cfg:
            num_stages = getattr(model.roi_head, 'num_stages', 1)
            mask_keys = [k for k in loss_keys if k.endswith('loss_mask')]
            assert len(mask_keys) == num_stages, f'{path.name}: mask losses {mask_keys}, {num_stages} stage(s)'

        model.eval()
        with torch.no_grad():
            results = model(**model.data_preprocessor(copy.deepcopy(data), False), mode='predict')
        assert len(results) == len(IMAGE_SHAPES)
        for result, shape in zip(results, IMAGE_SHAPES):
            assert isinstance(result, DetDataSample) and 'pred_instances' in result
            pred = result.pred_instances
            assert len(pred) > 0, f'{path.name}: no predictions with score_thr=0'
            assert pred.bboxes.shape == (len(pred), 4) and torch.isfinite(pred.bboxes).all()
            assert pred.scores.shape == pred.labels.shape == (len(pred), )
            if with_mask:
                assert tuple(pred.masks.shape) == (len(pred), *shape[1:]), f'{path.name}: masks {pred.masks.shape}'
            else:
                assert 'masks' not in pred

        optim_cfg = copy.deepcopy(cfg.optim_wrapper)
        if optim_cfg.get('type') == 'AmpOptimWrapper' and not torch.cuda.is_available():
            optim_cfg.type = 'OptimWrapper'  # mmengine's AmpOptimWrapper refuses to build without a GPU
            optim_cfg.pop('loss_scale', None)
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
    lrs = [group['lr'] for group in optim_wrapper.optimizer.param_groups]
    assert math.isclose(max(lrs), cfg.optim_wrapper.optimizer.lr)


@pytest.mark.parametrize('path', RECIPES, ids=RECIPE_IDS)
def test_recipe_matches_spec(path):
    """Drop path, schedule, warm-up, optimizer, weights and augmentation of the COCO recipes."""
    cfg, recipe = load_config(path), _recipe(path)
    detector, size, schedule = recipe['detector'], recipe['size'], recipe['schedule']
    backbone = cfg.model.backbone

    assert backbone.arch == ARCH_NAMES[size]
    assert backbone.drop_path_rate == DROP_PATH[(schedule, size)]
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=RELEASED_WEIGHTS[size], prefix='backbone.')
    assert backbone.norm_cfg == dict(type='SyncBN', requires_grad=True)

    epochs, milestones = SCHEDULE[schedule]
    assert cfg.train_cfg.max_epochs == epochs
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.by_epoch, warmup.begin, warmup.start_factor) == ('LinearLR', False, 0, 0.001)
    assert warmup.end == (1000 if detector == 'cascade-mask-rcnn' else 500)
    assert (steps.type, steps.by_epoch, steps.begin, steps.end) == ('MultiStepLR', True, 0, epochs)
    assert list(steps.milestones) == milestones and steps.gamma == 0.1

    optim = cfg.optim_wrapper
    assert optim.type == ('AmpOptimWrapper' if recipe['amp'] else 'OptimWrapper')
    assert optim.get('loss_scale') == ('dynamic' if recipe['amp'] else None)
    assert optim.optimizer.type == 'AdamW' and optim.optimizer.weight_decay == 0.05
    if detector == 'cascade-mask-rcnn':
        assert optim.optimizer.lr == 2e-4
        assert optim.constructor == 'LayerDecayOptimWrapperConstructor'
        assert optim.paramwise_cfg == dict(layer_decay_rate=LAYER_DECAY[size])
    else:
        assert optim.optimizer.lr == 1e-4
        assert 'constructor' not in optim and 'paramwise_cfg' not in optim  # the authors' plain AdamW
    assert cfg.train_dataloader.batch_size == 2 and cfg.auto_scale_lr.base_batch_size == 16

    pipeline = cfg.train_dataloader.dataset.pipeline
    load_ann = next(t for t in pipeline if t.type == 'LoadAnnotations')
    assert load_ann.get('with_bbox') and bool(load_ann.get('with_mask')) == (detector != 'retinanet')
    choice = next(t for t in pipeline if t.type == 'RandomChoice')  # DETR-style: multi-scale, or resize-crop-resize
    crop = [t for branch in choice.transforms for t in branch if t.type == 'RandomCrop']
    assert len(crop) == 1 and tuple(crop[0].crop_size) == (384, 600)

    if detector == 'retinanet':
        assert tuple(backbone.out_indices) == (1, 2, 3)
        neck = cfg.model.neck
        assert (neck.start_level, neck.add_extra_convs, neck.num_outs) == (0, 'on_input', 5)
    else:
        assert tuple(backbone.out_indices) == (0, 1, 2, 3)
    if detector == 'cascade-mask-rcnn':
        heads = cfg.model.roi_head.bbox_head
        assert len(heads) == 3
        for head in heads:
            assert (head.type, head.num_shared_convs, head.num_shared_fcs) == ('ConvFCBBoxHead', 4, 1)
            assert head.loss_bbox.type == 'GIoULoss' and head.reg_decoded_bbox


SIZE_VARIANTS = [p for p in RECIPES if _recipe(p)['size'] != 't' and not _recipe(p)['strategy']]


@pytest.mark.parametrize('path', SIZE_VARIANTS, ids=[str(p.relative_to(CONFIG_DIR)) for p in SIZE_VARIANTS])
def test_size_variant_differs_from_tiny_only_in_backbone(path):
    """S and B are their T config with another arch, drop path, weights and FPN widths (and, for Cascade, the
    layer decay that the depth asks for)."""
    parent = path.with_name(re.sub(r'_l2vit-[sb]_', '_l2vit-t_', path.name))
    assert parent.is_file(), f'{path.name}: no T config {parent.name}'
    assert re.search(rf'''_base_\s*=\s*\[?\s*['"]\./{re.escape(parent.name)}['"]''', path.read_text()), (
        f'{path.name} should inherit {parent.name}')
    allowed = {'pretrained', 'model.backbone.arch', 'model.backbone.drop_path_rate',
               'model.backbone.init_cfg.checkpoint', 'model.neck.in_channels'}
    if _recipe(path)['detector'] == 'cascade-mask-rcnn':
        allowed.add('optim_wrapper.paramwise_cfg.layer_decay_rate')
    extra = config_differences(load_config(path), load_config(parent)) - allowed
    assert not extra, f'{path.name} differs from {parent.name} in {sorted(extra)}'


AMP_VARIANTS = [p for p in RECIPES if _recipe(p)['amp']]


@pytest.mark.parametrize('path', AMP_VARIANTS, ids=[str(p.relative_to(CONFIG_DIR)) for p in AMP_VARIANTS])
def test_amp_variant_differs_only_in_precision(path):
    fp32 = path.with_name(path.name.replace('amp-ms-crop', 'ms-crop'))
    assert fp32.is_file(), f'{path.name}: no fp32 config {fp32.name}'
    extra = config_differences(load_config(path), load_config(fp32))
    extra -= {'optim_wrapper.type', 'optim_wrapper.loss_scale'}
    assert not extra, f'{path.name} differs from {fp32.name} in {sorted(extra)}'


STRATEGY_VARIANTS = [p for p in RECIPES if _recipe(p)['strategy']]


@pytest.mark.parametrize('path', STRATEGY_VARIANTS, ids=[str(p.relative_to(CONFIG_DIR)) for p in STRATEGY_VARIANTS])
def test_strategy_variant_differs_only_in_runner(path):
    """A sharded (FSDP) config is its DDP recipe run by mmengine's FlexibleRunner with FSDPStrategy: same model,
    data and schedule."""
    ddp = path.with_name(path.name.replace('fsdp-', ''))
    assert ddp.is_file(), f'{path.name}: no DDP config {ddp.name}'
    cfg = load_config(path)
    extra = {k for k in config_differences(cfg, load_config(ddp))
             if k != 'runner_type' and k.split('.')[0] != 'strategy'}
    assert not extra, f'{path.name} differs from {ddp.name} in {sorted(extra)}'
    assert cfg.runner_type == 'FlexibleRunner' and cfg.strategy.type == 'FSDPStrategy'


def test_every_coco_config_follows_the_naming():
    """Configs outside demo/ and the top-level entry points carry the recipe in their name, so the tests above
    see them (DINO and Mask2Former, named as mmdet names them, have tests of their own: test_dino.py and
    test_mask2former.py, over every config of their folders)."""
    unnamed = [str(p.relative_to(CONFIG_DIR)) for p in DET_CONFIGS
               if p.parent != CONFIG_DIR and p.parent.name not in ('demo', 'dino', 'mask2former')
               and not RECIPE_NAME.match(p.name)]
    assert not unnamed, f'configs the recipe tests cannot read: {unnamed}'
    detectors = {_recipe(p)['detector'] for p in RECIPES}
    assert detectors == {'mask-rcnn', 'cascade-mask-rcnn', 'retinanet'}
