"""Every config under ``configs/`` loads, and its model builds in its own library and runs with a small L2ViT.

Configs added later are picked up by the glob. The backbone is shrunk to a small arch (and the layers that read its
channels follow), so the test checks the wiring of each config, not the size of the released models.
"""
import copy
import importlib
from pathlib import Path

import pytest
import torch

from helpers import CONFIG_DIR, ROOT, SMALL_ARCH, config_paths, packages_needed, run_main
from l2vit.apis import drop_pretrained

HEAD_KEYS = ('head', 'decode_head', 'auxiliary_head', 'panoptic_head')  # panoptic_head: mmdet's Mask2Former
CONFIGS = config_paths()


def load(path: Path):
    """Load ``path`` with mmengine after skipping the test when a library it needs is missing."""
    for package in sorted(packages_needed(path)):
        pytest.importorskip(package)
    from mmengine.config import Config
    cfg = Config.fromfile(str(path))  # also imports the config's custom_imports
    scope = cfg.get('default_scope')
    assert scope in ('mmdet', 'mmseg', 'mmpretrain'), f'{path.name}: default_scope is {scope!r}'
    pytest.importorskip(scope)
    return cfg


def shrink(model_cfg, name: str) -> None:
    """Give the model a small L2ViT and the layers that read the backbone's outputs matching in_channels.

    Every in_channels value there must be one of the original arch's stage widths: anything else is a config bug
    (e.g. a head sized for another arch), reported here.
    """
    from l2vit import L2ViT
    backbone = model_cfg['backbone']
    assert 'L2ViT' in backbone['type'], f'{name}: backbone is {backbone["type"]}, expected L2ViT'
    arch = backbone.get('arch', 'tiny')
    original = L2ViT.parse_arch(arch)['embed_dims']
    to_small = dict(zip(original, SMALL_ARCH['embed_dims']))
    backbone['arch'] = copy.deepcopy(SMALL_ARCH)
    backbone['init_cfg'] = None
    backbone.pop('pretrained', None)

    def remap(module_cfg, key):
        if not isinstance(module_cfg, dict) or 'in_channels' not in module_cfg:
            return False
        value = module_cfg['in_channels']
        widths = list(value) if isinstance(value, (list, tuple)) else [value]
        bad = [w for w in widths if w not in to_small]
        assert not bad, f'{name}: {key}.in_channels={value} does not match the widths {original} of arch {arch!r}'
        small = [to_small[w] for w in widths]
        module_cfg['in_channels'] = small if isinstance(value, (list, tuple)) else small[0]
        return True

    rpn_test_cfg = (model_cfg.get('test_cfg') or {}).get('rpn')
    if rpn_test_cfg is not None and 'max_per_img' in rpn_test_cfg:
        rpn_test_cfg['max_per_img'] = 20  # a few proposals keep cascade mask heads fast on the CPU
    if 'num_queries' in model_cfg:  # DETR-style (DINO): top-k over the encoder's tokens of a small image
        model_cfg['num_queries'] = 20
    neck = model_cfg.get('neck')
    first_neck = neck[0] if isinstance(neck, list) else neck
    if not remap(first_neck, 'neck'):  # no neck, or one without in_channels (GlobalAveragePooling)
        for key in HEAD_KEYS:
            remap(model_cfg.get(key), key)


def _tensors(output):
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, (list, tuple)):
        for item in output:
            yield from _tensors(item)
    elif isinstance(output, dict):
        for item in output.values():
            yield from _tensors(item)


def _tensor_mode_inputs(scope: str):
    """A small batch and the data samples the library's 'tensor' mode needs."""
    if scope == 'mmdet':  # two-stage detectors read image shapes from the samples to make proposals
        from mmdet.structures import DetDataSample
        size = (128, 128)
        sample = DetDataSample(
            metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size, batch_input_shape=size,
                          scale_factor=(1., 1.)))
        return torch.rand(1, 3, *size), [sample]
    return torch.rand(1, 3, 64, 64), None


@pytest.mark.parametrize('path', CONFIGS, ids=[str(p.relative_to(CONFIG_DIR)) for p in CONFIGS])
def test_config_builds_and_runs(path):
    cfg = load(path)
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    if 'model' not in cfg:
        pytest.skip(f'{name} defines no model')
    scope = cfg.default_scope
    model_cfg = copy.deepcopy(cfg.model)
    backbone_type = model_cfg['backbone']['type']
    owner = backbone_type.split('.')[0] if '.' in backbone_type else scope
    imports = list(cfg.get('custom_imports', {}).get('imports', []))
    # Checked explicitly: another test may have imported the package already, hiding a missing custom_imports.
    assert f'{owner}_l2vit' in imports, (f'{name}: backbone type {backbone_type!r} needs '
                                         f"custom_imports=dict(imports=['{owner}_l2vit'])")
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)  # what the Runner does
    shrink(model_cfg, name)
    drop_pretrained(model_cfg)

    from mmengine.registry import DefaultScope
    registry = importlib.import_module(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.MODELS.build(model_cfg)
        model.init_weights()
    model.eval()
    inputs, data_samples = _tensor_mode_inputs(scope)
    mode = 'tensor'
    if scope == 'mmseg' and str(model_cfg['decode_head']['type']).endswith('Mask2FormerHead'):
        # mmseg's Mask2FormerHead has no tensor mode (its forward needs the data samples): its logits, predicted.
        from mmseg.structures import SegDataSample
        data_samples = [SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))]
        mode = 'predict'
    with torch.no_grad():
        output = model(inputs, data_samples, mode=mode)
    if mode == 'predict':
        output = [sample.seg_logits.data for sample in output]
    tensors = list(_tensors(output))
    assert tensors, f'{name}: tensor-mode forward returned no tensors ({type(output).__name__})'
    for tensor in tensors:
        assert torch.isfinite(tensor).all(), f'{name}: non-finite values in the tensor-mode output'
    if scope == 'mmpretrain':
        assert tensors[0].shape == (1, cfg.model.head.num_classes)


# ---------------------------------------------------------------- the entry points around the configs
@pytest.mark.parametrize('tool', ['train', 'test'])
def test_tool_help(tool, tmp_path):
    """The tools run from any directory (a fresh interpreter per script: tests/test_tools_help.py)."""
    result = run_main(ROOT / 'tools' / f'{tool}.py', '--help', cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    assert 'usage:' in result.stdout and '--cfg-options' in result.stdout and '--launcher' in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message shown on machines without CUDA')
def test_train_amp_without_gpu_fails_clearly(tmp_path):
    config = CONFIG_DIR / 'imagenet' / 'l2vit-t_in1k.py'
    for package in sorted(packages_needed(config)):
        pytest.importorskip(package)
    result = run_main(ROOT / 'tools' / 'train.py', config, '--amp', '--work-dir', tmp_path / 'w', check=False)
    assert result.returncode != 0
    assert '--amp needs a CUDA GPU' in result.stderr
    assert 'Traceback' not in result.stderr
