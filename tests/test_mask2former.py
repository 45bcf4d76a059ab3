"""mmdet's Mask2Former with L²ViT (configs/mask2former/): instance and panoptic segmentation on COCO.

Each config's optimizer as the Runner builds it (every backbone norm and the attention temperature without weight
decay, the backbone at 0.1x lr), the configs through mmdet's packaged train.py / test.py and DetInferencer on
synthetic data with a tiny arch and head, one training iteration under bf16 autocast, and the traps of issue 25
(class weights, a dict arch, image_size in a child, panoptic files) with their clear errors."""
import json
import os.path as osp
import re
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import CONFIG_DIR, load_config, tool
from l2vit.testing import generate_coco_instances, metainfo, panoptic_metainfo
from test_entry_points import packaged_tool, run_script

M2F_DIR = CONFIG_DIR / 'mask2former'
INSTANCE_T = M2F_DIR / 'mask2former_l2vit-t_8xb2-lsj-50e_coco.py'
PANOPTIC_T = M2F_DIR / 'mask2former_l2vit-t_8xb2-lsj-50e_coco-panoptic.py'
M2F_CONFIGS = sorted(p for p in M2F_DIR.glob('*.py'))
TINY_ARCH = dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])


def has_panopticapi() -> bool:
    import importlib.util
    return importlib.util.find_spec('panopticapi') is not None


needs_panopticapi = pytest.mark.skipif(not has_panopticapi(), reason='panopticapi is not installed (it is not on '
                                       'the package index: pip install git+https://github.com/cocodataset/panopticapi)')


# ------------------------------------------------------------------------------------------------ tiny configs
def tiny_config(tmp_path: Path, root: Path, panoptic: bool, classes_fixed: bool = True) -> str:
    """A child of ``root`` as a user writes one for other data: a dict arch (merged, no ``_delete_``), a 32-wide
    head with one encoder and one decoder layer and 8 queries, and the class count with its matching
    ``loss_cls.class_weight`` (left at COCO's when ``classes_fixed`` is False)."""
    num_stuff = 1 if panoptic else 0
    num_classes = 4 + num_stuff
    class_weight = f'loss_cls=dict(class_weight=[1.0] * {num_classes} + [0.1]),' if classes_fixed else ''
    attn = 'dict(embed_dims=32, num_heads=4)'
    ffn = 'dict(embed_dims=32, feedforward_channels=64)'
    path = tmp_path / f'tiny_{root.stem}.py'
    path.write_text(f'''_base_ = {str(root)!r}
metainfo = {panoptic_metainfo() if panoptic else metainfo()!r}
model = dict(
    backbone=dict(arch={TINY_ARCH!r}, drop_path_rate=0.1, init_cfg=None),
    panoptic_head=dict(
        in_channels=[16, 32, 64, 128], feat_channels=32, out_channels=32, num_queries=8,
        num_things_classes=4, num_stuff_classes={num_stuff}, {class_weight}
        pixel_decoder=dict(encoder=dict(num_layers=1, layer_cfg=dict(self_attn_cfg={attn}, ffn_cfg={ffn})),
                           positional_encoding=dict(num_feats=16)),
        positional_encoding=dict(num_feats=16),
        transformer_decoder=dict(num_layers=1, layer_cfg=dict(self_attn_cfg={attn}, cross_attn_cfg={attn},
                                                              ffn_cfg={ffn}))),
    panoptic_fusion_head=dict(num_things_classes=4, num_stuff_classes={num_stuff}),
    train_cfg=dict(num_points=256),
    test_cfg=dict(max_per_image=10))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(metainfo=metainfo))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(metainfo=metainfo))
test_dataloader = val_dataloader
''')
    return str(path)


def data_options(data: str, panoptic: bool, size: int = 64) -> dict:
    """cfg options: the synthetic data's root, 2 iterations, and the LSJ crop shrunk to ``size`` in all three places
    mmdet's base applies its ``image_size`` (they are not linked once the base is read)."""
    crop = (size, size)
    options = {f'{split}_dataloader.dataset.data_root': f'{data}/' for split in ('train', 'val', 'test')}
    options.update({
        'image_size': crop, 'model.data_preprocessor.batch_augments.0.size': crop,
        'train_dataloader.dataset.pipeline.3.scale': crop, 'train_dataloader.dataset.pipeline.4.crop_size': crop,
        'val_dataloader.dataset.pipeline.1.scale': crop, 'test_dataloader.dataset.pipeline.1.scale': crop,
        'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2, 'default_hooks.checkpoint.interval': 2,
        'default_hooks.logger.interval': 1, 'randomness.seed': 0})
    instances = f'{data}/annotations/instances_val2017.json'
    for split in ('val', 'test'):
        if panoptic:
            options.update({f'{split}_evaluator.0.ann_file': f'{data}/annotations/panoptic_val2017.json',
                            f'{split}_evaluator.0.seg_prefix': f'{data}/annotations/panoptic_val2017/',
                            f'{split}_evaluator.1.ann_file': instances})
        else:
            options[f'{split}_evaluator.ann_file'] = instances
    return options


def cli(options: dict) -> list:
    """``--cfg-options`` arguments for ``options``."""
    def text(value):
        return f'({",".join(map(str, value))})' if isinstance(value, tuple) else str(value)
    return ['--cfg-options', *(f'{key}={text(value)}' for key, value in options.items())]


def tiny_cfg(tmp_path: Path, root: Path, data: str, panoptic: bool):
    """The loaded tiny child config with ``data_options`` merged, as mmdet's train.py merges them."""
    cfg = load_config(tiny_config(tmp_path, root, panoptic))
    cfg.merge_from_dict(data_options(data, panoptic))
    return cfg


def small_data(root: Path, panoptic: bool = False) -> str:
    data = str(root / ('coco_panoptic' if panoptic else 'coco'))
    generate_coco_instances(data, num_train=2, num_val=2, seed=3, progress=False, min_size=64, max_size=96,
                            obj_size=(24, 56), max_instances=3, panoptic=panoptic)
    return data


# ------------------------------------------------------------------------------------------------- optimizer
def backbone_norm_names(backbone: nn.Module) -> set:
    """Parameters of the backbone's normalization layers (by type: LayerNorm, BatchNorm, GroupNorm)."""
    norms = (nn.LayerNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm)
    return {f'{module_name}.{name}' for module_name, module in backbone.named_modules() if isinstance(module, norms)
            for name, _ in module.named_parameters(recurse=False)}


@pytest.mark.parametrize('path', M2F_CONFIGS, ids=lambda p: p.stem)
def test_optimizer_follows_the_swin_recipe_for_l2vit_names(path):
    """The Swin recipe's rules land on L2ViT's parameters: the backbone at 0.1x lr, every backbone norm (stem and
    LCM BatchNorms, downsampling, block and output LayerNorms) and the attention temperature without weight decay,
    the other backbone weights with it; the head's query and level embeddings without weight decay."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.optim import build_optim_wrapper
    register_all_modules()
    import mmdet_l2vit  # noqa: F401
    cfg = load_config(path)
    # The real arch (its parameter names are what the keys must match); a narrow head keeps the build quick.
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.norm_cfg = dict(type='BN', requires_grad=True)
    cfg.model.panoptic_head.pixel_decoder.encoder.num_layers = 1
    cfg.model.panoptic_head.transformer_decoder.num_layers = 1
    model = MODELS.build(cfg.model)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    base_lr, base_wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    group_of = {id(p): g for g in optimizer.param_groups for p in g['params']}
    norms = backbone_norm_names(model.backbone)
    assert any('local_mp.bn' in n for n in norms) and any('downsample_layers.0.proj.proj.1' in n for n in norms)
    wrong = []
    for name, param in model.backbone.named_parameters():
        group = group_of[id(param)]
        no_decay = name in norms or name.endswith('attn.temperature')
        expected = (base_lr * 0.1, 0.0 if no_decay else base_wd)
        if (pytest.approx(expected[0]) != group['lr']) or (pytest.approx(expected[1]) != group['weight_decay']):
            wrong.append(f'{name}: lr {group["lr"]}, wd {group["weight_decay"]}, expected {expected}')
    assert not wrong, f'{len(wrong)} backbone parameters misplaced, e.g. {wrong[:5]}'
    for name, param in model.panoptic_head.named_parameters():
        if any(key in name for key in ('query_embed', 'query_feat', 'level_embed')):
            assert group_of[id(param)]['weight_decay'] == 0.0 and group_of[id(param)]['lr'] == base_lr, name


# ------------------------------------------------------------------------------------------------------- AMP
def test_one_bf16_autocast_iteration_gives_finite_losses_and_gradients(tmp_path):
    """One training iteration of the instance config (tiny) under CPU bf16 autocast: the pixel decoder's
    multi-scale deformable attention included, every loss and every gradient is finite."""
    from mmdet.registry import DATASETS, MODELS
    from mmdet.utils import register_all_modules
    from mmengine.dataset import pseudo_collate
    register_all_modules()
    import mmdet_l2vit  # noqa: F401
    data = small_data(tmp_path)
    cfg = tiny_cfg(tmp_path, INSTANCE_T, data, panoptic=False)
    cfg.model.backbone.norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs a process group
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[0], dataset[1]])
    dtypes = []  # what the backbone and the pixel decoder compute in
    for module in (model.backbone, model.panoptic_head.pixel_decoder):
        module.register_forward_hook(lambda m, i, out: dtypes.extend(t.dtype for t in out if torch.is_tensor(t)))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        inputs = model.data_preprocessor(batch, True)
        losses = model(**inputs, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.bfloat16 in dtypes, dtypes
    assert all(torch.isfinite(v).all() for v in losses.values()), losses
    total.backward()
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, bad[:5]
    assert sum(p.grad is not None for p in model.backbone.parameters()) > 0


# ----------------------------------------------------------------------------------------------------- traps
def test_a_dict_arch_in_a_child_merges_with_the_roots(tmp_path):
    """The root's arch is 'tiny' written out as a dict: a child's dict arch, whole or partial, merges without
    ``_delete_`` (over the string, mmengine raises "cannot inherit from base")."""
    from l2vit.models.backbone import L2ViT
    child = tmp_path / 'deeper.py'
    child.write_text(f'_base_ = {str(INSTANCE_T)!r}\nmodel = dict(backbone=dict(arch=dict(depths=[2, 2, 18, 2])))\n')
    arch = L2ViT.parse_arch(load_config(child).model.backbone.arch)
    assert arch == L2ViT.parse_arch('small')
    assert L2ViT.parse_arch(load_config(M2F_DIR / 'mask2former_l2vit-t_8xb2-lsj-50e_coco.py').model.backbone.arch) \
        == L2ViT.parse_arch('tiny')


def trap_options(data: str) -> list:
    """The tiny instance run with two traps: image_size restated alone (crop and padding stay at 1024) and the class
    count changed without its class weights."""
    options = {k: v for k, v in data_options(data, panoptic=False).items() if k == 'image_size' or 'pipeline' not in k
               and 'batch_augments' not in k}
    return cli(options)


def assert_names_both_traps(output: str) -> None:
    assert 'class_weight has 81 weights' in output and 'class_weight=[1.0,1.0,1.0,1.0,0.1]' in output, output[-3000:]
    assert 'image_size is (64, 64)' in output and 'batch_augments.0.size=(64,64)' in output \
        and 'pipeline.4.crop_size=(64,64)' in output, output[-3000:]


@pytest.mark.slow
def test_class_weights_and_image_size_refused_by_mmdet_train_tool(tmp_path):
    """mmdet's packaged train.py: the config's ConfigCheckHook stops the run before the first iteration, naming
    both problems and their --cfg-options fixes (without it: mmdet's "weight tensor should be defined either for
    all 5 classes" mid-iteration, and a silent 1024 crop)."""
    data = small_data(tmp_path)
    config = tiny_config(tmp_path, INSTANCE_T, panoptic=False, classes_fixed=False)
    result = tool(packaged_tool('mmdet', 'train.py'), config, '--work-dir', str(tmp_path / 'work'),
                  *trap_options(data), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and 'ConfigCheckHook' in output, output[-3000:]
    assert_names_both_traps(output)


def test_class_weights_and_image_size_refused_by_our_preflight(tmp_path):
    data = small_data(tmp_path)
    config = tiny_config(tmp_path, INSTANCE_T, panoptic=False, classes_fixed=False)
    result = tool('tools/train.py', config, '--work-dir', str(tmp_path / 'work'), *trap_options(data), check=False)
    assert result.returncode == 2 and 'error:' in result.stderr, result.stderr[-3000:]
    assert_names_both_traps(result.stderr)


def test_panoptic_config_without_the_panoptic_files(tmp_path):
    """COCO without the panoptic export: our preflight names the missing panoptic annotation file and PNG folder."""
    data = small_data(tmp_path)  # instances only
    config = tiny_config(tmp_path, PANOPTIC_T, panoptic=True)
    result = tool('tools/train.py', config, '--work-dir', str(tmp_path / 'work'), *cli(data_options(data, True)),
                  check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'panoptic_train2017.json (train_dataloader.dataset.ann_file)' in result.stderr, result.stderr[-3000:]
    assert 'panoptic_annotations_trainval2017.zip' in result.stderr, result.stderr[-3000:]
    # The JSON there but not its PNGs.
    panoptic = small_data(tmp_path / 'no_pngs', panoptic=True)
    shutil.rmtree(osp.join(panoptic, 'annotations', 'panoptic_train2017'))
    result = tool('tools/train.py', config, '--work-dir', str(tmp_path / 'work2'),
                  *cli(data_options(panoptic, True)), check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'panoptic_train2017/ (train_dataloader.dataset.data_prefix.seg)' in result.stderr, result.stderr[-3000:]


def test_panoptic_class_counts_checked_against_the_panoptic_dataset(tmp_path):
    """A panoptic head's num_things_classes / num_stuff_classes against the thing and stuff classes of mmdet's
    CocoPanopticDataset (its own metainfo parse): the wrong ones named with their fix, the matching ones accepted (a
    wrong split would silently turn things into stuff in the fusion, or stop the loss)."""
    from mmdet.datasets import CocoPanopticDataset

    from l2vit.apis.checks import num_classes_problems
    from l2vit.apis.config_tree import run_inputs
    meta = CocoPanopticDataset._load_metainfo(panoptic_metainfo())
    cfg = load_config(tiny_config(tmp_path, PANOPTIC_T, panoptic=True))
    assert num_classes_problems(run_inputs(cfg, ['train_dataloader']), meta) == []
    cfg.merge_from_dict({'model.panoptic_head.num_things_classes': 3,
                         'model.panoptic_fusion_head.num_stuff_classes': 2})
    problems = num_classes_problems(run_inputs(cfg, ['train_dataloader']), meta)
    assert len(problems) == 1, problems
    assert 'model.panoptic_head.num_things_classes is 3, model.panoptic_fusion_head.num_stuff_classes is 2' in \
        problems[0] and '4 thing_classes (ellipse, rectangle, triangle, star) and 1 stuff_classes (' in problems[0] \
        and '--cfg-options model.panoptic_head.num_things_classes=4 model.panoptic_fusion_head.num_stuff_classes=1' \
        in problems[0], problems
    # An instance dataset has no stuff: num_stuff_classes must be 0 there.
    instance = load_config(tiny_config(tmp_path, INSTANCE_T, panoptic=False))
    assert num_classes_problems(run_inputs(instance, ['train_dataloader']), metainfo()) == []
    instance.merge_from_dict({'model.panoptic_head.num_stuff_classes': 1})
    assert 'model.panoptic_head.num_stuff_classes is 1, but the dataset' in \
        num_classes_problems(run_inputs(instance, ['train_dataloader']), metainfo())[0]


@pytest.mark.slow
def test_class_count_that_does_not_match_the_data_refused_by_mmdet_train_tool(tmp_path):
    """mmdet's packaged train.py: the config's ConfigCheckHook compares the head's class counts with the training
    dataset the Runner built (our tools' preflight does the same before building anything)."""
    data = small_data(tmp_path)
    config = tiny_config(tmp_path, INSTANCE_T, panoptic=False)
    options = dict(data_options(data, panoptic=False), **{
        'model.panoptic_head.num_things_classes': 3, 'model.panoptic_fusion_head.num_things_classes': 3,
        'model.panoptic_head.loss_cls.class_weight': '[1.0,1.0,1.0,0.1]'})
    result = tool(packaged_tool('mmdet', 'train.py'), config, '--work-dir', str(tmp_path / 'work'), *cli(options),
                  check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and 'ConfigCheckHook' in output, output[-3000:]
    assert 'model.panoptic_head.num_things_classes is 3, model.panoptic_fusion_head.num_things_classes is 3, but ' \
        'the dataset (train_dataloader.dataset, CocoDataset) has 4 classes (ellipse, rectangle, triangle, star)' \
        in output, output[-3000:]
    assert not (tmp_path / 'work' / 'iter_1.pth').exists()


# ------------------------------------------------------------------------------- mmdet's own tools, end to end
@pytest.fixture(scope='module')
def instance_run(tmp_path_factory):
    """The tiny instance config trained 2 iterations (validated at the second) by mmdet's packaged train.py."""
    tmp = tmp_path_factory.mktemp('m2f_instance')
    data = small_data(tmp)
    config = tiny_config(tmp, INSTANCE_T, panoptic=False)
    options = cli(data_options(data, panoptic=False))
    result = tool(packaged_tool('mmdet', 'train.py'), config, '--work-dir', str(tmp / 'work'), *options)
    return dict(tmp=tmp, config=config, options=options, checkpoint=str(tmp / 'work' / 'iter_2.pth'),
                image=osp.join(data, 'val2017', '000000000001.jpg'), output=result.stdout + result.stderr)


def metric(output: str, name: str) -> float:
    found = re.findall(rf'{name}: (-?\d+\.\d+)', output)
    assert found, f'no {name} in:\n{output[-3000:]}'
    return float(found[-1])


@pytest.mark.slow
def test_instance_config_through_mmdet_train_and_test_tools(instance_run):
    """mmdet's train.py validates (bbox and segm mAP) and test.py evaluates the checkpoint it wrote."""
    for name in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert -1.0 <= metric(instance_run['output'], name) <= 1.0
    result = tool(packaged_tool('mmdet', 'test.py'), instance_run['config'], instance_run['checkpoint'],
                  '--work-dir', str(instance_run['tmp'] / 'test'), *instance_run['options'])
    for name in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert -1.0 <= metric(result.stdout + result.stderr, name) <= 1.0


@pytest.mark.slow
def test_instance_config_through_det_inferencer(instance_run, tmp_path):
    run_script(tmp_path, 'm2f_inferencer', f'''
from mmdet.apis import DetInferencer
inferencer = DetInferencer(model={instance_run['config']!r}, weights={instance_run['checkpoint']!r}, device='cpu',
                           show_progress=False)
result = inferencer({instance_run['image']!r}, no_save_vis=True, pred_score_thr=0.0, return_datasamples=True)
pred = result['predictions'][0].pred_instances
assert inferencer.model.dataset_meta['classes'] == ('ellipse', 'rectangle', 'triangle', 'star')
assert len(pred) == 10 and pred.masks.shape[0] == 10 and pred.bboxes.shape == (10, 4), pred
assert ((0 <= pred.labels) & (pred.labels < 4)).all()
''', 'mmdet_l2vit')


@pytest.mark.slow
@needs_panopticapi
def test_panoptic_config_through_mmdet_train_and_test_tools(tmp_path):
    """Panoptic: mmdet's train.py trains on the synthetic panoptic export and validates PQ (with bbox/segm mAP of
    the instance output); test.py evaluates the checkpoint."""
    data = small_data(tmp_path, panoptic=True)
    config = tiny_config(tmp_path, PANOPTIC_T, panoptic=True)
    options = cli(data_options(data, panoptic=True))
    result = tool(packaged_tool('mmdet', 'train.py'), config, '--work-dir', str(tmp_path / 'work'), *options)
    assert 0.0 <= metric(result.stdout + result.stderr, 'coco_panoptic/PQ') <= 100.0
    result = tool(packaged_tool('mmdet', 'test.py'), config, str(tmp_path / 'work' / 'iter_2.pth'), '--work-dir',
                  str(tmp_path / 'test'), *options)
    output = result.stdout + result.stderr
    assert 0.0 <= metric(output, 'coco_panoptic/PQ') <= 100.0 and -1.0 <= metric(output, 'coco/segm_mAP') <= 1.0


@pytest.mark.skipif(has_panopticapi(), reason='panopticapi is installed')
def test_panoptic_config_without_panopticapi_says_how_to_install_it(tmp_path):
    """panopticapi is not on the package index: our preflight says what needs it and how to install it, before
    anything is loaded (mmdet's own tools stop in LoadPanopticAnnotations with its install line)."""
    data = small_data(tmp_path, panoptic=True)
    config = tiny_config(tmp_path, PANOPTIC_T, panoptic=True)
    result = tool('tools/train.py', config, '--work-dir', str(tmp_path / 'work'), *cli(data_options(data, True)),
                  check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'panopticapi is not installed' in result.stderr and 'val_evaluator.0 (CocoPanopticMetric)' in \
        result.stderr and 'pip install git+https://github.com/cocodataset/panopticapi' in result.stderr, \
        result.stderr[-3000:]
    assert 'Fix the file' not in result.stderr, result.stderr[-3000:]


# ----------------------------------------------------------------------------------- synthetic panoptic export
def test_synthetic_panoptic_export(tmp_path):
    """``panoptic=True`` adds the COCO panoptic files and changes none of the others; each PNG's segment ids (RGB,
    id = R + 256 G + 256^2 B) are exactly its segments_info: the annotated shapes' visible pixels (one "thing"
    segment per instance, same class) and one "background" stuff segment."""
    import cv2
    import numpy as np
    plain = generate_coco_instances(str(tmp_path / 'plain'), num_train=2, num_val=1, seed=5, progress=False)
    both = generate_coco_instances(str(tmp_path / 'both'), num_train=2, num_val=1, seed=5, progress=False,
                                   panoptic=True)
    for split in ('train', 'val'):
        assert Path(plain[split]['ann_file']).read_bytes() == Path(both[split]['ann_file']).read_bytes()
        for image in Path(plain[split]['img_dir']).iterdir():
            assert image.read_bytes() == (Path(both[split]['img_dir']) / image.name).read_bytes()
        assert 'panoptic_ann_file' not in plain[split]
        panoptic = json.loads(Path(both[split]['panoptic_ann_file']).read_text())
        instances = json.loads(Path(both[split]['ann_file']).read_text())
        assert [c['isthing'] for c in panoptic['categories']] == [1, 1, 1, 1, 0]
        assert panoptic['images'] == instances['images']
        for ann in panoptic['annotations']:
            bgr = cv2.imread(osp.join(both[split]['panoptic_seg_dir'], ann['file_name']), cv2.IMREAD_COLOR)
            rgb = bgr[..., ::-1].astype(np.int64)
            ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 ** 2 * rgb[..., 2]
            found = dict(zip(*np.unique(ids[ids > 0], return_counts=True)))
            assert found == {s['id']: s['area'] for s in ann['segments_info']}
            things = sorted(s['category_id'] for s in ann['segments_info'] if s['category_id'] <= 4)
            assert things == sorted(a['category_id'] for a in instances['annotations']
                                    if a['image_id'] == ann['image_id'])
            assert [s['category_id'] for s in ann['segments_info']].count(5) == 1
