"""The synthetic ADE20K-layout dataset: exact layout, label maps, sizes, determinism, mmseg loading."""
import importlib
import inspect
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest

from helpers import ROOT, run_main
from l2vit.testing import (SEG_CLASSES, SEG_PALETTE, MissingDependencyError, generate_ade_semantic,
                           generate_coco_instances, seg_metainfo)

NUM_TRAIN, NUM_VAL = 8, 4
K = len(SEG_CLASSES)
SPLITS = (('training', NUM_TRAIN), ('validation', NUM_VAL))


def generate(out_dir, seed=0, num_train=NUM_TRAIN, num_val=NUM_VAL, **kwargs):
    return generate_ade_semantic(str(out_dir), num_train=num_train, num_val=num_val, seed=seed, progress=False,
                                 **kwargs)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp('synthetic_ade')
    return str(out_dir), generate(out_dir)


def read_folder(folder):
    return {name: cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED) for name in sorted(os.listdir(folder))}


def test_layout_and_summary(dataset):
    root, summary = dataset
    assert sorted(os.listdir(root)) == ['annotations', 'images']
    assert summary['classes'] == SEG_CLASSES and summary['out_dir'] == osp.abspath(root)
    for folder, num in SPLITS:
        images = sorted(os.listdir(osp.join(root, 'images', folder)))
        labels = sorted(os.listdir(osp.join(root, 'annotations', folder)))
        assert len(images) == len(labels) == num
        assert all(name.endswith('.jpg') for name in images) and all(name.endswith('.png') for name in labels)
        assert [n[:-4] for n in images] == [n[:-4] for n in labels]  # same stems
        split = summary['train' if folder == 'training' else 'val']
        assert split['num_images'] == num
        assert split['img_dir'] == osp.join(root, 'images', folder)
        assert split['ann_dir'] == osp.join(root, 'annotations', folder)
        assert set(split['pixel_fraction']) == set(SEG_CLASSES)
        assert sum(split['pixel_fraction'].values()) + split['unlabelled_fraction'] == pytest.approx(1, abs=1e-3)
    meta = seg_metainfo()
    assert meta['classes'] == SEG_CLASSES and len(meta['palette']) == K == len(SEG_PALETTE)
    assert len({tuple(c) for c in meta['palette']}) == K


def test_label_maps_are_single_channel_ade_style(dataset):
    root, _ = dataset
    seen = set()
    for folder, _ in SPLITS:
        for name in sorted(os.listdir(osp.join(root, 'annotations', folder))):
            path = osp.join(root, 'annotations', folder, name)
            with open(path, 'rb') as f:
                assert f.read(8) == b'\x89PNG\r\n\x1a\n'
            label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            assert label.dtype == np.uint8 and label.ndim == 2  # one channel, 8 bits
            assert label.max() <= K
            seen |= set(np.unique(label).tolist())
            assert len(np.unique(label)) >= 2  # a scene, not a flat image
    assert seen == set(range(K + 1))  # 0 (unlabelled) and every class occur


def test_images_and_labels_have_the_same_varied_sizes(dataset):
    root, _ = dataset
    sizes = []
    for folder, _ in SPLITS:
        for name in sorted(os.listdir(osp.join(root, 'images', folder))):
            path = osp.join(root, 'images', folder, name)
            with open(path, 'rb') as f:
                assert f.read(2) == b'\xff\xd8'  # JPEG
            image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            label = cv2.imread(osp.join(root, 'annotations', folder, name[:-4] + '.png'), cv2.IMREAD_UNCHANGED)
            assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
            assert image.shape[:2] == label.shape
            sizes += list(label.shape)
    assert all(160 <= s <= 320 for s in sizes)
    assert any(s % 2 for s in sizes) and len(set(sizes)) > 4


def test_every_class_is_generated(tmp_path):
    summary = generate(tmp_path, seed=3, num_train=40, num_val=0, min_size=64, max_size=96)['train']
    assert all(n >= 3 for n in summary['images_per_class'].values()), summary['images_per_class']
    assert summary['pixel_fraction']['sky'] > 0.15 and summary['pixel_fraction']['grass'] > 0.1
    assert 0 < summary['unlabelled_fraction'] < 0.2
    assert summary['min_size'][0] >= 64 and summary['max_size'][1] <= 96


def test_same_seed_same_bytes(dataset, tmp_path):
    root, _ = dataset
    again = generate(tmp_path / 'same', seed=0)['out_dir']
    other = generate(tmp_path / 'other', seed=1)['out_dir']
    for kind in ('images', 'annotations'):
        for folder, _ in SPLITS:
            names = sorted(os.listdir(osp.join(root, kind, folder)))
            assert sorted(os.listdir(osp.join(again, kind, folder))) == names
            for name in names:
                with open(osp.join(root, kind, folder, name), 'rb') as f, \
                        open(osp.join(again, kind, folder, name), 'rb') as g:
                    assert f.read() == g.read()
            first, different = read_folder(osp.join(root, kind, folder)), read_folder(osp.join(other, kind, folder))
            assert not any(different[k].shape == first[k].shape and np.array_equal(different[k], first[k])
                           for k in first)


def test_an_image_does_not_depend_on_the_others(dataset, tmp_path):
    """Image i is a function of (seed, split, i) only: a shorter run writes the same first images."""
    root, _ = dataset
    fewer = generate(tmp_path, seed=0, num_train=2, num_val=1)['out_dir']
    for kind, folder, name in (('images', 'training', '00000002.jpg'), ('annotations', 'validation', '00000001.png')):
        with open(osp.join(root, kind, folder, name), 'rb') as f, open(osp.join(fewer, kind, folder, name), 'rb') as g:
            assert f.read() == g.read()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match='min_size'):
        generate(tmp_path, min_size=200, max_size=100)
    with pytest.raises(ValueError, match='non-negative'):
        generate(tmp_path, num_train=-1)


@pytest.mark.filterwarnings('ignore:`reduce_zero_label` will be deprecated')
def test_mmseg_dataset_and_pipeline_load_it(dataset):
    from mmseg.datasets import BaseSegDataset
    from mmseg.utils import register_all_modules
    register_all_modules()
    root, _ = dataset
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs'),
    ]
    ds = BaseSegDataset(data_root=root,
                        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                        metainfo=seg_metainfo(),
                        reduce_zero_label=True,
                        pipeline=pipeline)
    assert len(ds) == NUM_VAL and ds.metainfo['classes'] == SEG_CLASSES and ds.label_map is None
    seen = set()
    for i in range(len(ds)):
        sample = ds[i]
        raw = cv2.imread(ds.get_data_info(i)['seg_map_path'], cv2.IMREAD_UNCHANGED)
        labels = sample['data_samples'].gt_sem_seg.data.numpy()[0]
        assert tuple(sample['inputs'].shape) == (3, *raw.shape)
        assert labels.shape == raw.shape
        # reduce_zero_label: 0 -> 255 (ignored), c -> c - 1
        np.testing.assert_array_equal(labels, np.where(raw == 0, 255, raw.astype(np.int64) - 1))
        seen |= set(np.unique(labels).tolist())
    assert seen <= set(range(K)) | {255} and 255 in seen and len(seen) >= 4


def test_the_demo_config_reads_it(dataset):
    """The demo config's own dataset settings (type, metainfo, reduce_zero_label, train pipeline) work on it."""
    from mmengine.config import Config
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules()
    root, _ = dataset
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'demo', 'l2vit-demo_upernet_synthetic.py'))
    for split, num in (('train_dataloader', NUM_TRAIN), ('test_dataloader', NUM_VAL)):
        dataset_cfg = cfg[split].dataset
        dataset_cfg.data_root = root
        ds = DATASETS.build(dataset_cfg)
        assert len(ds) == num and ds.metainfo['classes'] == SEG_CLASSES
        assert [list(c) for c in ds.metainfo['palette']] == [list(c) for c in SEG_PALETTE]
        labels = ds[0]['data_samples'].gt_sem_seg.data.numpy()
        assert set(np.unique(labels).tolist()) <= set(range(K)) | {255}
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == K


def test_cli(tmp_path):
    out = run_main(osp.join('tools', 'datasets', 'make_synthetic_ade.py'), str(tmp_path), '--num-train', '2',
                   '--num-val', '1', '--seed', '5', '--no-progress').stdout
    summary = json.loads(out)
    assert summary['train']['num_images'] == 2 and summary['val']['num_images'] == 1
    assert osp.isfile(osp.join(str(tmp_path), 'annotations', 'validation', '00000001.png'))
    assert osp.isfile(osp.join(str(tmp_path), 'images', 'training', '00000002.jpg'))
    usage = run_main(osp.join('tools', 'datasets', 'make_synthetic_ade.py'), '--help').stdout
    assert 'training images (default: 600)' in usage and 'validation images (default: 100)' in usage


def test_both_generators_take_the_same_arguments():
    """One signature: the same leading parameters (name, order, kind, annotation), the generator's own ones after
    them, keyword-only."""
    coco = inspect.signature(generate_coco_instances).parameters
    ade = inspect.signature(generate_ade_semantic).parameters
    shared = ['out_dir', 'num_train', 'num_val', 'seed', 'progress', 'min_size', 'max_size', 'jpeg_quality']
    assert list(coco)[:len(shared)] == list(ade)[:len(shared)] == shared
    for name in shared:
        assert coco[name].kind == ade[name].kind and coco[name].annotation == ade[name].annotation, name
    for params in (coco, ade):
        kinds = [p.kind for p in params.values()]
        assert kinds[:5] == [inspect.Parameter.POSITIONAL_OR_KEYWORD] * 5
        assert set(kinds[5:]) == {inspect.Parameter.KEYWORD_ONLY}
    assert coco['seed'].default == ade['seed'].default == 0
    assert coco['progress'].default is ade['progress'].default is True
    assert coco['out_dir'].default is ade['out_dir'].default is inspect.Parameter.empty


def test_missing_opencv_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'cv2', None)  # `import cv2` fails as if OpenCV were not installed
    monkeypatch.delitem(sys.modules, 'l2vit.testing.ade')  # imported afresh below, put back afterwards
    with pytest.raises(MissingDependencyError, match=r'need opencv-python\b.*pip install "l2vit-openmmlab\[testing\]"'):
        importlib.import_module('l2vit.testing.ade')
    assert issubclass(MissingDependencyError, ImportError)
