"""COCO annotation files without 'info' (and 'licenses'), as many annotation tools export them, train and evaluate;
the preflight, which loads and evaluates them with mmdet's and pycocotools' own code before the model is built,
stops on every entry key the pinned mmdet + pycocotools would stop on later, naming the file and the key.

pycocotools 2.0.10's ``COCO.loadRes`` raised ``KeyError: 'info'`` at the first evaluation; 2.0.11 (pinned in
requirements/constraints.txt) reads it with ``.get()``.
"""
import contextlib
import copy
import glob
import io
import json
import os.path as osp

import pytest
from mmengine.config import Config

from helpers import demo_data_options, run_main, tool
from l2vit.apis import checks
from l2vit.testing import generate_coco_instances, metainfo
from test_detection_e2e import DEMO_CONFIG

SPLITS = ['train_dataloader', 'val_dataloader']


def strip_info(path: str) -> dict:
    """Delete 'info', 'licenses' and the images' 'license' from a COCO file, in place; return its content."""
    with open(path) as f:
        data = json.load(f)
    data.pop('info')
    data.pop('licenses')
    for image in data['images']:
        image.pop('license', None)
    with open(path, 'w') as f:
        json.dump(data, f)
    return data


def make_tiny_coco(root: str, num_train: int, num_val: int, seed: int) -> str:
    """The synthetic shapes set with small images, without 'info' and 'licenses'."""
    generate_coco_instances(root, num_train=num_train, num_val=num_val, seed=seed, min_size=96, max_size=128,
                            obj_size=(24, 64), max_instances=3, progress=False)
    for split in ('train', 'val'):
        strip_info(osp.join(root, 'annotations', f'instances_{split}2017.json'))
    return root


# ---------------------------------------------------------------------------------------------------- the preflight
def minimal_coco() -> dict:
    """A complete COCO instance file, without 'info' and 'licenses' (entries carry only what mmdet needs)."""
    square = [[10.0, 10.0, 40.0, 10.0, 40.0, 40.0, 10.0, 40.0]]
    return dict(
        images=[dict(id=1, file_name='a.jpg', height=64, width=80), dict(id=2, file_name='b.jpg', height=50, width=50)],
        annotations=[
            dict(id=1, image_id=1, category_id=1, bbox=[10.0, 10.0, 30.0, 30.0], area=900.0, iscrowd=0,
                 segmentation=square),
            dict(id=2, image_id=2, category_id=2, bbox=[10.0, 10.0, 30.0, 30.0], area=900.0, iscrowd=0,
                 segmentation=square),
        ],
        categories=[dict(id=1, name='ellipse'), dict(id=2, name='rectangle')])


def config_for(ann_file: str, with_mask: bool = True, metric=('bbox', 'segm')) -> Config:
    """A config as the tools see it: COCO train and val datasets on ``ann_file`` and a CocoMetric on it."""
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask),
                dict(type='PackDetInputs')]
    dataset = dict(type='CocoDataset', data_root='', ann_file=ann_file, data_prefix=dict(img=''),
                   metainfo=dict(classes=('ellipse', 'rectangle')), pipeline=pipeline)
    return Config(dict(
        default_scope='mmdet',
        train_dataloader=dict(batch_size=2, dataset=dataset),
        val_dataloader=dict(batch_size=1, dataset=copy.deepcopy(dataset)),
        val_evaluator=dict(type='CocoMetric', ann_file=ann_file, metric=list(metric))))


def problems_of(tmp_path, data: dict, splits=SPLITS, **kwargs):
    path = str(tmp_path / 'instances.json')
    with open(path, 'w') as f:
        json.dump(data, f)
    return path, checks.preflight(config_for(path, **kwargs), splits)


def without(data: dict, collection: str, key: str, index=None) -> dict:
    data = copy.deepcopy(data)
    for i, entry in enumerate(data[collection]):
        if index is None or i == index:
            entry.pop(key, None)
    return data


def test_a_file_without_info_and_licenses_passes(tmp_path):
    _, problems = problems_of(tmp_path, minimal_coco())
    assert problems == []


@pytest.mark.parametrize('collection,key', [('categories', 'supercategory'), ('images', 'license'),
                                            ('images', 'coco_url'), ('images', 'date_captured')])
def test_optional_keys_are_not_reported(tmp_path, collection, key):
    data = minimal_coco()
    for entry in data[collection]:
        entry[key] = 'x'
    assert problems_of(tmp_path, without(data, collection, key))[1] == []


#: Every entry key the pinned mmdet 3.3.0 + pycocotools 2.0.11 read for a Mask R-CNN with bbox + segm evaluation
#: (the preflight has no such list: it asks the libraries; test_the_preflight_reports_exactly_what_mmdet_stops_on).
REQUIRED = [('images', 'id'), ('images', 'file_name'), ('images', 'height'), ('images', 'width'),
            ('annotations', 'id'), ('annotations', 'image_id'), ('annotations', 'category_id'),
            ('annotations', 'bbox'), ('annotations', 'area'), ('annotations', 'iscrowd'),
            ('annotations', 'segmentation'), ('categories', 'id'), ('categories', 'name')]
USERS = 'train_dataloader.dataset.ann_file, val_dataloader.dataset.ann_file, val_evaluator.ann_file'


@pytest.mark.parametrize('collection,key', REQUIRED)
def test_a_missing_key_is_named_with_its_fix(tmp_path, collection, key):
    path, problems = problems_of(tmp_path, without(minimal_coco(), collection, key, index=1))
    assert len(problems) == 1, problems
    message = problems[0]
    assert message.startswith(f'{path} ({USERS}): ')
    assert '--cfg-options' in message and 'val_evaluator.ann_file=/path/to/annotations.json' in message
    if key == 'segmentation':  # the pipeline's LoadAnnotations(with_mask=True) finds no mask for the instance
        assert "LoadAnnotations (train_dataloader.dataset.pipeline.1) stops on sample 1 (b.jpg): KeyError: 'mask'" \
            in message and 'train_dataloader.dataset.pipeline.1.with_mask=False' in message
    else:  # the library's KeyError, and which entries lack the key
        assert f"KeyError: '{key}'" in message
        assert f"1 of the 2 {collection} have no '{key}' (e.g. {collection}[1]" in message


def test_keys_only_the_evaluation_reads(tmp_path):
    """'iscrowd' is read by COCOeval only: a run without validation does not need it; one with says so."""
    data = without(minimal_coco(), 'annotations', 'iscrowd')
    assert problems_of(tmp_path, data, splits=['train_dataloader'])[1] == []
    message = problems_of(tmp_path, data)[1][0]
    assert "CocoMetric (val_evaluator) stops on it" in message and "KeyError: 'iscrowd'" in message
    assert "2 of the 2 annotations have no 'iscrowd'" in message


def test_box_only_data_needs_no_segmentation(tmp_path):
    data = without(minimal_coco(), 'annotations', 'segmentation')
    assert problems_of(tmp_path, data, with_mask=False, metric=('bbox', ))[1] == []
    # Masks loaded by the pipeline, or a 'segm' evaluation, need them; an empty list is no mask either.
    assert "LoadAnnotations (train_dataloader.dataset.pipeline.1) stops on sample 0" in \
        problems_of(tmp_path, data, metric=('bbox', ))[1][0]
    message = problems_of(tmp_path, data, with_mask=False)[1][0]
    assert "CocoMetric (val_evaluator) stops on it" in message and "KeyError: 'segmentation'" in message
    empty = minimal_coco()
    empty['annotations'][0]['segmentation'] = []
    assert "stops on sample 0 (a.jpg): KeyError: 'mask'" in problems_of(tmp_path, empty)[1][0]


def test_annotations_the_dataset_skips_need_fewer_keys(tmp_path):
    """CocoDataset skips an annotation marked 'ignore' before reading its box, and one whose box lies outside
    the image before reading its area, so neither stops it (the file is train-only here)."""
    data = minimal_coco()
    data['annotations'][0] = dict(id=1, image_id=1, category_id=1, ignore=1)
    data['annotations'][1].update(bbox=[60.0, 60.0, 10.0, 10.0])  # image 2 is 50x50
    del data['annotations'][1]['area']
    assert problems_of(tmp_path, data, splits=['train_dataloader'])[1] == []


def test_a_file_without_samples(tmp_path):
    path, problems = problems_of(tmp_path, dict(minimal_coco(), images=[], annotations=[]), splits=['train_dataloader'])
    assert problems == [f"{path} (train_dataloader.dataset.ann_file): mmdet's CocoDataset finds no samples in it of "
                        "the classes ('ellipse', 'rectangle'). Fix: --cfg-options train_dataloader.dataset."
                        'ann_file=/path/to/annotations.json (or the classes in its metainfo).']


def test_every_file_is_reported_at_once(tmp_path):
    train, val = str(tmp_path / 'train.json'), str(tmp_path / 'val.json')
    for path, data in ((train, without(minimal_coco(), 'images', 'height')),
                       (val, without(minimal_coco(), 'annotations', 'iscrowd'))):
        with open(path, 'w') as f:
            json.dump(data, f)
    cfg = config_for(val)
    cfg.train_dataloader.dataset.ann_file = train
    problems = checks.preflight(cfg, SPLITS)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f'{train} (train_dataloader.dataset.ann_file): ') and "'height'" in problems[0]
    assert problems[1].startswith(f'{val} (val_dataloader.dataset.ann_file, val_evaluator.ann_file): ')
    assert "'iscrowd'" in problems[1]


@pytest.fixture(scope='module')
def tiny_coco(tmp_path_factory):
    return make_tiny_coco(str(tmp_path_factory.mktemp('coco')), num_train=2, num_val=2, seed=4)


def mmdet_stops_on(root: str, ann_file: str, with_mask: bool, metric: str):
    """What loading the file with mmdet's CocoDataset (and the demo config's pipeline) and evaluating fake
    predictions with CocoMetric raise: the KeyError's key, or None."""
    import numpy as np
    import torch
    from mmdet.registry import DATASETS, METRICS
    from mmengine.registry import init_default_scope

    import mmdet_l2vit  # noqa: F401
    init_default_scope('mmdet')
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask)]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            dataset = DATASETS.build(dict(type='CocoDataset', data_root=root + '/', ann_file=ann_file,
                                          data_prefix=dict(img='val2017/'), metainfo=metainfo(), pipeline=pipeline))
            for i in range(len(dataset)):
                dataset[i]
            evaluator = METRICS.build(dict(type='CocoMetric', ann_file=ann_file, metric=metric))
            evaluator.dataset_meta = dict(classes=metainfo()['classes'])
            with open(osp.join(root, 'annotations', 'instances_val2017.json')) as f:
                images = json.load(f)['images']
            samples = []
            for image in images:
                mask = np.zeros((1, image['height'], image['width']), bool)
                mask[0, 5:30, 5:30] = True
                samples.append(dict(img_id=image['id'], ori_shape=(image['height'], image['width']),
                                    pred_instances=dict(bboxes=torch.tensor([[5., 5., 30., 30.]]),
                                                        scores=torch.tensor([0.9]), labels=torch.tensor([0]),
                                                        masks=torch.from_numpy(mask))))
            evaluator.process({}, samples)
            evaluator.evaluate(len(samples))
    except KeyError as err:
        return err.args[0]
    return None


@pytest.mark.parametrize('collection,key', REQUIRED + [('categories', 'supercategory'), (None, None)])
@pytest.mark.parametrize('with_mask,metric', [(True, 'segm'), (False, 'bbox')])
def test_the_preflight_reports_exactly_what_mmdet_stops_on(tiny_coco, tmp_path, collection, key, with_mask,
                                                           metric):
    """Ground truth: the pinned mmdet and pycocotools themselves, on the generated set without 'info'."""
    with open(osp.join(tiny_coco, 'annotations', 'instances_val2017.json')) as f:
        data = json.load(f)
    assert 'info' not in data and 'licenses' not in data
    if collection:
        data = without(data, collection, key)
    ann_file = str(tmp_path / 'instances_val2017.json')
    with open(ann_file, 'w') as f:
        json.dump(data, f)
    cfg = config_for(ann_file, with_mask=with_mask, metric=(metric, ))
    for split in SPLITS:
        cfg[split].dataset.update(data_root=tiny_coco + '/', data_prefix=dict(img='val2017/'),
                                  metainfo=metainfo())
    problems = checks.preflight(cfg, SPLITS)
    stopped_on = mmdet_stops_on(tiny_coco, ann_file, with_mask, metric)
    if stopped_on is None:
        assert problems == [], problems
    else:  # the same exception, raised before anything is built
        assert len(problems) == 1 and f'KeyError: {stopped_on!r}' in problems[0], (stopped_on, problems)


def test_train_stops_before_the_first_epoch(tiny_coco, tmp_path):
    """tools/train.py runs the check first: exit code 2, the key, the file and the fix, nothing trained."""
    with open(osp.join(tiny_coco, 'annotations', 'instances_val2017.json')) as f:
        data = without(json.load(f), 'annotations', 'iscrowd')
    bad = str(tmp_path / 'instances_val2017.json')
    with open(bad, 'w') as f:
        json.dump(data, f)
    work = str(tmp_path / 'work')
    result = run_main('tools/train.py', DEMO_CONFIG, '--work-dir', work, '--cfg-options', *demo_data_options(tiny_coco),
                      f'val_dataloader.dataset.ann_file={bad}', f'val_evaluator.ann_file={bad}', check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f'error: {bad} (val_dataloader.dataset.ann_file, val_evaluator.ann_file): ' in result.stderr
    assert "KeyError: 'iscrowd'" in result.stderr and "annotations have no 'iscrowd'" in result.stderr
    assert '--cfg-options val_dataloader.dataset.ann_file=/path/to/annotations.json' in result.stderr
    assert 'Traceback' not in result.stderr and not glob.glob(osp.join(work, '*.pth'))


# ----------------------------------------------------------------------------------------------- end to end, slow
def small_options(data: str):
    """The demo config, tiny: one epoch on small images, validated at its end."""
    return [*demo_data_options(data), 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
            'train_dataloader.dataset.pipeline.3.scale=(128,128)',
            'val_dataloader.dataset.pipeline.1.scale=(128,128)', 'test_dataloader.dataset.pipeline.1.scale=(128,128)']


def logged_metrics(work_dir: str) -> dict:
    """The COCO metrics mmengine logged for the run in ``work_dir``: validation in ``vis_data/scalars.json``
    (LocalVisBackend, one JSON object a line), testing in ``<timestamp>.json`` (LoggerHook)."""
    metrics = {}
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')) + \
            glob.glob(osp.join(work_dir, '*', '*.json')):
        with open(path) as f:
            for line in f:
                if line.strip():
                    metrics.update({k: v for k, v in json.loads(line).items() if k.startswith('coco/')})
    return metrics


@pytest.fixture(scope='module')
def coco_without_info(tmp_path_factory):
    return make_tiny_coco(str(tmp_path_factory.mktemp('coco_without_info')), num_train=8, num_val=4, seed=7)


@pytest.mark.slow
def test_our_tools_train_and_evaluate_it(coco_without_info, tmp_path):
    data = coco_without_info
    work = str(tmp_path / 'work')
    run_main('tools/train.py', DEMO_CONFIG, '--work-dir', work, '--cfg-options', *small_options(data))
    metrics = logged_metrics(work)
    assert 'coco/bbox_mAP' in metrics and 'coco/segm_mAP' in metrics, metrics

    metrics_file = str(tmp_path / 'metrics.json')
    run_main('tools/test.py', DEMO_CONFIG, osp.join(work, 'epoch_1.pth'), '--work-dir', work, '--metrics-out',
             metrics_file, '--cfg-options', *small_options(data))
    with open(metrics_file) as f:
        metrics = json.load(f)
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert key in metrics and -1.0 <= metrics[key] <= 1.0, metrics


def mmdet_tool(how: str, command: str, config: str, *args: str, checkpoint: str = None):
    """Run mmdet's own ``tools/<command>.py`` on ``config``: its packaged script (``mmdet/.mim/tools``), or through
    mim (``mim train mmdet CONFIG``, ``mim test mmdet CONFIG --checkpoint CKPT``; openmim, which make setup installs),
    which finds that script and runs it."""
    if how == 'mim':
        return tool('-m', 'mim', command, 'mmdet', config, *(['--checkpoint', checkpoint] if checkpoint else []),
                    *args)
    import mmdet
    script = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', f'{command}.py')
    return tool(script, config, *([checkpoint] if checkpoint else []), *args)


@pytest.mark.slow
@pytest.mark.parametrize('how', ['script', 'mim'])
def test_mmdets_own_tools_train_and_evaluate_it(coco_without_info, tmp_path, how):
    """mmdet's packaged tools, run directly or by mim: the config's custom_imports (mmdet_l2vit) is all they need,
    the checkpoint allow-list included."""
    data = coco_without_info
    work = str(tmp_path / 'work')
    mmdet_tool(how, 'train', DEMO_CONFIG, '--work-dir', work, '--cfg-options', *small_options(data))
    metrics = logged_metrics(work)
    assert 'coco/bbox_mAP' in metrics and 'coco/segm_mAP' in metrics, metrics

    test_work = str(tmp_path / 'test_work')
    result = mmdet_tool(how, 'test', DEMO_CONFIG, '--work-dir', test_work, '--cfg-options', *small_options(data),
                        checkpoint=osp.join(work, 'epoch_1.pth'))
    assert 'coco/bbox_mAP' in result.stdout + result.stderr
    assert 'coco/bbox_mAP' in logged_metrics(test_work)
