"""tools/analysis/compare_backbones.py: every backbone swap builds and runs for every detection and segmentation
config family; each bad input is a clear error (tool exit 2 and the API's ToolError); a tiny --train end to end."""
import json
import math
import os.path as osp
import sys
from collections import OrderedDict

import pytest
import torch

from helpers import CONFIG_DIR, ROOT, SMALL_ARCH, configs_of_scope, demo_data_options, load_config, run_main
from l2vit.analysis import report
from l2vit.analysis.benchmark import base_config
from l2vit.analysis.compare import (BACKBONES, HEADS, PEER_RECIPES, backbone_variants, build_variant, check_backbones,
                                    head_of, iteration_schedule, lr_scale, packed_inputs, task_of)
from l2vit.errors import ToolError

TOOL = osp.join(ROOT, 'tools', 'analysis', 'compare_backbones.py')
DEMO_CONFIG = str(CONFIG_DIR / 'demo' / 'mask-rcnn_l2vit-demo_synthetic.py')
CLASSIFIER_CONFIG = str(CONFIG_DIR / 'imagenet' / 'l2vit-t_in1k.py')

#: L2ViT-T and its peers (BACKBONES also names the ablation variants, tests/test_ablation.py).
PEERS = [name for name in BACKBONES if ':' not in name]


def families():
    """One config per folder of detection and segmentation configs (the first, in name order)."""
    chosen = OrderedDict()
    for path in configs_of_scope('mmdet') + configs_of_scope('mmseg'):
        chosen.setdefault(path.parent, path)
    return list(chosen.values())


FAMILIES = families()


def test_the_families_are_found():
    folders = {p.parent.name for p in FAMILIES}
    assert {'mask_rcnn', 'cascade_rcnn', 'retinanet', 'upernet', 'demo', 'configs'} <= folders, folders


@pytest.mark.parametrize('path', FAMILIES, ids=lambda p: p.relative_to(CONFIG_DIR).as_posix())
def test_every_backbone_swap_builds_and_runs(path):
    """Each backbone in the config, small: the peers narrowed to the small L2ViT's parameter count, their widths
    in the neck/heads, their recipe's optimizer built by mmengine, and one prediction on a tiny batch."""
    cfg = load_config(path)
    cfg.model.backbone.arch = dict(SMALL_ARCH)
    if 'num_queries' in cfg.model:  # DETR-style (DINO): top-k over the encoder's tokens of a 64x64 image
        cfg.model.num_queries = 20
    scope = task_of(cfg)
    variants = backbone_variants(cfg, PEERS)
    assert [v.name for v in variants] == PEERS
    target = variants[0].settings['backbone_params']
    for variant in variants:
        s = variant.settings
        assert 0.6 * target < s['backbone_params'] < 1.5 * target, (variant.name, s['backbone_params'], target)
        backbone = variant.cfg.model.backbone
        assert backbone['type'] == {'l2vit-t': 'L2ViT', 'swin-t': 'mmdet.SwinTransformer',
                                    'convnext-t': 'mmpretrain.ConvNeXt', 'r50': 'mmdet.ResNet'}[variant.name]
        if scope == 'mmdet':
            reader = variant.cfg.model.get('neck') or variant.cfg.model.panoptic_head  # Mask2Former: no neck
            assert list(reader.in_channels) == s['out_channels']
        else:
            assert list(variant.cfg.model.decode_head.in_channels) == s['out_channels']
            if variant.cfg.model.get('auxiliary_head'):  # UperNet's; Mask2Former has none
                assert variant.cfg.model.auxiliary_head.in_channels == s['out_channels'][2]
        model, optim_wrapper = build_variant(variant)
        assert type(model.backbone).__name__ == backbone['type'].split('.')[-1]
        assert optim_wrapper.optimizer.param_groups
        model.eval()
        with torch.no_grad():
            predictions = model.test_step(packed_inputs(scope, (64, 64), 1, 4))
        assert len(predictions) == 1
    optimizers = {v.name: v.cfg.optim_wrapper for v in variants}
    if head_of(cfg, scope).optimizers:  # DINO, Mask2Former: the head's own recipes (test_peers_get_the_heads_recipe)
        assert optimizers['swin-t'].get('clip_grad') == cfg.optim_wrapper.get('clip_grad')
        return
    assert optimizers['swin-t'].optimizer.type == 'AdamW'
    assert set(optimizers['swin-t'].paramwise_cfg.custom_keys) == {'absolute_pos_embed', 'relative_position_bias_table',
                                                                   'norm'}
    assert optimizers['convnext-t'].constructor == 'LearningRateDecayOptimizerConstructor'
    assert optimizers['r50'].optimizer.type == 'SGD'
    # The config's own optimizer settings (wrapper type, clipping) stay.
    assert optimizers['swin-t'].get('clip_grad') == cfg.optim_wrapper.get('clip_grad')


def test_tiny_arch_peers_are_the_standard_t_models():
    """A named-arch config gets the recipes' own Swin-T, ConvNeXt-T and ResNet-50 widths, unnarrowed, with the
    recipes' learning rates (factor 1)."""
    cfg = load_config(CONFIG_DIR / 'mask_rcnn' / 'mask-rcnn_l2vit-t_fpn_1x_coco.py')
    variants = {v.name: v for v in backbone_variants(cfg, PEERS)}
    assert variants['swin-t'].settings['out_channels'] == [96, 192, 384, 768]
    assert variants['convnext-t'].settings['out_channels'] == [96, 192, 384, 768]
    assert variants['r50'].settings['out_channels'] == [256, 512, 1024, 2048]
    assert variants['l2vit-t'].settings['out_channels'] == [96, 192, 384, 768]
    assert variants['swin-t'].cfg.optim_wrapper.optimizer.lr == pytest.approx(1e-4)
    assert variants['r50'].cfg.optim_wrapper.optimizer.lr == pytest.approx(0.02)
    # Pretrained like the config's L2ViT: the recipes' ImageNet weights.
    assert variants['swin-t'].cfg.model.backbone.init_cfg['type'] == 'Pretrained'


@pytest.mark.parametrize('path, head', [
    ('dino/dino-4scale_l2vit-t_8xb2-12e_coco.py', ('mmdet', 'DINO')),
    ('mask2former/mask2former_l2vit-t_8xb2-lsj-50e_coco.py', ('mmdet', 'Mask2Former')),
    ('mask2former_ade20k/mask2former_l2vit-t_8xb2-160k_ade20k-512x512.py', ('mmseg', 'Mask2FormerHead')),
    ('cascade_rcnn/cascade-mask-rcnn_l2vit-t_fpn_4conv1fc-giou_ms-crop-3x_coco.py', ('mmdet', 'CascadeRCNN')),
    ('retinanet/retinanet_l2vit-t_fpn_1x_coco.py', ('mmdet', 'RetinaNet')),
    ('mask_rcnn/mask-rcnn_l2vit-t_fpn_1x_coco.py', ('mmdet', 'default')),
])
def test_peers_get_the_heads_recipe(path, head):
    """A peer gets the optimizer of its library's config for the config's head (Swin-T and ResNet-50 in DINO and
    Mask2Former, ...); one the library has no such config for (ConvNeXt-T there) gets its Mask R-CNN / UperNet
    recipe's, and the record says so."""
    cfg = load_config(CONFIG_DIR / path)
    scope = task_of(cfg)
    assert head_of(cfg, scope) == HEADS[head]
    assert lr_scale(cfg, scope) == pytest.approx(1.0)  # our configs train at their recipes' learning rates
    variants = {v.name: v for v in backbone_variants(cfg, PEERS)}
    for name in ('swin-t', 'convnext-t', 'r50'):
        settings, wrapper = variants[name].settings, variants[name].cfg.optim_wrapper
        source = HEADS[head].optimizers.get(name, PEER_RECIPES[scope][name])
        theirs = base_config(source).optim_wrapper
        assert settings['optimizer']['source'] == source and settings['recipe'] == PEER_RECIPES[scope][name]
        assert wrapper.optimizer.to_dict() == theirs.optimizer.to_dict()
        assert wrapper.get('paramwise_cfg') == theirs.get('paramwise_cfg')
        fallback = bool(HEADS[head].optimizers) and name not in HEADS[head].optimizers
        assert settings['optimizer']['fallback'] == fallback
        assert any('has no' in note for note in settings['notes']) == fallback
    # T-sized configs: the peers are the standard T models, also where arch='tiny' is written as a dict (mmdet
    # Mask2Former's, so that a child's dict arch merges); only custom widths narrow them.
    assert isinstance(cfg.model.backbone.arch, dict) == (head == ('mmdet', 'Mask2Former'))
    assert not any('narrowed' in note for v in variants.values() for note in v.settings['notes'])
    assert variants['r50'].settings['backbone_params'] == pytest.approx(23.5e6, rel=0.01)
    if head == ('mmdet', 'DINO'):  # the backbone at a tenth of the head's lr, as mmdet's DINO configs train it
        assert variants['swin-t'].cfg.optim_wrapper.paramwise_cfg.custom_keys == {'backbone': dict(lr_mult=0.1)}
        assert variants['r50'].cfg.optim_wrapper.optimizer.type == 'AdamW'
    if head[1] in ('Mask2Former', 'Mask2FormerHead'):  # Swin's no-decay keys and the queries' embeddings
        keys = variants['swin-t'].cfg.optim_wrapper.paramwise_cfg.custom_keys
        assert keys['backbone'].lr_mult == 0.1 and keys['relative_position_bias_table'].decay_mult == 0.0
        assert 'query_embed' in keys and 'query_embed' not in (
            variants['convnext-t'].cfg.optim_wrapper.get('paramwise_cfg') or {}).get('custom_keys', {})


def test_the_schedule_is_mapped_onto_the_iterations():
    cfg = load_config(DEMO_CONFIG)  # LinearLR warm-up over 100 iterations, cosine over 4 epochs
    warmup, cosine = iteration_schedule(cfg, 400)
    assert (warmup['begin'], warmup['end'], warmup['by_epoch']) == (0, 100, False)
    assert (cosine['begin'], cosine['end'], cosine['by_epoch']) == (0, 400, False)
    seg = load_config(CONFIG_DIR / 'demo' / 'l2vit-demo_upernet_synthetic.py')  # 600 iterations, warm-up 50
    warmup, poly = iteration_schedule(seg, 60)
    assert (warmup['end'], poly['begin'], poly['end']) == (5, 5, 60)


# ------------------------------------------------------------------------------------------------ bad input
def _tool_error(*args) -> str:
    result = run_main(TOOL, *args, check=False)
    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-2000:])
    assert 'Traceback' not in result.stderr
    return result.stderr


def test_an_unknown_backbone_is_refused():
    with pytest.raises(ToolError, match="unknown backbone 'vit-h'.*l2vit-t, swin-t, convnext-t, r50"):
        check_backbones(['l2vit-t', 'vit-h'])
    assert "error: unknown backbone 'vit-h'" in _tool_error(DEMO_CONFIG, '--backbones', 'l2vit-t', 'vit-h')


def test_a_config_that_is_neither_detection_nor_segmentation_is_refused():
    from l2vit.apis import read_config
    with pytest.raises(ToolError, match='neither a detection .mmdet. nor a segmentation .mmseg. config'):
        task_of(read_config(CLASSIFIER_CONFIG))
    stderr = _tool_error(CLASSIFIER_CONFIG, '--backbones', 'l2vit-t', 'swin-t')
    assert "error: " in stderr and 'neither a detection (mmdet) nor a segmentation (mmseg) config' in stderr
    assert "default_scope is 'mmpretrain'" in stderr


def test_a_backbone_whose_library_is_not_installed_is_refused(monkeypatch):
    # A None entry in sys.modules makes `import mmpretrain` fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, 'mmpretrain', None)
    with pytest.raises(ToolError, match=r'convnext-t is built by mmpretrain.ConvNeXt, but mmpretrain is not '
                       r'installed.*pip install'):
        check_backbones(['l2vit-t', 'convnext-t'])
    stderr = _tool_error(DEMO_CONFIG, '--backbones', 'l2vit-t', 'convnext-t')
    assert 'error: backbone convnext-t is built by mmpretrain.ConvNeXt, but mmpretrain is not installed' in stderr


def test_a_missing_dataset_is_reported_before_anything_is_measured(tmp_path):
    from l2vit.analysis.compare import compare
    missing = str(tmp_path / 'nowhere')
    options = {'train_dataloader.dataset.data_root': missing + '/', 'val_dataloader.dataset.data_root': missing + '/'}
    with pytest.raises(ToolError, match='the dataset is missing'):
        compare(DEMO_CONFIG, ['l2vit-t', 'swin-t'], train_iters=2, cfg_options=options)
    stderr = _tool_error(DEMO_CONFIG, '--backbones', 'l2vit-t', 'swin-t', '--train', '2', '--cfg-options',
                         f'train_dataloader.dataset.data_root={missing}/')
    assert 'error: the dataset is missing' in stderr and missing in stderr


def test_the_saved_demo_comparison_renders_its_numbers_and_plots(tmp_path):
    """docs/compare_demo.json (the README's table): a row per backbone with its measured numbers, and both plots."""
    record = json.loads((ROOT / 'docs' / 'compare_demo.json').read_text(encoding='utf-8'))
    paths = report.write_compare(record, str(tmp_path))
    assert [osp.basename(p) for p in paths] == ['compare.json', 'compare.md', 'compare_curves.png',
                                                'compare_tradeoff.png']
    lines = (tmp_path / 'compare.md').read_text(encoding='utf-8').splitlines()
    for entry in record['backbones'].values():
        row = next(line for line in lines if line.startswith(f'| {entry["label"]} |'))
        cells = [float(cell) for cell in row.strip('| ').split(' | ')[1:]]
        metric = entry['training']['evals'][-1]['metrics'][record['metric']]
        for number in (entry['infer']['images_per_s'], entry['train']['median_s'], metric):
            assert any(math.isclose(cell, number, abs_tol=0.006) for cell in cells), (number, row)
    assert all(open(p, 'rb').read(4) == b'\x89PNG' for p in paths[2:])


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_a_tiny_training_comparison_end_to_end(tmp_path):
    from l2vit.testing import generate_coco_instances
    data = str(tmp_path / 'coco')
    generate_coco_instances(data, num_train=8, num_val=3, seed=1, progress=False)
    out = tmp_path / 'out'
    options = demo_data_options(data)
    result = run_main(TOOL, DEMO_CONFIG, '--backbones', *PEERS, '--train', '4', '--eval-interval', '2',
                      '--out-dir', str(out), '--time-size', '64', '--flops-size', '64x96', '--warmup', '1',
                      '--repeats', '1', '--cfg-options', *options)
    with open(out / 'compare.json') as f:
        record = json.load(f)
    assert list(record['backbones']) == PEERS
    for name, entry in record['backbones'].items():
        assert entry['complexity']['model']['flops'] > entry['complexity']['backbone']['flops'] > 0
        assert entry['infer']['images_per_s'] > 0 and entry['train']['median_s'] > 0
        assert entry['train']['memory_bytes'] > 0
        training = entry['training']
        assert len(training['losses']) == 4
        assert [e['iter'] for e in training['evals']] == [2, 4]
        assert 'coco/bbox_mAP' in training['evals'][-1]['metrics']
    for name in ('compare.md', 'compare_curves.png', 'compare_tradeoff.png'):
        assert (out / name).stat().st_size > 0
    assert '| Swin-T |' in result.stdout and 'LearningRateDecayOptimizerConstructor' in result.stdout
    assert '| model FLOPs (G) at 64x96 | inference (img/s) at 64x64 |' in result.stdout  # H x W, as on the command line
    machine = record['machine']  # the machine by model name, flags and cores, and how loaded it was
    assert machine['cpu'] and isinstance(machine['cpu_flags'], list) and machine['cores'] >= 1
    assert len(machine['load_average']) == 3 and f'{machine["cores"]} cores' in result.stdout
