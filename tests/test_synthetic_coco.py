"""The synthetic COCO-format dataset: exact COCO layout, consistent annotations, determinism, mmdet loading."""
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from helpers import run_main
from l2vit.testing import CLASSES, MissingDependencyError, generate_coco_instances, metainfo
from l2vit.testing.coco import _mask_polygons, _shape_vertices
from l2vit.testing.common import fill_polygon as _rasterise

NUM_TRAIN, NUM_VAL = 6, 3
SCRIPT = osp.join('tools', 'datasets', 'make_synthetic_coco.py')
SPLITS = (('train2017', 'instances_train2017.json', NUM_TRAIN), ('val2017', 'instances_val2017.json', NUM_VAL))


def generate(out_dir, seed=0, num_train=NUM_TRAIN, num_val=NUM_VAL):
    return generate_coco_instances(str(out_dir), num_train=num_train, num_val=num_val, seed=seed, progress=False)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp('synthetic_coco')
    return out_dir, generate(out_dir)


def read_pixels(root, split_dir):
    return {
        name: cv2.imread(osp.join(root, split_dir, name), cv2.IMREAD_UNCHANGED)
        for name in sorted(os.listdir(osp.join(root, split_dir)))
    }


def test_layout_and_summary(dataset):
    root, summary = dataset
    assert summary['classes'] == CLASSES
    for split_dir, ann_name, num in SPLITS:
        split = summary[split_dir[:-4]]
        assert split['num_images'] == num
        assert split['ann_file'] == osp.join(str(root), 'annotations', ann_name)
        assert split['num_instances'] >= num  # at least one shape per image
        with open(split['ann_file']) as f:
            data = json.load(f)
        assert set(data) == {'info', 'licenses', 'images', 'annotations', 'categories'}
        assert [(c['id'], c['name']) for c in data['categories']] == list(enumerate(CLASSES, 1))
        assert all(c['supercategory'] for c in data['categories'])
        assert len(data['images']) == num and len(data['annotations']) == split['num_instances']
        assert len({a['id'] for a in data['annotations']}) == len(data['annotations'])
        for image in data['images']:
            assert {'id', 'file_name', 'width', 'height'} <= set(image)
            assert osp.isfile(osp.join(str(root), split_dir, image['file_name']))
        for ann in data['annotations']:
            assert {'id', 'image_id', 'category_id', 'segmentation', 'area', 'bbox', 'iscrowd'} <= set(ann)
            assert ann['iscrowd'] == 0 and 1 <= ann['category_id'] <= len(CLASSES)
    assert metainfo()['classes'] == CLASSES and len(metainfo()['palette']) == len(CLASSES)


def test_annotations_match_their_masks(dataset):
    root, summary = dataset
    for split_dir, ann_name, _ in SPLITS:
        coco = COCO(osp.join(str(root), 'annotations', ann_name))
        for ann in coco.loadAnns(coco.getAnnIds()):
            assert isinstance(ann['segmentation'], list) and ann['segmentation']
            for polygon in ann['segmentation']:
                assert len(polygon) >= 6 and len(polygon) % 2 == 0
            mask = coco.annToMask(ann)
            image = coco.imgs[ann['image_id']]
            assert mask.shape == (image['height'], image['width'])
            ys, xs = np.nonzero(mask)
            tight = [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
            np.testing.assert_allclose(ann['bbox'], tight, atol=1)
            assert abs(ann['area'] - mask.sum()) <= max(2, 0.01 * mask.sum())
            assert ann['area'] >= 100


def test_images_have_the_stated_sizes(dataset):
    root, summary = dataset
    sizes = []
    for split_dir, ann_name, _ in SPLITS:
        with open(osp.join(str(root), 'annotations', ann_name)) as f:
            images = json.load(f)['images']
        for image in images:
            with open(osp.join(str(root), split_dir, image['file_name']), 'rb') as f:
                assert f.read(2) == b'\xff\xd8'  # JPEG
            pixels = cv2.imread(osp.join(str(root), split_dir, image['file_name']), cv2.IMREAD_COLOR)
            assert pixels.shape == (image['height'], image['width'], 3)
            sizes += [image['width'], image['height']]
    assert all(200 <= s <= 360 for s in sizes)
    assert any(s % 2 for s in sizes) and len(set(sizes)) > 3


def test_polygons_trace_the_mask():
    """The polygons of a visible mask rasterise (pycocotools) back to the same pixels, holes-free pieces each."""
    rng = np.random.default_rng(0)
    for label in range(len(CLASSES)):
        for size in (40, 90):
            pts = _shape_vertices(rng, label, size) + 60
            mask = _rasterise(pts, 123, 131)
            mask[:, 58:61] = 0  # cut in two pieces
            polygons = _mask_polygons(mask)
            assert len(polygons) >= 2
            decoded = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, 123, 131)))
            assert np.count_nonzero(decoded != mask) <= 0.01 * mask.sum()


def test_same_seed_same_bytes(dataset, tmp_path):
    root, _ = dataset
    again = generate(tmp_path / 'same', seed=0)
    other = generate(tmp_path / 'other', seed=1)
    for split_dir, ann_name, _ in SPLITS:
        first = open(osp.join(str(root), 'annotations', ann_name), 'rb').read()
        assert open(osp.join(again['out_dir'], 'annotations', ann_name), 'rb').read() == first
        assert open(osp.join(other['out_dir'], 'annotations', ann_name), 'rb').read() != first
        pixels = read_pixels(str(root), split_dir)
        same = read_pixels(again['out_dir'], split_dir)
        assert same.keys() == pixels.keys()
        assert all(np.array_equal(same[k], pixels[k]) for k in pixels)
        different = read_pixels(other['out_dir'], split_dir)
        assert not any(different[k].shape == pixels[k].shape and np.array_equal(different[k], pixels[k])
                       for k in pixels if k in different)


def test_occlusion_happens(tmp_path):
    summary = generate(tmp_path, seed=3, num_train=40, num_val=0)['train']
    assert summary['num_occluded'] > 0
    assert 0.3 <= summary['min_visible_fraction'] < 1
    assert all(n > 0 for n in summary['instances_per_class'].values())
    assert summary['num_instances'] > 2 * summary['num_images']


def test_mmdet_coco_dataset_loads_it(dataset):
    from mmdet.datasets import CocoDataset
    from mmdet.utils import register_all_modules
    register_all_modules()
    root, summary = dataset
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='PackDetInputs'),
    ]
    ds = CocoDataset(data_root=str(root),
                     ann_file='annotations/instances_val2017.json',
                     data_prefix=dict(img='val2017/'),
                     metainfo=metainfo(),
                     pipeline=pipeline)
    assert len(ds) == NUM_VAL and ds.metainfo['classes'] == CLASSES
    coco = COCO(summary['val']['ann_file'])
    for i in range(len(ds)):
        sample = ds[i]
        gt = sample['data_samples'].gt_instances
        img_id = sample['data_samples'].img_id
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))
        assert len(anns) == len(gt.bboxes) == len(gt.masks) == len(gt.labels) > 0
        image = coco.imgs[img_id]
        assert tuple(sample['inputs'].shape) == (3, image['height'], image['width'])
        assert gt.masks.masks.shape[1:] == (image['height'], image['width'])
        np.testing.assert_array_equal(np.sort(gt.labels.numpy()), np.sort([a['category_id'] - 1 for a in anns]))
        assert np.all(gt.masks.areas > 0)


def test_cli(tmp_path):
    out = run_main(SCRIPT, str(tmp_path), '--num-train', '2', '--num-val', '1', '--seed', '5', '--no-progress').stdout
    summary = json.loads(out)
    assert summary['train']['num_images'] == 2 and summary['val']['num_images'] == 1
    assert osp.isfile(osp.join(str(tmp_path), 'annotations', 'instances_val2017.json'))


def test_cli_defaults_and_bad_counts(tmp_path):
    usage = run_main(SCRIPT, '--help').stdout
    assert 'training images (default: 1000)' in usage and 'validation images (default: 200)' in usage
    refused = run_main(SCRIPT, str(tmp_path), '--num-val', '-1', check=False)
    assert refused.returncode == 2 and 'error: --num-train and --num-val must be >= 0' in refused.stderr
    assert not os.listdir(tmp_path)


def test_missing_pycocotools_is_named_before_anything_is_written(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'pycocotools.mask', None)  # `import pycocotools.mask` fails as if not installed
    with pytest.raises(ImportError, match=r'need pycocotools\b.*pip install "l2vit-openmmlab\[testing\]"') as info:
        generate(tmp_path, num_train=1, num_val=0)
    assert isinstance(info.value, MissingDependencyError)
    assert not os.listdir(tmp_path)
    # the tool says the same through its error exit, without a traceback
    result = run_main(SCRIPT, str(tmp_path), '--no-progress', check=False)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr
    assert result.stderr.startswith('error: ') and 'pip install "l2vit-openmmlab[testing]"' in result.stderr
    assert not os.listdir(tmp_path)
