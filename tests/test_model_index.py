"""The model zoo: model-index.yml and configs/*/metafile.yml (l2vit/model_zoo.py).

Every entry is checked against the config it names, loaded and built with the real libraries: arch, window size,
image size, schedule and precision that the name implies; the parameters recorded (the whole model, built); the
FLOPs recorded (tools/analysis/get_flops.py's count; the tiny classifier here, the rest in a slow test); the
weights URLs (the authors' release, the arch's file). The classifiers must be listed and built by mmpretrain's
``list_models``/``get_model``, and ``get_model(..., pretrained=True)`` must load the authors' file from the torch hub
cache (pre-filled here: no network).
"""
import argparse
import ast
import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
from functools import lru_cache
from pathlib import Path

import pytest
import torch
import yaml

from helpers import ROOT, load_config, packages_needed, randomize_, source_copy
from l2vit import model_zoo
from l2vit.models import L2ViT

pytest.importorskip('modelindex')  # mmpretrain's dependency, the format's reader (mim's too)
from modelindex.load_model_index import load  # noqa: E402

RELEASE = 'https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
FOLDERS = ('imagenet', 'mask_rcnn', 'cascade_rcnn', 'retinanet', 'upernet', 'dino', 'mask2former',
           'mask2former_ade20k')
ARCH_OF_LETTER = {'t': 'tiny', 's': 'small', 'b': 'base'}
FILE_ARCH = {'t': 'Tiny', 's': 'Small', 'b': 'Base'}
# What each library's configs train and evaluate on, and how the metafiles say it.
SCOPES = {
    'mmpretrain': dict(collection_data='ImageNet-1k', dataset_type='ImageNet', task='Image Classification'),
    'mmdet': dict(collection_data='COCO', dataset_type='CocoDataset'),  # CocoPanopticDataset for '-panoptic' names
    'mmseg': dict(collection_data='ADE20K', dataset_type='ADE20KDataset'),
}
# The authors' figures (their README's ImageNet-1K and ImageNet-22K tables, release v1.0; the paper's variants):
# top-1, and parameters/FLOPs to the two decimals that tools/analysis/get_flops.py prints for our configs.
AUTHORS = {
    'l2vit-t_in1k': dict(params_m=28.60, flops_g=4.71, top1=83.1),
    'l2vit-s_in1k': dict(params_m=50.20, flops_g=9.02, top1=84.1),
    'l2vit-b_in1k': dict(params_m=88.58, flops_g=15.86, top1=84.4),
    'l2vit-b_in21k-pre_in1k': dict(params_m=88.58, flops_g=15.86, top1=86.0),
    'l2vit-b_in21k-pre_in1k-384px': dict(params_m=88.58, top1=87.0),
}

INDEX = load(str(ROOT / 'model-index.yml'))
ENTRIES = {m.name: m.full_model for m in INDEX.models}  # with the collection's fields merged in
CLASSIFIERS = [m.name for m in load(model_zoo.CLASSIFIER_METAFILE).models]


def _config_path(entry) -> Path:
    return ROOT / entry.config


def _skip_if_unavailable(entry) -> None:
    missing = [p for p in packages_needed(_config_path(entry)) if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f'{entry.config} needs {missing}')


def _letter(name: str) -> str:
    match = re.search(r'l2vit-([tsb])[_-]', name)
    assert match, f'{name}: no l2vit-{{t,s,b}} in the name'
    return match.group(1)


def _metadata(entry) -> dict:
    return dict(entry.metadata.data)


def _techniques(entry) -> list:
    return list(_metadata(entry).get('Training Techniques') or [])


def _get_flops_tool():
    """The module tools/analysis/get_flops.py counts with (classifier_test_size, DEFAULT_SHAPES, count, ...)."""
    from l2vit.analysis import flops
    return flops


def _model_cfg(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:  # as mmengine's Runner does (mmpretrain keeps it at top level)
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    return model_cfg


def _build(config: str) -> torch.nn.Module:
    """The config's model, built by its library's registry (no weights loaded: init_weights is not called)."""
    from mmengine.registry import MODELS, init_default_scope
    cfg = load_config(ROOT / config)
    init_default_scope(cfg.default_scope)
    return MODELS.build(_model_cfg(cfg))


@lru_cache(maxsize=None)
def _built_counts(key: str, config: str):
    """(whole-model parameters, backbone arch dict) of a built model; cached per distinct model config (see
    :func:`_model_key`), so 1x/3x/AMP twins are built once."""
    model = _build(config)
    assert isinstance(model.backbone, L2ViT), f'{config}: backbone is {type(model.backbone).__name__}'
    arch = dict(embed_dims=model.backbone.embed_dims, depths=model.backbone.depths, num_heads=model.backbone.num_heads)
    return sum(p.numel() for p in model.parameters()), arch


def _model_key(config: str) -> str:
    """The config's model, as text, without what neither parameters nor FLOPs depend on (drop path, init_cfg)."""
    model_cfg = _model_cfg(load_config(ROOT / config)).to_dict()
    model_cfg['backbone'].pop('drop_path_rate', None)
    model_cfg['backbone'].pop('init_cfg', None)
    return json.dumps(model_cfg, sort_keys=True, default=str)


def _counts(config: str):
    return _built_counts(_model_key(config), config)


def _assert_release_url(url: str, letter: str, what: str) -> None:
    assert isinstance(url, str) and url.startswith(RELEASE), f'{what}: {url!r} is not in the authors\' release'
    name = url[len(RELEASE):]
    assert re.fullmatch(r'L2ViT-(Tiny|Small|Base)-[\w.-]+\.pth', name), f'{what}: {name!r} is not a release .pth name'
    assert name.split('-')[1] == FILE_ARCH[letter], f'{what}: {name} is not the L2ViT-{FILE_ARCH[letter]} file'


# ---------------------------------------------------------------------------------------------------- the files
def test_model_index_loads_and_is_well_formed():
    assert model_zoo.RELEASE_URL == RELEASE
    # Found where the package is imported from (the checkout, for an editable install).
    assert os.path.realpath(model_zoo.MODEL_INDEX) == os.path.realpath(ROOT / 'model-index.yml')
    assert os.path.realpath(model_zoo.CLASSIFIER_METAFILE) == os.path.realpath(ROOT / 'configs/imagenet/metafile.yml')
    assert INDEX.check(silent=True) == []  # modelindex's own checks: names, collections, results
    # One metafile per config folder, each imported; no metafile left out.
    with open(ROOT / 'model-index.yml') as f:
        listed = yaml.safe_load(f)['Import']
    assert sorted(listed) == sorted(f'configs/{d}/metafile.yml' for d in FOLDERS), listed
    assert sorted(str(p.relative_to(ROOT)) for p in ROOT.glob('configs/*/metafile.yml')) == sorted(listed)
    names = [m.name for m in INDEX.models]
    assert len(names) == len(set(names)), 'duplicate model names'
    assert all(name == name.lower() for name in names), 'mmpretrain looks names up in lower case'
    for entry in ENTRIES.values():
        assert _config_path(entry).is_file(), f'{entry.name}: {entry.config} does not exist'
        assert entry.config.startswith('configs/'), f'{entry.name}: Config must be relative to the repository root'
        assert entry.in_collection, f'{entry.name}: In Collection missing'


def test_every_config_has_an_entry():
    named = {entry.config for entry in ENTRIES.values()}
    for folder in FOLDERS:
        for path in sorted((ROOT / 'configs' / folder).glob('*.py')):
            rel = str(path.relative_to(ROOT))
            assert rel in named, f'{rel} has no entry in configs/{folder}/metafile.yml'


@pytest.mark.parametrize('name', sorted(ENTRIES))
def test_entry_matches_its_config(name):
    entry = ENTRIES[name]
    _skip_if_unavailable(entry)
    cfg = load_config(_config_path(entry))
    scope = cfg.default_scope
    assert scope in SCOPES, f'{entry.config}: default_scope {scope!r}'
    meta = _metadata(entry)
    letter = _letter(name)
    backbone = cfg.model.backbone
    assert backbone.type in ('L2ViT', 'mmpretrain.L2ViT', 'mmdet.L2ViT', 'mmseg.L2ViT')
    assert L2ViT.parse_arch(backbone.arch) == L2ViT.arch_zoo[ARCH_OF_LETTER[letter]], f'{name}: arch {backbone.arch}'
    panoptic = name.endswith('-panoptic')
    assert cfg.test_dataloader.dataset.type == ('CocoPanopticDataset' if panoptic else SCOPES[scope]['dataset_type'])
    training_data = meta['Training Data']
    assert SCOPES[scope]['collection_data'] in ([training_data] if isinstance(training_data, str) else training_data)

    # Image size and window size the name implies.
    if scope == 'mmpretrain':
        px = re.search(r'-(\d+)px$', name)
        size = int(px.group(1)) if px else 224
        assert _get_flops_tool().classifier_test_size(cfg) == (size, size), f'{name}: test size'
    else:
        size = None
        crop = re.search(r'_(\d+)x(\d+)$', name)
        if crop:
            assert tuple(cfg.crop_size) == (int(crop.group(1)), int(crop.group(2)))
    assert backbone.get('window_size', 7) == (12 if size == 384 else 7), f'{name}: window size'

    # Schedule and precision.
    lsj = re.search(r'-lsj-(\d+)e_', name)  # Mask2Former: epochs as iterations of 16 images over COCO train2017
    if scope == 'mmdet' and lsj:
        assert meta['Epochs'] == int(lsj.group(1)) == round(cfg.train_cfg.max_iters * 16 / 118287)
    elif scope == 'mmdet':
        stated = re.search(r'-(\d+)e_', name)  # mmdet's own naming (DINO: 8xb2-12e)
        epochs = int(stated.group(1)) if stated else 12 if '_1x_' in name else 36
        assert stated or ('_1x_' in name) != ('3x' in name)
        assert meta['Epochs'] == epochs == cfg.train_cfg.max_epochs
    if scope == 'mmseg':
        iters = re.search(r'(\d+)k_', name)
        assert iters and cfg.train_cfg.max_iters == int(iters.group(1)) * 1000
    amp = cfg.optim_wrapper.get('type') == 'AmpOptimWrapper'
    assert amp == ('amp' in re.split(r'[_-]', name)) == ('Mixed Precision Training' in _techniques(entry)), name
    layer_decay = cfg.optim_wrapper.get('constructor') == 'LayerDecayOptimWrapperConstructor'
    assert layer_decay == ('Layer-wise Learning Rate Decay' in _techniques(entry)), f'{name}: layer decay'

    # Weights: the authors' files. Detection/segmentation: none trained, so no Weights and no Results; the ImageNet
    # weights the backbone starts from are the Pretrained metadata, and the config starts from them.
    if scope == 'mmpretrain':
        _assert_release_url(entry.weights, letter, f'{name} Weights')
        converted = entry.data.get('Converted From') or {}
        assert converted.get('Weights') == entry.weights
        assert ('in21k' in name) == ('ImageNet-21k' in training_data)
        if 'Pretrained' in meta:
            _assert_release_url(meta['Pretrained'], letter, f'{name} Pretrained')
        results = entry.results.data
        assert len(results) == 1 and results[0].task == SCOPES[scope]['task'] and results[0].dataset == 'ImageNet-1k'
    else:
        assert entry.weights is None, f'{name}: no trained weights exist; Weights must be absent'
        assert not entry.results, f'{name}: no trained weights exist; Results must be absent'
        pretrained = meta['Pretrained']
        _assert_release_url(pretrained, letter, f'{name} Pretrained')
        assert pretrained == ENTRIES[f'l2vit-{letter}_in1k'].weights
        ckpt = backbone.init_cfg.checkpoint
        if '://' in ckpt:
            assert ckpt == pretrained, f'{name}: the config starts from {ckpt}'
        else:
            assert os.path.basename(ckpt) in (os.path.basename(pretrained), f'l2vit-{letter}_in1k.pth'), ckpt


@pytest.mark.parametrize('name', sorted(ENTRIES))
def test_parameters_match_the_built_model(name):
    entry = ENTRIES[name]
    _skip_if_unavailable(entry)
    params, arch = _counts(entry.config)
    assert arch == L2ViT.arch_zoo[ARCH_OF_LETTER[_letter(name)]]
    assert _metadata(entry)['Parameters'] == params, f'{name}: built model has {params} parameters'


def test_classifier_numbers_are_the_authors():
    assert sorted(AUTHORS) == sorted(CLASSIFIERS)
    for name, expected in AUTHORS.items():
        entry = ENTRIES[name]
        meta = _metadata(entry)
        assert round(meta['Parameters'] / 1e6, 2) == expected['params_m'], name
        if 'flops_g' in expected:
            assert round(meta['FLOPs'] / 1e9, 2) == expected['flops_g'], name
        assert entry.results.data[0].metrics == {'Top 1 Accuracy': expected['top1']}, name


def _tool_flops(config: str) -> int:
    """The whole model's FLOPs as tools/analysis/get_flops.py counts them (its own functions), at its default size."""
    return _tool_flops_of(_model_key(config), config)


@lru_cache(maxsize=None)
def _tool_flops_of(key: str, config: str) -> int:
    tool = _get_flops_tool()
    cfg = load_config(ROOT / config)
    model = _build(config).eval()
    scope = cfg.default_scope
    shape = (scope == 'mmpretrain' and tool.classifier_test_size(cfg)) or tool.DEFAULT_SHAPES[scope]
    flops, _, _ = tool.count(tool.whole_model_forward(model, scope, shape), (torch.randn(1, 3, *shape), ))
    return flops


def test_tiny_flops_are_the_tools_count():
    assert _metadata(ENTRIES['l2vit-t_in1k'])['FLOPs'] == _tool_flops('configs/imagenet/l2vit-t_in1k.py')


@pytest.mark.slow
@pytest.mark.parametrize('config', sorted({e.config for e in ENTRIES.values() if 'FLOPs' in _metadata(e)} -
                                          {'configs/imagenet/l2vit-t_in1k.py'}))
def test_flops_are_the_tools_count(config):
    entries = [e for e in ENTRIES.values() if e.config == config and 'FLOPs' in _metadata(e)]
    _skip_if_unavailable(entries[0])
    flops = _tool_flops(config)
    for entry in entries:
        assert _metadata(entry)['FLOPs'] == flops, f'{entry.name}: the tool counts {flops}'


# ---------------------------------------------------------------------------------------------------- mmpretrain
def test_mmpretrain_lists_and_builds_the_classifiers():
    mmpretrain = pytest.importorskip('mmpretrain')
    from mmpretrain.apis.model import ModelHub

    import mmpretrain_l2vit  # noqa: F401  (registers the model index)

    assert sorted(mmpretrain.list_models('l2vit*')) == sorted(CLASSIFIERS)
    assert 'l2vit-t_in1k' in CLASSIFIERS
    assert not any(ModelHub.has(n) for n in ENTRIES if n not in CLASSIFIERS), 'mmpretrain cannot build det/seg'
    # Idempotent: registering again changes nothing and does not raise.
    assert model_zoo.register_mmpretrain_models() is False
    assert sorted(mmpretrain.list_models('l2vit*')) == sorted(CLASSIFIERS)
    config = ModelHub.get('l2vit-t_in1k').config.filename
    assert os.path.realpath(config) == os.path.realpath(ROOT / 'configs' / 'imagenet' / 'l2vit-t_in1k.py')

    model = mmpretrain.get_model('l2vit-t_in1k')
    assert type(model).__name__ == 'ImageClassifier' and isinstance(model.backbone, L2ViT)
    assert model.backbone.embed_dims == [96, 192, 384, 768] and model.backbone.depths == [2, 2, 6, 2]
    assert sum(p.numel() for p in model.parameters()) == _metadata(ENTRIES['l2vit-t_in1k'])['Parameters']
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def _official_keys(arch: str):
    rows = (ROOT / 'tests' / 'data' / f'official_{arch}_keys.tsv').read_text().splitlines()
    return {key: tuple(ast.literal_eval(shape)) for key, shape in (r.split('\t') for r in rows if r and r[0] != '#')}


def test_get_model_pretrained_loads_the_release_file_from_the_hub_cache(tmp_path, monkeypatch):
    """``get_model(name, pretrained=True)`` reads the entry's Weights URL; with the file already in the torch hub
    cache (as after a first download, or copied there on an offline machine) nothing is downloaded, and the authors'
    file is converted in memory: every weight lands where it belongs."""
    mmpretrain = pytest.importorskip('mmpretrain')
    import mmpretrain_l2vit  # noqa: F401

    source = randomize_(mmpretrain.get_model('l2vit-t_in1k'), seed=3)
    expected = source.state_dict()
    authors = {}
    for key, value in expected.items():  # our classifier's names -> the authors' (README, "Pretrained weights")
        if key.startswith('backbone.norm3.'):
            authors['norm.' + key[len('backbone.norm3.'):]] = value.clone()
        elif key.startswith('head.fc.'):
            authors['head.' + key[len('head.fc.'):]] = value.clone()
        else:
            assert key.startswith('backbone.'), key
            authors[key[len('backbone.'):]] = value.clone()
    assert {k: tuple(v.shape) for k, v in authors.items()} == _official_keys('tiny')  # the released layout
    url = ENTRIES['l2vit-t_in1k'].weights
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    cache = Path(torch.hub.get_dir()) / 'checkpoints'
    assert cache.parent.parent == tmp_path, 'torch.hub.set_dir() was called in this process; TORCH_HOME is ignored'
    cache.mkdir(parents=True)
    torch.save(dict(model=authors, model_ema={k: torch.zeros_like(v) for k, v in authors.items()}, epoch=299,
                    args=argparse.Namespace(model='L2ViT_Tiny', input_size=224)), cache / os.path.basename(url))

    model = mmpretrain.get_model('l2vit-t_in1k', pretrained=True)
    loaded = model.state_dict()
    assert loaded.keys() == expected.keys()
    wrong = [k for k in expected if not torch.equal(loaded[k], expected[k])]
    assert not wrong, f'not loaded from {url}: {wrong[:5]}'


# ---------------------------------------------------------------------------------------------------- packaging
def test_sdist_ships_the_model_zoo(tmp_path):
    """MANIFEST.in: an sdist carries model-index.yml, every metafile and every config they name (what an editable
    install of the unpacked sdist, and mim, read)."""
    src = source_copy(tmp_path / 'src')
    code = f'import setuptools.build_meta as b; print(b.build_sdist({str(tmp_path / "dist")!r}))'
    result = subprocess.run([sys.executable, '-c', code], cwd=src, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    archive = tmp_path / 'dist' / result.stdout.strip().splitlines()[-1]
    with tarfile.open(archive) as tar:
        names = {n.split('/', 1)[1] for n in tar.getnames() if '/' in n}
    wanted = {'model-index.yml', *(f'configs/{d}/metafile.yml' for d in FOLDERS), *(e.config for e in ENTRIES.values())}
    assert not wanted - names, f'missing from the sdist: {sorted(wanted - names)}'
