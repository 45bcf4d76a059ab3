"""End to end through our tools, as a user runs them: train UperNet + L2ViT on a tiny generated ADE20K-layout set,
test the checkpoint (mIoU), draw the predictions."""
import json
import os
import os.path as osp

import pytest

from helpers import ROOT, run_main, tool
from l2vit.testing import generate_ade_semantic

DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo', 'l2vit-demo_upernet_synthetic.py')


def data_options(root: str):
    return [f'train_dataloader.dataset.data_root={root}/', f'val_dataloader.dataset.data_root={root}/',
            f'test_dataloader.dataset.data_root={root}/', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'train_dataloader.batch_size=2']


@pytest.mark.slow
def test_train_then_test_then_draw(tmp_path):
    data = str(tmp_path / 'ade')
    generate_ade_semantic(data, num_train=6, num_val=3, seed=1, progress=False)
    work = str(tmp_path / 'work')
    tool('tools/train.py', DEMO_CONFIG, '--work-dir', work, '--cfg-options', *data_options(data),
         'train_cfg.max_iters=4', 'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=4')
    with open(osp.join(work, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    assert osp.isfile(checkpoint) and checkpoint.endswith('iter_4.pth')

    # A checkpoint written by mmengine's Runner (message hub, numpy values) loads weights-only in our tools.
    metrics_file = str(tmp_path / 'metrics.json')
    tool('tools/test.py', DEMO_CONFIG, checkpoint, '--work-dir', work, '--metrics-out', metrics_file,
         '--cfg-options', *data_options(data))
    with open(metrics_file) as f:
        metrics = json.load(f)
    for key in ('mIoU', 'mAcc', 'aAcc'):
        assert key in metrics and 0.0 <= metrics[key] <= 100.0, metrics  # mmseg reports percentages

    pictures = tmp_path / 'pictures'
    result = tool('tools/demo/seg_demo.py', osp.join(data, 'images', 'validation'), DEMO_CONFIG, checkpoint,
                  '--out-dir', str(pictures), '--opacity', '0.6', '--max-images', '2')
    assert sorted(os.listdir(pictures)) == ['00000001.png', '00000002.png']
    assert result.stdout.count('->') == 2 and '%' in result.stdout

    import cv2
    drawn = cv2.imread(str(pictures / '00000001.png'), cv2.IMREAD_COLOR)
    image = cv2.imread(osp.join(data, 'images', 'validation', '00000001.jpg'), cv2.IMREAD_COLOR)
    assert drawn is not None and drawn.shape == image.shape  # the prediction drawn over the image, same size

    # A single image file works as well.
    single = tmp_path / 'single'
    run_main('tools/demo/seg_demo.py', osp.join(data, 'images', 'validation', '00000003.jpg'), DEMO_CONFIG,
             checkpoint, '--out-dir', str(single))
    assert os.listdir(single) == ['00000003.png']


def test_seg_demo_reports_missing_inputs(tmp_path):
    result = run_main('tools/demo/seg_demo.py', str(tmp_path / 'nope.jpg'), DEMO_CONFIG, str(tmp_path / 'x.pth'),
                      '--out-dir', str(tmp_path), check=False)
    assert result.returncode != 0 and 'image not found' in result.stderr
    (tmp_path / 'a.jpg').write_bytes(b'')
    result = run_main('tools/demo/seg_demo.py', str(tmp_path / 'a.jpg'), DEMO_CONFIG, str(tmp_path / 'x.pth'),
                      '--out-dir', str(tmp_path), check=False)
    assert result.returncode != 0 and 'checkpoint not found' in result.stderr


def test_seg_demo_refuses_an_opacity_out_of_range(tmp_path):
    (tmp_path / 'a.jpg').write_bytes(b'')
    (tmp_path / 'x.pth').write_bytes(b'')  # only their existence is checked before the opacity
    result = run_main('tools/demo/seg_demo.py', str(tmp_path / 'a.jpg'), DEMO_CONFIG, str(tmp_path / 'x.pth'),
                      '--out-dir', str(tmp_path), '--opacity', '1.5', check=False)
    assert result.returncode == 2 and 'error: --opacity must be between 0 and 1, got 1.5' in result.stderr
    assert 'Traceback' not in result.stderr
