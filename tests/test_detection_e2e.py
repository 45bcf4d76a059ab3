"""End to end through our tools, as a user runs them: train on a tiny generated COCO set, test the checkpoint, draw
predictions; and the clear errors when data or weights are missing."""
import json
import os
import os.path as osp

import pytest

from helpers import ROOT, demo_data_options, run_main, tool
from l2vit.testing import generate_coco_instances

DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo', 'mask-rcnn_l2vit-demo_synthetic.py')
ENTRY_CONFIG = osp.join(ROOT, 'configs', 'maskrcnn_l2vit.py')


@pytest.mark.slow
def test_train_then_test_then_draw(tmp_path):
    data = str(tmp_path / 'coco')
    generate_coco_instances(data, num_train=6, num_val=3, seed=1, progress=False)
    work = str(tmp_path / 'work')
    tool('tools/train.py', DEMO_CONFIG, '--work-dir', work, '--cfg-options', *demo_data_options(data),
         'train_cfg.max_epochs=1', 'train_cfg.val_interval=1')
    with open(osp.join(work, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    assert osp.isfile(checkpoint)

    # A checkpoint written by mmengine's Runner (message hub, numpy values) loads weights-only in our tools.
    metrics_file = str(tmp_path / 'metrics.json')
    tool('tools/test.py', DEMO_CONFIG, checkpoint, '--work-dir', work, '--metrics-out', metrics_file,
         '--cfg-options', *demo_data_options(data))
    with open(metrics_file) as f:
        metrics = json.load(f)
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert key in metrics and -1.0 <= metrics[key] <= 1.0, metrics

    pictures = tmp_path / 'pictures'
    result = tool('tools/demo/image_demo.py', osp.join(data, 'val2017'), DEMO_CONFIG, checkpoint, '--out-dir',
                  str(pictures), '--score-thr', '0.0')
    assert sorted(os.listdir(pictures)) == ['000000000001.png', '000000000002.png', '000000000003.png']
    assert 'detections' in result.stdout


def test_missing_coco_data_is_reported_before_anything_is_built(tmp_path):
    result = run_main(osp.join(ROOT, 'tools', 'train.py'), ENTRY_CONFIG, cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert 'the dataset is missing' in result.stderr
    assert 'Expected layout for COCO 2017' in result.stderr  # the expected layout
    assert 'annotations/instances_train2017.json' in result.stderr and 'val2017/' in result.stderr
    assert '--cfg-options train_dataloader.dataset.data_root=' in result.stderr  # how to point elsewhere
    assert 'Traceback' not in result.stderr


def test_missing_pretrained_weights_are_reported(tmp_path):
    data = str(tmp_path / 'coco')
    generate_coco_instances(data, num_train=2, num_val=1, seed=2, progress=False)
    # The configs name the authors' release URL; the offline route is a local file, which must then exist.
    result = run_main(osp.join(ROOT, 'tools', 'train.py'), ENTRY_CONFIG, '--cfg-options', *demo_data_options(data),
                      'model.backbone.init_cfg.checkpoint=checkpoints/l2vit-t_in1k.pth', cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert 'the dataset is missing' not in result.stderr
    assert 'pretrained weights not found: checkpoints/l2vit-t_in1k.pth' in result.stderr
    assert 'tools/convert_official.py' in result.stderr and 'model.backbone.init_cfg=None' in result.stderr
    assert 'Traceback' not in result.stderr


def test_missing_checkpoint_for_test_is_reported(tmp_path):
    result = run_main(osp.join(ROOT, 'tools', 'test.py'), ENTRY_CONFIG, str(tmp_path / 'nope.pth'), cwd=tmp_path,
                      check=False)
    assert result.returncode == 2
    assert 'checkpoint not found' in result.stderr and 'nope.pth' in result.stderr


@pytest.mark.slow
def test_mmdet_packaged_train_tool_runs_our_config(tmp_path):
    """`mim train mmdet CONFIG` runs mmdet's packaged tools/train.py; our configs work there unchanged."""
    import mmdet
    packaged = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    data = str(tmp_path / 'coco')
    generate_coco_instances(data, num_train=4, num_val=2, seed=3, progress=False)
    work = str(tmp_path / 'work')
    tool(packaged, DEMO_CONFIG, '--work-dir', work, '--cfg-options', *demo_data_options(data), 'train_cfg.max_epochs=1',
         'train_cfg.val_interval=1')
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))


class _Payload:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_tools_refuse_a_hostile_checkpoint(tmp_path):
    import torch
    data = str(tmp_path / 'coco')
    generate_coco_instances(data, num_train=2, num_val=1, seed=5, progress=False)
    marker = tmp_path / 'pwned'
    hostile = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {}, 'meta': _Payload(str(marker))}, hostile)
    runs = {
        'test.py': ['tools/test.py', DEMO_CONFIG, str(hostile), '--cfg-options', *demo_data_options(data)],
        'train.py load_from': ['tools/train.py', DEMO_CONFIG, '--work-dir', str(tmp_path / 'w1'), '--cfg-options',
                               *demo_data_options(data), f'load_from={hostile}'],
        'train.py --resume': ['tools/train.py', DEMO_CONFIG, '--work-dir', str(tmp_path / 'w2'), '--resume',
                              str(hostile), '--cfg-options', *demo_data_options(data)],
        'image_demo.py': ['tools/demo/image_demo.py', osp.join(data, 'val2017'), DEMO_CONFIG, str(hostile),
                          '--out-dir', str(tmp_path / 'pictures')],
    }
    for name, args in runs.items():
        result = run_main(*args, check=False)
        assert result.returncode != 0, name
        assert 'Refusing to load' in result.stderr, f'{name}: {result.stderr[-2000:]}'
        assert 'Traceback' not in result.stderr, name
    assert not marker.exists()
