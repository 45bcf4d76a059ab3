"""l2vit.apis in-process: the config walker and its edits, preparing a config for a run, the preflight checks on
Config objects, and the demos' input checks (the tools are these functions behind argparse; their command lines are
tested in test_clear_errors.py, test_detection_e2e.py and the other tool tests)."""
import copy
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from helpers import CONFIG_DIR, load_config
from l2vit.apis import (add_dump, add_run_hooks, config_dicts, drop_pretrained, enable_amp, enable_auto_scale_lr,
                        enable_visualization, leaf_datasets)
from l2vit.apis import load_config as prepare_config
from l2vit.apis import (preflight, prepare_test, prepare_train, pretrained_checkpoints, set_resume, setup_cpu_launcher,
                        sync_bn_to_bn)
from l2vit.apis.demo import DemoSteps, data_root_options, list_images
from l2vit.errors import ToolError, error_exit

DEMO_CONFIG = CONFIG_DIR / 'demo' / 'mask-rcnn_l2vit-demo_synthetic.py'
SPLITS = ['train_dataloader', 'val_dataloader']


# ------------------------------------------------------------------------------------------------- the walker
def test_config_dicts_walks_every_dict_with_its_key():
    tree = dict(a=dict(b=[dict(c=1), 3, (dict(d=2),)]), e=dict(f=dict(g=0)))
    assert [key for key, _ in config_dicts(tree, 'model')] == [
        'model', 'model.a', 'model.a.b.0', 'model.a.b.2.0', 'model.e', 'model.e.f']
    assert [key for key, _ in config_dicts(tree, skip=('a',))] == ['', 'e', 'e.f']
    assert list(config_dicts(5)) == []


def test_sync_bn_to_bn_and_drop_pretrained_edit_in_place():
    model = dict(backbone=dict(norm_cfg=dict(type='SyncBN'), init_cfg=dict(type='Pretrained', checkpoint='a.pth')),
                 heads=[dict(norm_cfg=dict(type='SyncBN'), pretrained='b.pth',
                             init_cfg=[dict(type='Normal'), dict(type='Pretrained', checkpoint='c.pth')])],
                 neck=dict(norm_cfg=dict(type='BN')))
    assert list(pretrained_checkpoints(model)) == [
        ('model.backbone.init_cfg.checkpoint', 'a.pth'), ('model.heads.0.init_cfg.checkpoint', 'c.pth')]
    assert sync_bn_to_bn(model) == ['model.backbone.norm_cfg', 'model.heads.0.norm_cfg']
    assert [key for key, cfg in config_dicts(model, 'model') if cfg.get('type') == 'SyncBN'] == []
    drop_pretrained(model)
    assert model['backbone']['init_cfg'] is None
    assert model['heads'][0]['init_cfg'] == [dict(type='Normal')] and model['heads'][0]['pretrained'] is None
    assert list(pretrained_checkpoints(model)) == []


def test_leaf_datasets_looks_inside_wrappers():
    a, b = dict(type='CocoDataset', ann_file='a'), dict(type='CocoDataset', ann_file='b')
    wrapped = dict(type='RepeatDataset', times=2, dataset=dict(type='ConcatDataset', datasets=[a, b]))
    assert leaf_datasets(wrapped) == [a, b]
    assert leaf_datasets(None) == []


# -------------------------------------------------------------------------------------------- preparing a config
def test_load_config_errors_and_work_dir(tmp_path):
    with pytest.raises(ToolError, match='config file not found: nope.py'):
        prepare_config('nope.py')
    no_scope = tmp_path / 'no_scope.py'
    no_scope.write_text('model = dict(type="X")\n')
    with pytest.raises(ToolError, match='sets no default_scope'):
        prepare_config(str(no_scope))
    cfg = prepare_config(str(DEMO_CONFIG), cfg_options={'train_cfg.max_epochs': 3})
    assert cfg.train_cfg.max_epochs == 3 and cfg.launcher == 'none'
    assert cfg.work_dir == osp.join('./work_dirs', 'mask-rcnn_l2vit-demo_synthetic')
    assert prepare_config(str(DEMO_CONFIG), work_dir=str(tmp_path)).work_dir == str(tmp_path)
    with pytest.raises(ToolError, match="unknown launcher 'ssh'"):
        prepare_config(str(DEMO_CONFIG), launcher='ssh')


def test_training_switches():
    cfg = load_config(DEMO_CONFIG)
    add_run_hooks(cfg)
    hooks = [h['type'] for h in cfg.custom_hooks]
    add_run_hooks(cfg)
    assert [h['type'] for h in cfg.custom_hooks] == hooks and hooks.count('RNGStateHook') == 1
    set_resume(cfg, None)
    assert not cfg.get('resume')
    set_resume(cfg, 'auto')
    assert cfg.resume is True and cfg.load_from is None
    set_resume(cfg, 'w/epoch_3.pth')
    assert cfg.resume is True and cfg.load_from == 'w/epoch_3.pth'
    with pytest.raises(ToolError, match='no auto_scale_lr'):
        enable_auto_scale_lr(Config(dict(model=dict())))
    if not torch.cuda.is_available():
        with pytest.raises(ToolError, match='--amp needs a CUDA GPU'):
            enable_amp(cfg)


@pytest.mark.parametrize('scope,hook_key,dir_key', [('mmdet', 'draw', 'test_out_dir'),
                                                    ('mmpretrain', 'enable', 'out_dir')])
def test_visualization_and_dump(scope, hook_key, dir_key):
    cfg = Config(dict(default_scope=scope, default_hooks=dict(visualization=dict(type='X')), test_evaluator=dict(
        type='CocoMetric')))
    enable_visualization(cfg, 'pictures')
    hook = cfg.default_hooks.visualization
    assert hook[hook_key] is True and hook[dir_key] == 'pictures'
    add_dump(cfg, 'out.pkl')
    assert cfg.test_evaluator[0] == dict(type='CocoMetric')
    assert cfg.test_evaluator[1]['out_file_path'] == 'out.pkl'
    assert cfg.test_evaluator[1]['type'] == ('mmdet.DumpDetResults' if scope == 'mmdet' else 'mmengine.DumpResults')
    with pytest.raises(ToolError, match="default_scope is 'mmyolo'"):
        enable_visualization(Config(dict(default_scope='mmyolo')), 'x')


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU-only launcher path')
def test_cpu_launcher_errors(monkeypatch):
    cfg = Config(dict(launcher='slurm', model=dict()))
    with pytest.raises(ToolError, match='--launcher slurm needs CUDA GPUs'):
        setup_cpu_launcher(cfg)
    monkeypatch.delenv('MASTER_ADDR', raising=False)
    with pytest.raises(ToolError, match='expects to be started by torchrun'):
        setup_cpu_launcher(Config(dict(launcher='pytorch', model=dict())))
    setup_cpu_launcher(Config(dict(launcher='none', model=dict())))  # one process: nothing to do


# ---------------------------------------------------------------------------------------------- preflight
def tiny_coco(root, num_classes: int = 4) -> str:
    """The files the demo config reads: two annotation files and the image folders (no images are read)."""
    for split in ('train', 'val'):
        (root / f'{split}2017').mkdir(parents=True, exist_ok=True)
        (root / 'annotations').mkdir(exist_ok=True)
        data = dict(images=[dict(id=1, file_name='1.jpg', height=32, width=32)],
                    annotations=[dict(id=1, image_id=1, category_id=1, bbox=[1, 1, 8, 8], area=64, iscrowd=0,
                                      segmentation=[[1, 1, 9, 1, 9, 9]])],
                    categories=[dict(id=i + 1, name=n) for i, n in
                                enumerate(('ellipse', 'rectangle', 'triangle', 'star')[:num_classes])])
        (root / 'annotations' / f'instances_{split}2017.json').write_text(json.dumps(data))
    return str(root) + '/'


def demo_cfg(root: str) -> Config:
    cfg = load_config(DEMO_CONFIG)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = root
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key].ann_file = root + 'annotations/instances_val2017.json'
    return cfg


def test_preflight_accepts_the_demo_data(tmp_path):
    assert preflight(demo_cfg(tiny_coco(tmp_path)), SPLITS) == []


def test_preflight_names_missing_data_and_the_fix(tmp_path):
    problems = preflight(demo_cfg(str(tmp_path / 'nowhere') + '/'), SPLITS)
    text = '\n'.join(problems)
    assert problems[0] == 'the dataset is missing:'
    assert f'{tmp_path}/nowhere/ (train_dataloader.dataset.data_root)' in text
    assert 'Expected layout for COCO 2017' in text
    assert '--cfg-options train_dataloader.dataset.data_root=/path/to/data/' in text
    assert 'val_evaluator.ann_file=/path/to/annotations.json' in text


def test_preflight_wiring_problems(tmp_path):
    cfg = demo_cfg(tiny_coco(tmp_path))
    cfg.model.neck.in_channels = [32, 64, 128, 512]
    cfg.model.roi_head.bbox_head.num_classes = 80
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'w.pth'))
    problems = preflight(cfg, SPLITS)
    assert any(p.startswith('model.neck.in_channels is [32, 64, 128, 512]') for p in problems), problems
    assert any(p.startswith('model.roi_head.bbox_head.num_classes is 80,') and 'has 4 classes' in p
               for p in problems), problems
    assert f'pretrained weights not found: {tmp_path}/w.pth (model.backbone.init_cfg.checkpoint)' in problems
    assert f'pretrained weights not found: {tmp_path}/w.pth (model.backbone.init_cfg.checkpoint)' not in \
        preflight(cfg, SPLITS, check_pretrained=False)
    cfg.model.backbone.init_cfg.checkpoint = 'https://example.com/w.pth'  # URLs are fetched when used, not here
    assert not [p for p in preflight(cfg, SPLITS) if 'pretrained weights' in p]


def test_train_and_test_config_prepare_without_building(tmp_path):
    root = tiny_coco(tmp_path / 'coco')
    options = {f'{s}_dataloader.dataset.data_root': root for s in ('train', 'val', 'test')}
    options.update({f'{k}.ann_file': root + 'annotations/instances_val2017.json'
                    for k in ('val_evaluator', 'test_evaluator')})
    cfg = prepare_train(str(DEMO_CONFIG), work_dir=str(tmp_path / 'w'), resume='auto', cfg_options=options)
    assert cfg.resume is True and cfg.work_dir == str(tmp_path / 'w')
    assert 'RNGStateHook' in [h['type'] for h in cfg.custom_hooks]
    with pytest.raises(ToolError, match='checkpoint not found'):
        prepare_test(str(DEMO_CONFIG), str(tmp_path / 'nope.pth'))
    with pytest.raises(ToolError, match='--out must name a .pkl'):
        prepare_test(str(DEMO_CONFIG), 'https://example.com/w.pth', out='preds.json')
    cfg = prepare_test(str(DEMO_CONFIG), 'https://example.com/w.pth', out='p.pkl', cfg_options=copy.deepcopy(options))
    assert cfg.load_from == 'https://example.com/w.pth' and cfg.resume is False
    assert cfg.test_evaluator[-1]['out_file_path'] == 'p.pkl'
    bad = dict(options, **{'model.neck.in_channels': [1, 2, 3, 4]})
    with pytest.raises(ToolError, match='model.neck.in_channels is'):
        prepare_train(str(DEMO_CONFIG), cfg_options=bad)


# ------------------------------------------------------------------------------------------------------ demos
def test_list_images(tmp_path):
    config, checkpoint = tmp_path / 'c.py', tmp_path / 'w.pth'
    for i in (3, 1, 2):
        (tmp_path / f'{i}.jpg').write_bytes(b'')
    (tmp_path / 'notes.txt').write_text('')
    with pytest.raises(ToolError, match='config not found'):
        list_images(str(tmp_path), str(config), str(checkpoint))
    config.write_text('')
    checkpoint.write_bytes(b'')
    assert list_images(str(tmp_path), str(config), str(checkpoint), max_images=2) == [
        str(tmp_path / '1.jpg'), str(tmp_path / '2.jpg')]
    with pytest.raises(ToolError, match='--max-images must be at least 1'):
        list_images(str(tmp_path), str(config), str(checkpoint), max_images=0)
    with pytest.raises(ToolError, match='image not found'):
        list_images(str(tmp_path / 'x.jpg'), str(config), str(checkpoint))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ToolError, match='no images'):
        list_images(str(tmp_path / 'empty'), str(config), str(checkpoint))


def test_demo_steps(tmp_path, capsys):
    steps = DemoSteps(str(tmp_path))
    (tmp_path / 'ok.py').write_text('print("hello")\n')
    (tmp_path / 'bad.py').write_text('raise SystemExit(3)\n')
    steps.run('first', ['ok.py'])
    assert list(steps.timings) == ['first'] and '[demo] first:' in capsys.readouterr().out
    with pytest.raises(ToolError, match=r'the second step failed \(exit code 3\)'):
        steps.run('second', ['bad.py'])
    with pytest.raises(SystemExit) as exit_info, error_exit():
        steps.run('second', ['bad.py'])
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith('error: the second step failed')
    assert data_root_options('data/x', 'data/x') == []
    assert data_root_options('d', 'data/x', ['k=v'])[-1] == 'k=v'


def test_read_config_and_build_model(tmp_path):
    from l2vit import L2ViT
    from l2vit.apis import build_model, read_config
    cfg = read_config(str(CONFIG_DIR / 'maskrcnn_l2vit.py'), {'model.backbone.norm_cfg.type': 'BN'})
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    model = build_model(cfg, pretrained=False)  # the release URL is not fetched: no weights are loaded
    assert isinstance(model.backbone, L2ViT) and model.backbone.init_cfg is None
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'  # the config itself is left as it was
    no_model = tmp_path / 'no_model.py'
    no_model.write_text("default_scope = 'mmdet'\n")
    with pytest.raises(ToolError, match='defines no model'):
        build_model(read_config(str(no_model)))
