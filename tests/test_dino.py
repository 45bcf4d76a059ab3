"""DINO 4-scale and 5-scale with L2ViT (configs/dino/): the optimizer recipe on L2ViT's parameter names, the preflight
for backbone/neck/level mismatches, mmdet's packaged train.py/test.py and DetInferencer on synthetic data, and one
bf16-autocast training iteration."""
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from helpers import CONFIG_DIR, demo_data_options, load_config, run_main, tool
from l2vit.apis.checks import channel_mapper_problems
from l2vit.testing import generate_coco_instances
from test_entry_points import packaged_tool

DINO = {name: CONFIG_DIR / 'dino' / f'dino-{name}_8xb2-12e_coco.py'
        for name in ['4scale_l2vit-t', '4scale_l2vit-s', '4scale_l2vit-b',
                     '5scale_l2vit-t', '5scale_l2vit-s', '5scale_l2vit-b']}
CLASSES = ('ellipse', 'rectangle', 'triangle', 'star')


def tiny_config(tmp_path: Path, base: Path, data: str) -> str:
    """``base`` shrunk for a CPU: a narrow L2ViT of one block per stage, 1 encoder and 1 decoder layer, few queries
    (mmdet 3.3's DINO keeps the transformer 256 wide: its decoder hard-codes 128 sine features per coordinate),
    128-px images, the synthetic shapes' 4 classes."""
    five = '5scale' in base.name
    widths = [16, 32, 64, 128]
    stages = [0, 1, 2, 3] if five else [1, 2, 3]
    path = tmp_path / f'tiny_{base.name}'
    path.write_text(f'''
_base_ = {str(base)!r}
data_root = {data + '/'!r}
metainfo = dict(classes={CLASSES!r})
model = dict(
    num_queries=20,
    backbone=dict(arch=dict(_delete_=True, embed_dims={widths}, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8]),
                  norm_cfg=dict(type='BN', requires_grad=True), cpu_fast_paths=True, init_cfg=None),
    neck=dict(in_channels={[widths[i] for i in stages]}),
    encoder=dict(num_layers=1, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=256))),
    decoder=dict(num_layers=1, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=256))),
    bbox_head=dict(num_classes=4),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=10)),
    test_cfg=dict(max_per_img=20))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1)
''')
    return str(path)


# ------------------------------------------------------------------------------------------------- the optimizer
@pytest.mark.parametrize('name', list(DINO))
def test_optimizer_puts_every_backbone_parameter_where_the_recipe_says(name):
    """mmdet's DINO/Swin rule restated for L2ViT: every backbone parameter at lr x0.1; every norm (the blocks'
    LayerNorms, the downsampling and output norms, the stem's and LCMs' BatchNorms) and the attention temperatures
    without weight decay, the rest of the backbone with it; the neck, transformer and head untouched (lr 1e-4, wd
    1e-4). Built at the config's own arch (the block keys must reach S's and B's 18 blocks), as the Runner does."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.optim import build_optim_wrapper

    import mmdet_l2vit  # noqa: F401  (registers L2ViT)
    register_all_modules()
    cfg = load_config(DINO[name])
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.norm_cfg = dict(type='BN', requires_grad=True)
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lr, wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    group_of = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    norms = {id(p) for m in model.backbone.modules() if isinstance(m, (nn.LayerNorm, _BatchNorm))
             for p in m.parameters()}
    wrong, counted = [], 0
    for full, param in model.named_parameters():
        group = group_of[id(param)]
        if full.startswith('backbone.'):
            counted += 1
            no_decay = id(param) in norms or full.endswith('attn.temperature')
            expected = (lr * 0.1, 0.0 if no_decay else wd)
        else:
            expected = (lr, wd)
        if (pytest.approx(group['lr']), pytest.approx(group['weight_decay'])) != expected:
            wrong.append(f'{full}: lr {group["lr"]}, wd {group["weight_decay"]} (expected {expected})')
    assert counted > 100 and not wrong, f'{len(wrong)} parameters land wrong, e.g.:\n' + '\n'.join(wrong[:10])


# ------------------------------------------------------------------------------------------ mismatched levels
@pytest.mark.parametrize('options,fix', [
    # L2ViT's default out_indices (0-3) into the 4-scale neck's three inputs: mmdet's bare AssertionError otherwise.
    ({'model.backbone.out_indices': (0, 1, 2, 3)}, 'model.backbone.out_indices=(1, 2, 3)'),
    # The neck's widths left at R-50's: a channel error at the first forward otherwise.
    ({'model.neck.in_channels': [512, 1024, 2048]}, 'model.neck.in_channels=[192, 384, 768]'),
    # 5-scale neck with the transformer left at 4 levels.
    ({'model.backbone.out_indices': (0, 1, 2, 3), 'model.neck.in_channels': [96, 192, 384, 768],
      'model.neck.num_outs': 5}, 'model.num_feature_levels=5'),
])
def test_levels_that_do_not_fit_are_named_with_the_fix(options, fix):
    cfg = load_config(DINO['4scale_l2vit-t'])
    assert channel_mapper_problems(cfg) == []
    cfg.merge_from_dict(options)
    problems = channel_mapper_problems(cfg)
    assert len(problems) == 1 and fix in problems[0], problems


def test_5scale_levels_fit_and_a_4level_neck_is_named():
    cfg = load_config(DINO['5scale_l2vit-b'])
    assert channel_mapper_problems(cfg) == []
    cfg.merge_from_dict({'model.neck.num_outs': 4})
    problems = channel_mapper_problems(cfg)
    assert len(problems) == 1 and 'model.neck.num_outs=5' in problems[0], problems


def test_our_train_tool_stops_default_out_indices_before_building(tmp_path):
    """Through tools/train.py's preflight: exit 2 and the fix, instead of mmdet's bare AssertionError."""
    result = run_main('tools/train.py', DINO['4scale_l2vit-t'], '--work-dir', tmp_path / 'work', '--cfg-options',
                      'model.backbone.out_indices=(0,1,2,3)', check=False)
    assert result.returncode == 2, (result.stdout + result.stderr)[-2000:]
    assert 'error:' in result.stderr and '"model.backbone.out_indices=(1, 2, 3)"' in result.stderr
    assert 'AssertionError' not in result.stderr


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    data = str(tmp_path_factory.mktemp('dino') / 'coco')
    generate_coco_instances(data, num_train=2, num_val=2, seed=5, progress=False)
    return data


def test_mmdet_train_tool_names_neck_widths_left_at_r50s(coco, tmp_path):
    """Through mmdet's own train.py: the config's ConfigCheckHook stops the run before its first iteration with
    the fix, instead of ``expected input[...] to have 512 channels`` at the first forward. (L2ViT's default
    out_indices into a 3-input neck fail while mmdet's Runner builds the model, before any hook: our tools'
    preflight names that one.)"""
    config = tiny_config(tmp_path, DINO['4scale_l2vit-t'], coco)
    result = tool(packaged_tool('mmdet', 'train.py'), config, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                  *demo_data_options(coco), 'model.neck.in_channels=[512,1024,2048]', check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and 'ToolError' in output, output[-3000:]
    assert '"model.neck.in_channels=[32, 64, 128]"' in output and 'to have 512 channels' not in output


# ---------------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.parametrize('name', ['4scale_l2vit-t', '5scale_l2vit-t'])
def test_mmdet_train_test_and_det_inferencer(coco, tmp_path, name):
    """mmdet's packaged train.py (one epoch of one iteration, validating) and test.py print bbox mAP;
    DetInferencer predicts boxes of the 4 classes with the trained checkpoint."""
    config = tiny_config(tmp_path, DINO[name], coco)
    options = ['--cfg-options', *demo_data_options(coco)]
    work = tmp_path / 'work'
    tool(packaged_tool('mmdet', 'train.py'), config, '--work-dir', str(work), *options)
    checkpoint = work / 'epoch_1.pth'
    assert checkpoint.is_file()
    result = tool(packaged_tool('mmdet', 'test.py'), config, str(checkpoint), '--work-dir', str(tmp_path / 'test'),
                  *options)
    found = re.search(r'coco/bbox_mAP: (-?\d+\.\d+)', result.stdout + result.stderr)
    assert found and -1.0 <= float(found.group(1)) <= 1.0, (result.stdout + result.stderr)[-3000:]
    script = tmp_path / 'infer.py'
    script.write_text(f'''
from mmdet.apis import DetInferencer
inferencer = DetInferencer(model={config!r}, weights={str(checkpoint)!r}, device='cpu', show_progress=False)
pred = inferencer({coco + '/val2017/000000000001.jpg'!r}, no_save_vis=True, pred_score_thr=0.0)['predictions'][0]
assert len(pred['labels']) == 20 and all(0 <= label < 4 for label in pred['labels']), pred
assert all(len(box) == 4 for box in pred['bboxes']) and len(pred['scores']) == 20
''')
    tool(str(script))


# ----------------------------------------------------------------------------------------------------------- AMP
def test_one_bf16_autocast_training_iteration_is_finite(coco, tmp_path):
    """One training iteration of the tiny 5-scale model under CPU bf16 autocast: finite losses and gradients
    (fp16 needs CUDA; see docs/dino.md for the deformable attention's fp16 overflow)."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(tiny_config(tmp_path, DINO['5scale_l2vit-t'], coco))
    cfg.merge_from_dict(dict(work_dir=str(tmp_path / 'work'), train_dataloader=dict(num_workers=0,
                                                                                    persistent_workers=False)))
    runner = Runner.from_cfg(cfg)
    torch.manual_seed(0)
    runner.model.init_weights()  # what Runner.train does (DINO's level_embed is uninitialised memory until then)
    model = runner.model.train()
    batch = next(iter(runner.train_dataloader))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    loss.backward()
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in log_vars.values()), log_vars
    grads = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    assert len(grads) > 100 and all(torch.isfinite(g).all() for _, g in grads)
    assert any(n.startswith('backbone.') and g.abs().sum() > 0 for n, g in grads)
