"""mmseg Mask2Former + L2ViT on ADE20K (configs/mask2former_ade20k/): the optimizer follows mmseg's Swin Mask2Former
recipe for L2ViT's parameter names, the configs train and test through mmseg's packaged tools and predict through
MMSegInferencer, a bf16 autocast iteration is finite, and the traps (mmdet missing, num_classes without
class_weight, crop_size restated alone) stop with a clear error."""
import json
import os
import os.path as osp
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmseg')
pytest.importorskip('mmdet')
from mmengine.config import Config  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.modules.batchnorm import _BatchNorm  # noqa: E402

from helpers import CONFIG_DIR, RELEASED_WEIGHTS, ROOT, SMALL_ARCH, load_config, tool  # noqa: E402
from l2vit.apis.checks import class_weight_problems, crop_size_problems  # noqa: E402
from l2vit.testing import generate_ade_semantic  # noqa: E402
from test_entry_points import packaged_tool, run_script  # noqa: E402
from test_segmentation_e2e import data_options  # noqa: E402

FOLDER = CONFIG_DIR / 'mask2former_ade20k'
CONFIGS = {size: FOLDER / f'mask2former_l2vit-{size}_8xb2-160k_ade20k-512x512.py' for size in 'tsb'}
ROOT_CONFIG = CONFIGS['t']
BASE_LR, BASE_WD = 1e-4, 0.05  # mmseg's Mask2Former ADE20K recipe


# ----------------------------------------------------------------------------------------------- the recipe
@pytest.mark.parametrize('size', 'tsb')
def test_configs_state_the_backbone_widths_and_weights(size):
    cfg = load_config(CONFIGS[size])
    backbone = cfg.model.backbone
    assert backbone.type == 'L2ViT' and backbone.arch == {'t': 'tiny', 's': 'small', 'b': 'base'}[size]
    assert backbone.init_cfg.checkpoint == RELEASED_WEIGHTS[size]
    widths = [128, 256, 512, 1024] if size == 'b' else [96, 192, 384, 768]
    assert cfg.model.decode_head.in_channels == widths
    # The rest is mmseg's 512x512 Mask2Former recipe.
    assert cfg.crop_size == (512, 512) and cfg.model.data_preprocessor.size == (512, 512)
    assert cfg.train_cfg.max_iters == 160000 and cfg.optim_wrapper.optimizer.lr == BASE_LR
    assert cfg.model.decode_head.loss_cls.class_weight == [1.0] * 150 + [0.1]
    assert 'mmdet.models' in cfg.custom_imports.imports and 'mmseg_l2vit' in cfg.custom_imports.imports


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (_BatchNorm, nn.LayerNorm, nn.GroupNorm))


@pytest.mark.parametrize('size', 'tsb')
def test_optimizer_puts_every_backbone_parameter_where_the_swin_recipe_does(size):
    """Built as the Runner builds it (mmengine's constructor): backbone lr x0.1; every norm of the backbone (stem and
    LCM BatchNorms, downsampling, block and output LayerNorms) and the attention temperature without weight decay,
    every other backbone parameter with it; the head's query/level embeddings and norms without decay."""
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS

    import mmseg_l2vit  # noqa: F401
    cfg = load_config(CONFIGS[size])
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
        groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    where = {id(p): (group['lr'], group['weight_decay']) for group in groups for p in group['params']}
    no_decay = {f'{name}.{p}' for name, module in model.named_modules() if _is_norm(module)
                for p, _ in module.named_parameters(recurse=False)}
    assert any('local_mp.bn' in n for n in no_decay) and any('downsample_layers.0.proj' in n for n in no_decay)
    wrong = []
    for name, param in model.named_parameters():
        if name.startswith('backbone.'):
            decay = 0.0 if name in no_decay or name.endswith('attn.temperature') else BASE_WD
            expected = (pytest.approx(BASE_LR * 0.1), pytest.approx(decay))
        elif name in no_decay or any(k in name for k in ('query_embed', 'query_feat', 'level_embed')):
            expected = (pytest.approx(BASE_LR), 0.0)
        else:
            expected = (pytest.approx(BASE_LR), pytest.approx(BASE_WD))
        if where[id(param)] != expected:
            wrong.append((name, where[id(param)]))
    assert not wrong, wrong[:10]
    assert sum(name.endswith('attn.temperature') for name, _ in model.named_parameters()) > 0


# ----------------------------------------------------------------------------------------------- tiny runs
def tiny_config(tmp_path: Path, base: Path = ROOT_CONFIG) -> str:
    """``base`` with a small L2ViT and a narrow, shallow head, on the synthetic ADE20K-layout data (6 classes)."""
    path = tmp_path / 'mask2former_l2vit-tiny_synthetic-ade.py'
    path.write_text(f'''_base_ = [{str(base)!r}]
num_classes = 6
crop_size = (64, 64)
metainfo = dict(classes=('sky', 'building', 'tree', 'grass', 'road', 'water'),
                palette=[[255, 190, 40], [0, 200, 255], [255, 60, 180], [150, 60, 255], [255, 60, 40],
                         [60, 255, 120]])
attn = dict(embed_dims=32, num_heads=2)
ffn = dict(embed_dims=32, feedforward_channels=64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch=dict(_delete_=True, **{SMALL_ARCH!r}), drop_path_rate=0.0, init_cfg=None,
                  norm_cfg=dict(type='BN', requires_grad=True)),
    decode_head=dict(
        in_channels={SMALL_ARCH["embed_dims"]!r}, feat_channels=32, out_channels=32, num_classes=num_classes,
        num_queries=8,
        pixel_decoder=dict(encoder=dict(num_layers=1, layer_cfg=dict(self_attn_cfg=attn, ffn_cfg=ffn)),
                           positional_encoding=dict(num_feats=16)),
        positional_encoding=dict(num_feats=16),
        transformer_decoder=dict(num_layers=3, layer_cfg=dict(self_attn_cfg=attn, cross_attn_cfg=attn,
                                                              ffn_cfg=ffn)),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1]),
        train_cfg=dict(num_points=256)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
dataset = dict(type='BaseSegDataset', metainfo=metainfo, reduce_zero_label=True)
train_dataloader = dict(dataset=dict(dataset, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader
default_hooks = dict(logger=dict(interval=1), visualization=dict(draw=False))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
''')
    return str(path)


@pytest.fixture(scope='module')
def ade(tmp_path_factory) -> str:
    data = str(tmp_path_factory.mktemp('m2f') / 'ade')
    generate_ade_semantic(data, num_train=4, num_val=2, seed=5, progress=False)
    return data


@pytest.mark.slow
def test_mmseg_train_then_test_then_inferencer(tmp_path, ade):
    """The T root config (small arch, narrow head) through mmseg's packaged train.py and test.py (mIoU), then
    MMSegInferencer with the checkpoint."""
    config = tiny_config(tmp_path)
    work = tmp_path / 'work'
    tool(packaged_tool('mmseg', 'train.py'), config, '--work-dir', work, '--cfg-options', *data_options(ade),
         'train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2')
    checkpoint = str(work / 'iter_2.pth')
    assert osp.isfile(checkpoint)
    result = tool(packaged_tool('mmseg', 'test.py'), config, checkpoint, '--work-dir', tmp_path / 'test',
                  '--cfg-options', *data_options(ade))
    assert 'mIoU' in result.stdout + result.stderr
    logs = sorted((tmp_path / 'test').rglob('*.json'))
    metrics = json.loads(logs[-1].read_text().strip().splitlines()[-1])
    assert 0.0 <= metrics['mIoU'] <= 100.0, metrics
    image = osp.join(ade, 'images', 'validation', '00000001.jpg')
    run_script(tmp_path, 'm2f_inferencer', f'''
import cv2
from mmseg.apis import MMSegInferencer
inferencer = MMSegInferencer(model={config!r}, weights={checkpoint!r}, device='cpu')
labels = inferencer({image!r})['predictions']
assert labels.shape == cv2.imread({image!r}).shape[:2], labels.shape
assert labels.min() >= 0 and labels.max() < 6
''', 'mmseg_l2vit')


def test_one_bf16_autocast_iteration_is_finite(tmp_path):
    """One training step of the T config (small arch, narrow head) under CPU bf16 autocast: finite losses and
    gradients (MSDeformAttn's fp16 overflow needs CUDA; see docs/mask2former_ade20k.md)."""
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    import mmseg_l2vit  # noqa: F401
    cfg = Config.fromfile(tiny_config(tmp_path))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    model.train()
    samples = []
    for i in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64), ori_shape=(64, 64)))
        label = torch.randint(0, 6, (1, 64, 64))
        label[:, :8] = 255
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    images = [torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8) for _ in range(2)]
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for v in losses.values() if isinstance(v, torch.Tensor))
    assert all(torch.isfinite(v).all() for v in losses.values()), losses
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(p.grad is not None for p in model.backbone.parameters())


# ----------------------------------------------------------------------------------------------- the traps
def _without_mmdet(tmp_path: Path) -> dict:
    """An environment whose ``import mmdet`` fails as it does where mmdet is not installed."""
    shadow = tmp_path / 'shadow' / 'mmdet'
    shadow.mkdir(parents=True)
    (shadow / '__init__.py').write_text("raise ModuleNotFoundError(\"No module named 'mmdet'\", name='mmdet')\n")
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(shadow.parent), str(ROOT)]))


@pytest.mark.parametrize('script', ['tools/train.py', 'tools/test.py'])
def test_mmdet_not_importable_names_the_install(tmp_path, script):
    import subprocess
    import sys
    (tmp_path / 'x.pth').write_bytes(b'')  # only its existence is checked before the config is read
    args = [sys.executable, script, str(ROOT_CONFIG)] + ([str(tmp_path / 'x.pth')] if 'test' in script else []) + \
        ['--work-dir', str(tmp_path / 'work')]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=_without_mmdet(tmp_path))
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'pip install "mmdet>=3.3.0,<3.4"' in result.stderr and 'Traceback' not in result.stderr


def test_num_classes_without_class_weight_is_refused(tmp_path, ade):
    """num_classes changed alone: our preflight (tools/train.py) names the class_weight fix, before torch's
    "weight tensor should be defined either for all 7 classes ... [151]" after the model is built."""
    config = tmp_path / 'child.py'  # the tiny config's 6 classes with the base's 150 + 1 class weights
    config.write_text(f'_base_ = [{tiny_config(tmp_path)!r}]\n'
                      'model = dict(decode_head=dict(loss_cls=dict(class_weight=[1.0] * 150 + [0.1])))\n')
    config = str(config)
    assert class_weight_problems(Config.fromfile(config))
    assert not class_weight_problems(load_config(ROOT_CONFIG))
    result = tool('tools/train.py', config, '--work-dir', tmp_path / 'work', '--cfg-options', *data_options(ade),
                  check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'class_weight has 151 weights' in result.stderr and '[1.0] * 6 + [0.1]' in result.stderr
    assert 'Traceback' not in result.stderr
    # mmseg's own train.py: our ConfigCheckHook (in the config's custom_hooks) stops it before the first iteration.
    result = tool(packaged_tool('mmseg', 'train.py'), config, '--work-dir', tmp_path / 'mmseg', '--cfg-options',
                  *data_options(ade), check=False)
    assert result.returncode != 0 and 'class_weight has 151 weights' in result.stderr, result.stderr[-2000:]
    assert 'weight tensor should be defined' not in result.stderr + result.stdout
    assert not list((tmp_path / 'mmseg').rglob('*.pth'))


def test_crop_size_restated_alone_is_refused(tmp_path, ade):
    """A child's ``crop_size`` alone leaves the base's data preprocessor and RandomCrop at 512: refused by name."""
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = [{str(ROOT_CONFIG)!r}]\ncrop_size = (256, 256)\n')
    problems = crop_size_problems(Config.fromfile(str(child)))
    assert len(problems) == 1 and 'model.data_preprocessor.size is (512, 512)' in problems[0]
    assert 'RandomCrop' in problems[0]
    assert not crop_size_problems(load_config(ROOT_CONFIG))
    assert not crop_size_problems(Config.fromfile(tiny_config(tmp_path)))  # restated everywhere: fine
    result = tool('tools/train.py', str(child), '--work-dir', tmp_path / 'work', '--cfg-options',
                  *data_options(ade), 'model.backbone.init_cfg=None', check=False)
    assert result.returncode == 2 and 'crop_size is (256, 256)' in result.stderr, result.stderr[-2000:]
    # mmseg's own train.py, on the tiny config with crop_size alone changed: stopped by our ConfigCheckHook.
    tiny_child = tmp_path / 'tiny_child.py'
    tiny_child.write_text(f'_base_ = [{tiny_config(tmp_path)!r}]\ncrop_size = (32, 32)\n')
    result = tool(packaged_tool('mmseg', 'train.py'), str(tiny_child), '--work-dir', tmp_path / 'mmseg',
                  '--cfg-options', *data_options(ade), check=False)
    assert result.returncode != 0 and 'crop_size is (32, 32)' in result.stderr, result.stderr[-2000:]


def test_compare_backbones_rewires_the_mask2former_head():
    """compare_backbones swaps a peer backbone in: mmseg's Mask2FormerHead (no in_index) reads every stage."""
    from l2vit.analysis.compare import _rewire_heads
    cfg = load_config(ROOT_CONFIG)
    changed = _rewire_heads(cfg, 'mmseg', [64, 128, 320, 512])
    assert cfg.model.decode_head.in_channels == [64, 128, 320, 512]
    assert changed == {'model.decode_head.in_channels': [64, 128, 320, 512]}
