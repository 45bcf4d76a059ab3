"""Every mmseg config under ``configs/`` trains and predicts with a small L2ViT, the ADE20K recipes match the spec,
``tools/test.py --tta`` switches to the config's test-time augmentation, and missing data or weights fail clearly.

The configs are found by glob and selected by their ``default_scope``, so configs added later are covered. Each
segmentor is built with the backbone shrunk (and the heads' ``in_channels`` following), then runs a ``loss`` and a
``predict`` step through its own data preprocessor. The recipe tests compare the loaded configs with the authors'
table (docs: /work/shared/reference/L2VIT_SPEC.md, "Training recipes").
"""
import copy
import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmseg')
from mmengine.config import Config  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

from helpers import (CONFIG_DIR, FOREIGN_BACKBONE_KEYS, RELEASED_WEIGHTS, ROOT, SMALL_ARCH,  # noqa: E402
                     config_differences, configs_of_scope, load_config, run_main)
from l2vit import L2ViT  # noqa: E402
from l2vit.apis import enable_tta, sync_bn_to_bn  # noqa: E402
from l2vit.errors import ToolError  # noqa: E402

IMAGE_SHAPE = (3, 64, 80)  # not a multiple of 32: the training batch is padded, predictions must be cropped back
BATCH = 2
ARCH_NAMES = {'t': 'tiny', 's': 'small', 'b': 'base'}
RECIPE_NAME = re.compile(r'^l2vit-(?P<size>[tsb])_upernet_8xb2-(?P<amp>amp-)?160k_ade20k-512x512\.py$')
TTA_RATIOS = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]  # the authors' multi-scale test, ratios of the (2048, 512) scale


# ---------------------------------------------------------------- finding and loading the configs
SEG_CONFIGS = configs_of_scope('mmseg')
IDS = [str(p.relative_to(CONFIG_DIR)) for p in SEG_CONFIGS]
RECIPES = [p for p in SEG_CONFIGS if RECIPE_NAME.match(p.name)]
RECIPE_IDS = [str(p.relative_to(CONFIG_DIR)) for p in RECIPES]
UPERNET_T = CONFIG_DIR / 'upernet' / 'l2vit-t_upernet_8xb2-160k_ade20k-512x512.py'


def _heads(model_cfg) -> list:
    """The decode head(s) and auxiliary head(s) of a segmentor config (either may be a list)."""
    heads = []
    for key in ('decode_head', 'auxiliary_head'):
        value = model_cfg.get(key)
        heads += list(value) if isinstance(value, (list, tuple)) else [value] if value else []
    return heads


def _head_widths(head, stage_widths: list) -> list:
    """The in_channels a head must have: the widths of the backbone outputs its in_index selects (a Mask2Former
    head reads them all)."""
    if str(head.get('type', '')).endswith('Mask2FormerHead'):
        return list(stage_widths)
    in_index = head.get('in_index', -1)
    indices = list(in_index) if isinstance(in_index, (list, tuple)) else [in_index]
    return [stage_widths[i] for i in indices]


def _output_widths(backbone_cfg, arch=None) -> list:
    """Widths of the backbone's outputs, in order (the stages of out_indices)."""
    widths = L2ViT.parse_arch(arch if arch is not None else backbone_cfg.get('arch', 'tiny'))['embed_dims']
    return [widths[i % len(widths)] for i in sorted(backbone_cfg.get('out_indices', (0, 1, 2, 3)))]


def _as_in_channels(head, widths: list):
    return widths if isinstance(head['in_channels'], (list, tuple)) else widths[0]


# ---------------------------------------------------------------- building a small segmentor
def _small_model_cfg(cfg: Config) -> dict:
    """The config's segmentor with a small L2ViT, no pretrained weights, BN, and a preprocessor for small inputs."""
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)  # what the Runner does
    backbone = model_cfg['backbone']
    small_widths = _output_widths(backbone, SMALL_ARCH)
    backbone.update(arch=copy.deepcopy(SMALL_ARCH), init_cfg=None, norm_cfg=dict(type='BN', requires_grad=True))
    for head in _heads(model_cfg):
        head['in_channels'] = _as_in_channels(head, _head_widths(head, small_widths))
    sync_bn_to_bn(model_cfg)  # SyncBN needs a process group in training mode; the tests run in one process
    # Pad the training batch to a multiple of 32 instead of the 512x512 crop size.
    model_cfg['data_preprocessor'].update(size=None, size_divisor=32)
    return model_cfg


def _build(model_cfg: dict):
    from mmseg.registry import MODELS

    import mmseg_l2vit  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(model_cfg)
        model.init_weights()
    return model


def _seg_inputs(num_classes: int, seed: int = 0) -> dict:
    """A batch as the dataloader gives it: uint8 CHW images and SegDataSamples with label maps (some ignored)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    shape = IMAGE_SHAPE[1:]
    for i in range(BATCH):
        inputs.append(torch.randint(0, 256, IMAGE_SHAPE, generator=g, dtype=torch.uint8))
        label = torch.randint(0, num_classes, (1, *shape), generator=g)
        label[:, :8] = 255  # the ignore index
        sample = SegDataSample(
            metainfo=dict(img_path=f'image_{i}.jpg', img_shape=shape, ori_shape=shape, pad_shape=shape))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


# ---------------------------------------------------------------- the configs
@pytest.mark.parametrize('path', SEG_CONFIGS, ids=IDS)
def test_backbone_is_clean_l2vit(path):
    """`_delete_=True` worked (no Swin/ResNet keys), every key is an L2ViT argument, and each head reads exactly the
    widths of the stages its in_index selects."""
    cfg = load_config(path)
    assert 'mmseg_l2vit' in cfg.get('custom_imports', {}).get('imports', []), f'{path.name}: custom_imports'
    assert cfg.custom_imports.get('allow_failed_imports') is False
    backbone = cfg.model.backbone.to_dict()
    assert backbone['type'] in ('L2ViT', 'mmseg.L2ViT'), f'{path.name}: backbone type {backbone["type"]}'
    leaked = FOREIGN_BACKBONE_KEYS & backbone.keys()
    assert not leaked, f'{path.name}: backbone keys {sorted(leaked)} leaked from the base config (_delete_=True?)'
    unknown = backbone.keys() - set(inspect.signature(L2ViT.__init__).parameters) - {'self', 'type'}
    assert not unknown, f'{path.name}: L2ViT does not take {sorted(unknown)}'
    widths = _output_widths(backbone)
    heads = _heads(cfg.model)
    assert heads, f'{path.name}: no decode head'
    for head in heads:
        expected = _as_in_channels(head, _head_widths(head, widths))
        in_channels = list(head.in_channels) if isinstance(head.in_channels, (list, tuple)) else head.in_channels
        assert in_channels == expected, (f'{path.name}: {head.type} in_channels {head.in_channels} != {expected}, '
                                         f'the widths its in_index {head.get("in_index")} selects')


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=IDS)
def test_loss_and_predict(path):
    """Loss mode gives finite decode (and auxiliary) losses; predict mode gives a label map per image at the input
    size; the config's optimizer wrapper builds for the model."""
    from mmengine.optim import build_optim_wrapper
    from mmseg.models import EncoderDecoder
    from mmseg.structures import SegDataSample

    cfg = load_config(path)
    model_cfg = _small_model_cfg(cfg)
    num_classes = model_cfg['decode_head']['num_classes']
    torch.manual_seed(0)
    model = _build(model_cfg)
    assert isinstance(model, EncoderDecoder) and isinstance(model.backbone, L2ViT)
    data = _seg_inputs(num_classes)

    model.train()
    batch = model.data_preprocessor(copy.deepcopy(data), True)
    assert batch['inputs'].shape == (BATCH, 3, 64, 96)  # padded to the size divisor
    losses = model(**batch, mode='loss')
    mask2former = model_cfg['decode_head']['type'].endswith('Mask2FormerHead')
    expected = (['decode.loss_cls', 'decode.loss_mask', 'decode.loss_dice'] if mask2former else ['decode.loss_ce']) + \
        (['aux.loss_ce'] if model.with_auxiliary_head else [])
    assert bool(model_cfg.get('auxiliary_head')) == model.with_auxiliary_head
    for key in expected:
        assert key in losses, f'{path.name}: no {key} in {sorted(losses)}'
        assert losses[key].numel() == 1 and torch.isfinite(losses[key]), f'{path.name}: {key} = {losses[key]}'
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total) and total.requires_grad
    total.backward()
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)

    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(copy.deepcopy(data), False), mode='predict')
    assert len(results) == BATCH
    for result in results:
        assert isinstance(result, SegDataSample)
        pred = result.pred_sem_seg.data
        assert tuple(pred.shape) == (1, *IMAGE_SHAPE[1:]), f'{path.name}: pred_sem_seg {tuple(pred.shape)}'
        assert 0 <= int(pred.min()) and int(pred.max()) < num_classes
        assert result.seg_logits.data.shape == (num_classes, *IMAGE_SHAPE[1:])

    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if optim_cfg.get('type') == 'AmpOptimWrapper' and not torch.cuda.is_available():
        optim_cfg.type = 'OptimWrapper'  # mmengine's AmpOptimWrapper refuses to build without a GPU
        optim_cfg.pop('loss_scale', None)
    with DefaultScope.overwrite_default_scope('mmseg'):
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
    lrs = [group['lr'] for group in optim_wrapper.optimizer.param_groups]
    assert math.isclose(max(lrs), cfg.optim_wrapper.optimizer.lr)


@pytest.mark.parametrize('path', RECIPES, ids=RECIPE_IDS)
def test_recipe_matches_spec(path):
    """The authors' ADE20K recipe: UperNet on all stages, auxiliary FCN on stage 2 (0.4), AdamW 6e-5 / wd 0.01,
    1500-iteration linear warm-up then poly to 160k, 2 images x 8 GPUs, 512x512 crops, drop path 0.3."""
    cfg = load_config(path)
    size, amp = RECIPE_NAME.match(path.name).group('size', 'amp')
    backbone = cfg.model.backbone
    assert backbone.arch == ARCH_NAMES[size]
    assert backbone.drop_path_rate == 0.3
    assert tuple(backbone.out_indices) == (0, 1, 2, 3)
    assert backbone.norm_cfg == dict(type='SyncBN', requires_grad=True)
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=RELEASED_WEIGHTS[size], prefix='backbone.')

    widths = L2ViT.parse_arch(ARCH_NAMES[size])['embed_dims']
    decode, aux = cfg.model.decode_head, cfg.model.auxiliary_head
    assert cfg.model.type == 'EncoderDecoder' and cfg.model.test_cfg.mode == 'whole'
    assert decode.type == 'UPerHead' and list(decode.in_index) == [0, 1, 2, 3]
    assert list(decode.in_channels) == widths and decode.num_classes == 150
    assert decode.loss_decode.loss_weight == 1.0
    assert aux.type == 'FCNHead' and aux.in_index == 2 and aux.in_channels == widths[2] and aux.num_classes == 150
    assert aux.loss_decode.loss_weight == 0.4

    optim = cfg.optim_wrapper
    assert optim.type == ('AmpOptimWrapper' if amp else 'OptimWrapper')
    assert optim.get('loss_scale') == ('dynamic' if amp else None)
    assert optim.optimizer == dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01)
    assert 'constructor' not in optim and 'paramwise_cfg' not in optim  # the authors' plain AdamW
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.by_epoch, warmup.begin, warmup.end) == ('LinearLR', False, 0, 1500)
    assert warmup.start_factor == 1e-6
    assert (poly.type, poly.by_epoch, poly.begin, poly.end) == ('PolyLR', False, 1500, 160000)
    assert poly.power == 1.0 and poly.eta_min == 0
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 160000

    assert cfg.train_dataloader.batch_size == 2 and cfg.auto_scale_lr.base_batch_size == 16
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[split].dataset
        assert dataset.type == 'ADE20KDataset' and dataset.data_root == 'data/ade/ADEChallengeData2016'
    pipeline = cfg.train_dataloader.dataset.pipeline
    crop = next(t for t in pipeline if t.type == 'RandomCrop')
    assert tuple(crop.crop_size) == (512, 512) and tuple(cfg.model.data_preprocessor.size) == (512, 512)
    resize = next(t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'Resize')
    assert tuple(resize.scale) == (2048, 512) and resize.keep_ratio  # the single-scale test

    # Multi-scale + flip: the authors' ratios of the single-scale size, both flips.
    assert cfg.tta_model.type == 'SegTTAModel'
    tta = next(t for t in cfg.tta_pipeline if t.type == 'TestTimeAug')
    scales, flips = tta.transforms[0], tta.transforms[1]
    assert [tuple(t.scale) for t in scales] == [(int(2048 * r), int(512 * r)) for r in TTA_RATIOS]
    assert all(t.type == 'Resize' and t.keep_ratio for t in scales)
    assert sorted(t.prob for t in flips) == [0.0, 1.0]


SIZE_VARIANTS = [p for p in RECIPES if RECIPE_NAME.match(p.name).group('size') != 't']


@pytest.mark.parametrize('path', SIZE_VARIANTS, ids=[str(p.relative_to(CONFIG_DIR)) for p in SIZE_VARIANTS])
def test_size_variant_differs_from_tiny_only_in_backbone(path):
    """S and B are the T config with another arch, weights and head widths."""
    parent = path.with_name(re.sub(r'^l2vit-[sb]_', 'l2vit-t_', path.name))
    assert parent.is_file(), f'{path.name}: no T config {parent.name}'
    assert re.search(rf'''_base_\s*=\s*\[?\s*['"]\./{re.escape(parent.name)}['"]''', path.read_text()), (
        f'{path.name} should inherit {parent.name}')
    allowed = {'checkpoint_file', 'model.backbone.arch', 'model.backbone.drop_path_rate',
               'model.backbone.init_cfg.checkpoint', 'model.decode_head.in_channels',
               'model.auxiliary_head.in_channels'}
    extra = config_differences(load_config(path), load_config(parent)) - allowed
    assert not extra, f'{path.name} differs from {parent.name} in {sorted(extra)}'


AMP_VARIANTS = [p for p in RECIPES if RECIPE_NAME.match(p.name).group('amp')]


@pytest.mark.parametrize('path', AMP_VARIANTS, ids=[str(p.relative_to(CONFIG_DIR)) for p in AMP_VARIANTS])
def test_amp_variant_differs_only_in_precision(path):
    fp32 = path.with_name(path.name.replace('-amp-', '-'))
    assert fp32.is_file(), f'{path.name}: no fp32 config {fp32.name}'
    extra = config_differences(load_config(path), load_config(fp32))
    extra -= {'optim_wrapper.type', 'optim_wrapper.loss_scale'}
    assert not extra, f'{path.name} differs from {fp32.name} in {sorted(extra)}'


def test_every_ade20k_config_follows_the_naming():
    """Configs outside demo/ and the top-level entry points carry the recipe in their name, so the tests above
    see them; T, S, B and the AMP T variant all exist (Mask2Former's, named as mmseg names them, have tests of their
    own: test_mask2former_ade20k.py)."""
    unnamed = [str(p.relative_to(CONFIG_DIR)) for p in SEG_CONFIGS
               if p.parent != CONFIG_DIR and p.parent.name not in ('demo', 'mask2former_ade20k')
               and not RECIPE_NAME.match(p.name)]
    assert not unnamed, f'configs the recipe tests cannot read: {unnamed}'
    found = {RECIPE_NAME.match(p.name).group('size', 'amp') for p in RECIPES}
    assert found == {('t', None), ('s', None), ('b', None), ('t', 'amp-')}


# ---------------------------------------------------------------- tools/test.py --tta
def test_tta_wraps_the_segmentor():
    """--tta: the test pipeline becomes the multi-scale + flip one and the model mmseg's SegTTAModel around the
    segmentor, which builds and merges the views of an image into one prediction at its size."""
    from mmseg.models import EncoderDecoder, SegTTAModel
    cfg = copy.deepcopy(load_config(UPERNET_T))
    segmentor = copy.deepcopy(cfg.model)
    enable_tta(cfg)
    assert cfg.model.type == 'SegTTAModel'
    assert cfg.model.module == segmentor
    assert cfg.model.data_preprocessor == segmentor.data_preprocessor
    assert cfg.test_dataloader.dataset.pipeline == load_config(UPERNET_T).tta_pipeline
    assert cfg.test_dataloader.batch_size == 1  # whole-image inference batches only images of one size

    tta_cfg = copy.deepcopy(cfg.model)
    tta_cfg.module = _small_model_cfg(Config(dict(model=segmentor)))
    tta_cfg.data_preprocessor = tta_cfg.module.data_preprocessor
    tta_model = _build(tta_cfg)
    assert isinstance(tta_model, SegTTAModel) and isinstance(tta_model.module, EncoderDecoder)
    assert isinstance(tta_model.module.backbone, L2ViT)

    # Two views of one image (as TestTimeAug packs them): as is, and flipped.
    data = _seg_inputs(num_classes=segmentor.decode_head.num_classes)
    image, sample = data['inputs'][0], data['data_samples'][0]
    flipped = sample.clone()
    flipped.set_metainfo(dict(flip=True, flip_direction='horizontal'))
    tta_model.eval()
    with torch.no_grad():
        results = tta_model.test_step(dict(inputs=[[image], [image.flip(-1)]], data_samples=[[sample], [flipped]]))
    assert len(results) == 1 and tuple(results[0].pred_sem_seg.data.shape) == (1, *IMAGE_SHAPE[1:])


def test_tta_without_tta_settings_fails_clearly(tmp_path):
    cfg = copy.deepcopy(load_config(UPERNET_T))
    cfg.tta_model = None
    with pytest.raises(ToolError, match='has no tta_model'):
        enable_tta(cfg)

    # Through the tool, with a config that has neither (like most detection and classification configs).
    config = tmp_path / 'no_tta.py'
    config.write_text("default_scope = 'mmseg'\nmodel = dict(type='EncoderDecoder')\n"
                      "test_dataloader = dict(dataset=dict(type='ADE20KDataset', pipeline=[]))\n")
    checkpoint = tmp_path / 'weights.pth'
    checkpoint.write_bytes(b'')  # only its existence is checked before --tta is applied
    result = run_main(ROOT / 'tools' / 'test.py', config, checkpoint, '--tta', cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert '--tta needs tta_model and tta_pipeline' in result.stderr
    assert 'has no tta_model and no tta_pipeline' in result.stderr and 'no_tta.py' in result.stderr
    assert 'Traceback' not in result.stderr


# ---------------------------------------------------------------- clear errors of tools/train.py
ADE_SPLITS = ('training', 'validation')


def _write_tiny_ade20k(root: Path) -> None:
    """ADEChallengeData2016's layout: JPEG images and PNG label maps (0 = ignored "other", 1..150 the classes)."""
    import cv2
    rng = np.random.default_rng(0)
    for split in ADE_SPLITS:
        (root / 'images' / split).mkdir(parents=True)
        (root / 'annotations' / split).mkdir(parents=True)
        for i in range(2):
            name = f'ADE_{split[:5]}_{i:08d}'
            image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            label = rng.integers(0, 151, (24, 32), dtype=np.uint8)
            assert cv2.imwrite(str(root / 'images' / split / f'{name}.jpg'), image)
            assert cv2.imwrite(str(root / 'annotations' / split / f'{name}.png'), label)


def test_missing_ade20k_data_is_reported_before_anything_is_built(tmp_path):
    result = run_main(ROOT / 'tools' / 'train.py', UPERNET_T, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'the dataset is missing' in result.stderr and 'data/ade/ADEChallengeData2016' in result.stderr
    assert 'Expected layout for ADE20K (ADEChallengeData2016)' in result.stderr
    assert 'images/training/*.jpg' in result.stderr and 'annotations/validation/*.png' in result.stderr
    assert '--cfg-options train_dataloader.dataset.data_root=' in result.stderr  # how to point elsewhere
    assert 'Traceback' not in result.stderr


def test_missing_pretrained_weights_are_reported(tmp_path):
    _write_tiny_ade20k(tmp_path / 'data' / 'ade' / 'ADEChallengeData2016')
    # The configs name the authors' release URL; the offline route is a local file, which must then exist.
    result = run_main(ROOT / 'tools' / 'train.py', UPERNET_T, '--cfg-options',
                      'model.backbone.init_cfg.checkpoint=checkpoints/l2vit-t_in1k.pth', cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'the dataset is missing' not in result.stderr
    assert 'pretrained weights not found: checkpoints/l2vit-t_in1k.pth' in result.stderr
    assert 'tools/convert_official.py' in result.stderr and 'model.backbone.init_cfg=None' in result.stderr
    assert 'Traceback' not in result.stderr
