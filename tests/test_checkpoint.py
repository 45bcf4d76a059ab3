"""The authors' checkpoints: safe loading, conversion, and loading into the backbone and an mmpretrain classifier."""
import argparse
import copy

import pytest
import torch
from mmengine.runner import load_checkpoint

from helpers import randomize_, run_main
from l2vit import CheckpointError, L2ViT, convert_official, load_checkpoint_file
from reference_l2vit import ReferenceL2ViT

ARCH = dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
NUM_CLASSES = 10


def authors_checkpoint(tmp_path, seed: int = 0):
    """A file laid out like the authors' ImageNet release, from the reference model."""
    model = randomize_(ReferenceL2ViT(num_classes=NUM_CLASSES, **ARCH), seed)
    ema = randomize_(copy.deepcopy(model), seed + 1)
    scratch = copy.deepcopy(model)  # a real optimizer state, as the authors' trainer saves it
    optimizer = torch.optim.AdamW(scratch.parameters(), lr=4e-3)
    scratch(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    ckpt = dict(model=model.state_dict(), model_ema=ema.state_dict(), optimizer=optimizer.state_dict(), epoch=299,
                scaler={'scale': 65536.0, 'growth_factor': 2.0}, args=argparse.Namespace(
                    model='L2ViT_Tiny', lr=4e-3, drop_path=0.1, input_size=224, model_ema=True, data_path='/data'))
    path = tmp_path / 'L2ViT-Test-checkpoint-best-ema.pth'
    torch.save(ckpt, path)
    return path, model.eval(), ema.eval()


def build_classifier():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import mmpretrain_l2vit  # noqa: F401
    init_default_scope('mmpretrain')
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='L2ViT', arch=ARCH, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=NUM_CLASSES, in_channels=ARCH['embed_dims'][-1])))


def convert_with_tool(src, dst, *extra):
    return run_main('tools/convert_official.py', str(src), str(dst), *extra).stdout


@pytest.mark.parametrize('use_ema', [False, True])
def test_convert_then_classifier_logits_equal_authors(tmp_path, use_ema):
    src, model, ema = authors_checkpoint(tmp_path)
    dst = tmp_path / 'converted.pth'
    out = convert_with_tool(src, dst, *(['--use-ema'] if use_ema else []))
    assert f"from '{'model_ema' if use_ema else 'model'}'" in out
    assert "dropped 'optimizer'" in out and "dropped 'args'" in out
    expected_model = ema if use_ema else model

    converted = torch.load(dst, weights_only=True)
    assert set(converted) == {'meta', 'state_dict'}
    assert converted['meta']['use_ema'] is use_ema
    assert 'backbone.norm3.weight' in converted['state_dict'] and 'head.fc.weight' in converted['state_dict']
    assert not any(k.startswith('backbone.norm.') or k.startswith('head.weight') for k in converted['state_dict'])

    classifier = build_classifier()
    result = load_checkpoint(classifier, str(dst), strict=True)  # raises on any missing/unexpected key
    assert result is not None
    classifier.double().eval()
    model.double()
    ema.double()
    x = torch.randn(2, 3, 45, 61, dtype=torch.float64)
    with torch.no_grad():
        logits = classifier(x, mode='tensor')
        expected = expected_model(x)
        other = (model if use_ema else ema)(x)
    torch.testing.assert_close(logits, expected, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(logits, other), 'the EMA choice must change the weights'


def test_converted_file_initialises_backbone_strictly(tmp_path):
    src, model, _ = authors_checkpoint(tmp_path)
    dst = tmp_path / 'converted.pth'
    convert_with_tool(src, dst)
    backbone = L2ViT(arch=ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.'))
    fresh_norm0 = backbone.norm0.weight.detach().clone()
    backbone.init_weights()
    state = backbone.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith('head.'):
            continue
        ours = state['norm3.' + key[5:]] if key.startswith('norm.') else state[key]
        torch.testing.assert_close(ours, value, rtol=0, atol=0)
    # norm0-2 are not in ImageNet weights: they keep their initialisation (reported, not an error).
    torch.testing.assert_close(backbone.norm0.weight, torch.ones_like(fresh_norm0))


def test_backbone_init_cfg_accepts_the_authors_file_as_released(tmp_path):
    src, model, _ = authors_checkpoint(tmp_path)
    backbone = L2ViT(arch=ARCH, out_indices=(3, ), init_cfg=dict(type='Pretrained', checkpoint=str(src)))
    backbone.init_weights()
    backbone.double().eval()
    model.double()
    x = torch.randn(1, 3, 37, 50, dtype=torch.float64)
    with torch.no_grad():
        ours = backbone(x)[0].mean(dim=(2, 3))
        expected = model.forward_features(x)[-1]
        expected = model.norm(expected.flatten(2).transpose(1, 2)).mean(dim=1)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)


def test_mmdet2_checkpoint_converts_and_loads(tmp_path):
    backbone = randomize_(L2ViT(arch=ARCH), 3)
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['neck.lateral_convs.0.conv.weight'] = torch.randn(8, 16, 1, 1)
    src = tmp_path / 'mask_rcnn_l2vit.pth'
    torch.save(dict(meta=dict(epoch=12, mmdet_version='2.25.0'), state_dict=state, optimizer={}), src)
    dst = tmp_path / 'converted.pth'
    out = convert_with_tool(src, dst)
    assert 'kept every key unchanged' in out and "dropped 'optimizer'" in out
    assert set(torch.load(dst, weights_only=True)['state_dict']) == set(state)
    loaded = L2ViT(arch=ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.'))
    loaded.init_weights()
    for key, value in backbone.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_use_ema_on_a_file_without_ema_is_an_error(tmp_path):
    src, _, _ = authors_checkpoint(tmp_path)
    ckpt = torch.load(src, weights_only=False)
    del ckpt['model_ema']
    with pytest.raises(CheckpointError, match="has no 'model_ema' weights"):
        convert_official(ckpt, use_ema=True)


def test_a_file_of_another_size_is_refused_by_name(tmp_path):
    src, _, _ = authors_checkpoint(tmp_path)
    other = L2ViT(arch=dict(ARCH, depths=[2, 2, 4, 2]), init_cfg=dict(type='Pretrained', checkpoint=str(src)))
    before = copy.deepcopy(other.state_dict())
    with pytest.raises(CheckpointError, match=r'does not fit this L2ViT[\s\S]*missing in checkpoint: stages\.2\.2'):
        other.init_weights()
    for key, value in other.state_dict().items():  # nothing loaded half-way
        assert torch.equal(value, before[key]), key
    wider = L2ViT(arch=dict(ARCH, embed_dims=[32, 64, 128, 256]),
                  init_cfg=dict(type='Pretrained', checkpoint=str(src)))
    with pytest.raises(CheckpointError, match='shape mismatch: downsample_layers'):
        wider.init_weights()


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    resnet = {'conv1.weight': torch.randn(64, 3, 7, 7), 'bn1.weight': torch.ones(64), 'fc.weight': torch.randn(10, 8)}
    path = tmp_path / 'resnet.pth'
    torch.save({'state_dict': resnet}, path)
    backbone = L2ViT(arch=ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointError, match=r'holds no L2ViT weights.*conv1\.weight'):
        backbone.init_weights()
    with pytest.raises(CheckpointError, match='not an authors\' L2ViT checkpoint'):
        convert_official({'conv1.weight': resnet['conv1.weight']})


def test_missing_file_is_a_clear_error(tmp_path):
    backbone = L2ViT(arch=ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'nope.pth')))
    with pytest.raises(FileNotFoundError, match="Checkpoint file not found: .*nope.pth"):
        backbone.init_weights()


class _Payload:
    """Unpickling this would create a marker file: the weights-only loader must never let it run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_hostile_pickle_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'hostile.pth'
    torch.save({'model': {'x': torch.zeros(1)}, 'args': _Payload(str(marker))}, path)
    with pytest.raises(CheckpointError, match='Refusing to load'):
        load_checkpoint_file(path)
    result = run_main('tools/convert_official.py', str(path), str(tmp_path / 'out.pth'), check=False)
    assert result.returncode == 2 and 'Refusing to load' in result.stderr
    assert not marker.exists()
    assert not (tmp_path / 'out.pth').exists()


def test_truncated_file_is_a_clear_error(tmp_path):
    src, _, _ = authors_checkpoint(tmp_path)
    data = src.read_bytes()
    bad = tmp_path / 'truncated.pth'
    bad.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or not a PyTorch checkpoint'):
        load_checkpoint_file(bad)


def test_mmengine_training_checkpoint_loads_weights_only(tmp_path):
    """A checkpoint as mmengine's Runner writes it (message hub with HistoryBuffers and numpy values) loads with the
    allow-list, and nothing beyond it."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer()
    buffer.update(1.5)
    path = tmp_path / 'epoch_1.pth'
    torch.save(dict(meta=dict(epoch=1, seed=0), state_dict={'w': torch.ones(2)}, message_hub=dict(
        log_scalars={'train/loss': buffer}, runtime_info={'eta': np.float64(1.0), 'iter': np.int64(3)})), path)
    ckpt = load_checkpoint_file(path)
    assert ckpt['message_hub']['log_scalars']['train/loss'].current() == 1.5
    assert ckpt['message_hub']['runtime_info']['eta'] == 1.0


class _GetattrPayload:
    """Unpickles as getattr(owner, name): the allow-listed getattr stand-in must refuse anything but HistoryBuffer's
    statistics methods, even on allow-listed classes."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return (getattr, (self.owner, self.name))


@pytest.mark.parametrize('owner,name', [('HistoryBuffer', 'update'), ('Namespace', '__init__')])
def test_getattr_in_a_pickle_is_limited_to_history_buffer(tmp_path, owner, name):
    from mmengine.logging import HistoryBuffer
    owner = {'HistoryBuffer': HistoryBuffer, 'Namespace': argparse.Namespace}[owner]
    path = tmp_path / 'getattr.pth'
    torch.save({'state_dict': {}, 'x': _GetattrPayload(owner, name)}, path)
    with pytest.raises(CheckpointError, match=f'Refusing to load.*getattr.*{name}'):
        load_checkpoint_file(path)
