"""Wrong wiring between a config, its dataset and the backbone stops tools/train.py at start with a message that
names the problem and the fix (the other bad inputs are tested beside the code they concern; docs/reliability.md
lists them all)."""
import json

import pytest

from helpers import demo_data_options, run_main
from l2vit.testing import generate_coco_instances
from test_detection_e2e import DEMO_CONFIG


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    generate_coco_instances(root, num_train=2, num_val=1, seed=6, progress=False)
    return root


def train_error(coco: str, tmp_path, *options: str) -> str:
    result = run_main('tools/train.py', DEMO_CONFIG, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                      *demo_data_options(coco), *options, check=False)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
    return result.stderr


def test_neck_in_channels_that_do_not_match_the_backbone(coco, tmp_path):
    message = train_error(coco, tmp_path, 'model.neck.in_channels=[32,64,128,512]')
    assert 'model.neck.in_channels is [32, 64, 128, 512]' in message
    assert 'outputs [32, 64, 128, 256] channels' in message
    assert 'model.neck.in_channels="[32, 64, 128, 256]"' in message


def test_num_classes_that_do_not_match_the_dataset(coco, tmp_path):
    message = train_error(coco, tmp_path, 'model.roi_head.bbox_head.num_classes=80',
                          'model.roi_head.mask_head.num_classes=80')
    assert 'model.roi_head.bbox_head.num_classes is 80, model.roi_head.mask_head.num_classes is 80' in message
    assert 'has 4 classes (ellipse, rectangle, triangle, star)' in message
    assert '--cfg-options model.roi_head.bbox_head.num_classes=4 model.roi_head.mask_head.num_classes=4' in message


@pytest.mark.parametrize('content,reason', [
    ('{"a": 1}', "KeyError: 'categories'"),
    ('[1, 2]', "AssertionError: annotation file format <class 'list'> not supported"),
    ('images: not json', 'JSONDecodeError: Expecting value'),
])
def test_annotation_file_that_is_not_coco(coco, tmp_path, content, reason):
    # mmdet's own loading, run by the preflight: its exception (or an empty dataset), the file and the config key.
    bad = tmp_path / 'instances_train2017.json'
    bad.write_text(content)
    message = train_error(coco, tmp_path, f'train_dataloader.dataset.ann_file={bad}')
    assert f'{bad} (train_dataloader.dataset.ann_file): ' in message
    assert reason in message and '--cfg-options train_dataloader.dataset.ann_file=' in message


def test_a_real_coco_file_passes_the_checks(coco, tmp_path):
    # Control: the same checks accept the generated COCO file (so the failures above are about the input).
    with open(f'{coco}/annotations/instances_train2017.json') as f:
        assert {'images', 'annotations', 'categories'} <= set(json.load(f))
    run_main('tools/train.py', DEMO_CONFIG, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
             *demo_data_options(coco), 'train_cfg.max_epochs=1',
             'train_cfg.val_interval=2')  # one iteration, no validation
