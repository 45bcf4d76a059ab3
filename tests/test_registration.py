"""The one L2ViT class and the layer-decay constructor, registered in mmdet, mmseg and mmpretrain."""
import importlib

import pytest
import torch

import l2vit
from l2vit.checkpoint import STEM_KEY

LIBRARIES = ('mmdet', 'mmseg', 'mmpretrain')
SMALL_ARCH = dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])


def registry_of(library: str):
    """``<library>.registry`` after importing ``<library>_l2vit`` (skips when the library is not installed)."""
    pytest.importorskip(library)
    importlib.import_module(f'{library}_l2vit')
    return importlib.import_module(f'{library}.registry')


@pytest.fixture(scope='module', autouse=True)
def all_plugins():
    """Register into every installed library first: registering in one must not disturb the others."""
    for library in LIBRARIES:
        try:
            importlib.import_module(library)
        except ImportError:
            continue
        importlib.import_module(f'{library}_l2vit')


def scope(name: str):
    from mmengine.registry import DefaultScope
    return DefaultScope.overwrite_default_scope(name)


@pytest.mark.parametrize('library', LIBRARIES)
def test_same_class_in_every_library(library):
    registry = registry_of(library)
    assert registry.MODELS.get('L2ViT') is l2vit.L2ViT
    constructor = registry.OPTIM_WRAPPER_CONSTRUCTORS.get('LayerDecayOptimWrapperConstructor')
    assert constructor is l2vit.LayerDecayOptimWrapperConstructor


@pytest.mark.parametrize('library', LIBRARIES)
def test_build_under_library_scope(library):
    registry = registry_of(library)
    from mmengine.registry import DefaultScope
    with scope(library):
        assert DefaultScope.get_current_instance().scope_name == library
        model = registry.MODELS.build(dict(type='L2ViT', arch='t'))
    assert type(model) is l2vit.L2ViT
    assert model.depths == [2, 2, 6, 2] and model.embed_dims == [96, 192, 384, 768]


def test_scoped_name_from_another_library():
    """``type='mmpretrain.L2ViT'`` inside an mmdet config (the mmdet ConvNeXt-V2 pattern)."""
    mmdet_registry = registry_of('mmdet')
    registry_of('mmpretrain')
    with scope('mmdet'):
        model = mmdet_registry.MODELS.build(dict(type='mmpretrain.L2ViT', arch=SMALL_ARCH, out_indices=(3, )))
    assert type(model) is l2vit.L2ViT
    with torch.no_grad():
        out = model.eval()(torch.rand(1, 3, 64, 64))
    assert len(out) == 1 and out[0].shape == (1, 128, 2, 2)


# ---------------------------------------------------------------- layer-wise learning-rate decay
def tiny_classifier():
    registry = registry_of('mmpretrain')
    with scope('mmpretrain'):
        return registry.MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(type='L2ViT', arch=SMALL_ARCH, out_indices=(3, )),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=10, in_channels=128)))


def build_optimizer(model, paramwise_cfg, lr=1e-3, weight_decay=0.05):
    registry = registry_of('mmpretrain')
    cfg = dict(
        type='LayerDecayOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=lr, weight_decay=weight_decay)))
    if paramwise_cfg is not None:
        cfg['paramwise_cfg'] = paramwise_cfg
    with scope('mmpretrain'):
        constructor = registry.OPTIM_WRAPPER_CONSTRUCTORS.build(cfg)
        return constructor(model).optimizer


def test_layer_decay_groups():
    model = tiny_classifier()
    lr, rate = 1e-3, 0.5
    optimizer = build_optimizer(model, dict(layer_decay_rate=rate), lr=lr)
    group_of = {}
    for group in optimizer.param_groups:
        for param in group['params']:
            assert id(param) not in group_of, 'a parameter is in two groups'
            group_of[id(param)] = group
    named = dict(model.named_parameters())
    assert set(group_of) == {id(p) for p in named.values()}, 'every parameter is optimised exactly once'

    def lr_of(name):
        return group_of[id(named[name])]['lr']

    num_layers = sum(SMALL_ARCH['depths']) + 2
    stem = 'backbone.' + STEM_KEY
    assert lr_of(stem) == pytest.approx(lr * rate**(num_layers - 1))
    assert lr_of(stem) == pytest.approx(min(g['lr'] for g in optimizer.param_groups))
    assert lr_of('head.fc.weight') == pytest.approx(lr)
    assert lr_of('head.fc.bias') == pytest.approx(lr)
    # deeper blocks learn faster
    block_lrs = [lr_of(f'backbone.stages.{i}.{j}.mlp.fc1.weight') for i in range(4) for j in range(2)]
    assert block_lrs == sorted(block_lrs) and len(set(block_lrs)) == len(block_lrs)

    for name, param in named.items():
        decay = group_of[id(param)]['weight_decay']
        if param.ndim == 1 or name.endswith('.bias'):  # biases and norm weights (the authors' rule)
            assert decay == 0, f'{name} should get no weight decay'
        else:
            assert decay == pytest.approx(0.05), f'{name} should get the base weight decay'


@pytest.mark.parametrize('paramwise_cfg', [dict(no_decay_names=['temperature']), None],
                         ids=['without_rate', 'without_paramwise_cfg'])
def test_layer_decay_needs_rate(paramwise_cfg):
    model = tiny_classifier()
    with pytest.raises(ValueError, match='layer_decay_rate'):
        build_optimizer(model, paramwise_cfg)
