"""Our tools print no warning the user cannot act on. Each tool under tools/ runs its quick path (its smallest
settings, on the synthetic data sets) in a fresh interpreter with Python's default warning filters, as a user runs
it, and any warning line in its output (Python's ``...Warning: ...``, a logged ``WARNING``) fails the test.

The known ones are filtered where they arise, by message and module or logger (``l2vit/quiet.py``, the ONNX
exporter's in ``l2vit/deploy/export.py``); the drawing demos build their visualizer without the config's
``LocalVisBackend`` (which, without a ``save_dir``, said ``Failed to add LocalVisBackend``: the PNGs are written by
the demo). The whole demos (``make demo`` ...) run these same tools, so their steps are covered here.
"""
import os
import os.path as osp
from pathlib import Path

import pytest

from helpers import ROOT, tool, warning_lines
from test_segmentation_e2e import data_options as seg_data_options

pytestmark = pytest.mark.slow

DET_CONFIG = osp.join(ROOT, 'configs', 'demo', 'mask-rcnn_l2vit-demo_synthetic.py')
SEG_CONFIG = osp.join(ROOT, 'configs', 'demo', 'l2vit-demo_upernet_synthetic.py')


def quiet(*args, cwd=ROOT):
    """Run the tool with the user's warning filters; it must succeed and print no warning."""
    result = tool(*args, cwd=cwd, warnings=True, timeout=900)
    noise = warning_lines(result.stdout + result.stderr)
    assert not noise, f'{args[0]} printed warnings:\n' + '\n'.join(noise)
    return result


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('quiet') / 'coco')
    quiet('tools/datasets/make_synthetic_coco.py', root, '--num-train', '2', '--num-val', '1', '--no-progress')
    return root


@pytest.fixture(scope='module')
def ade(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('quiet') / 'ade')
    quiet('tools/datasets/make_synthetic_ade.py', root, '--num-train', '2', '--num-val', '1', '--no-progress')
    return root


def coco_options(root: str):
    return [f'{split}_dataloader.dataset.data_root={root}/' for split in ('train', 'val', 'test')] + [
        f'{split}_evaluator.ann_file={root}/annotations/instances_val2017.json' for split in ('val', 'test')] + [
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'train_dataloader.batch_size=2', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'train_dataloader.dataset.pipeline.3.scale=(128,128)', 'val_dataloader.dataset.pipeline.1.scale=(128,128)',
        'test_dataloader.dataset.pipeline.1.scale=(128,128)']


@pytest.fixture(scope='module')
def trained(coco, tmp_path_factory):
    """tools/train.py: the demo detector, one epoch on the two training images (its checkpoint)."""
    work = str(tmp_path_factory.mktemp('quiet') / 'work')
    quiet('tools/train.py', DET_CONFIG, '--work-dir', work, '--cfg-options', *coco_options(coco))
    return osp.join(work, 'epoch_1.pth')


def test_make_synthetic_datasets(coco, ade):
    assert osp.isdir(osp.join(coco, 'val2017')) and osp.isdir(osp.join(ade, 'images', 'validation'))


def test_train_and_test(coco, trained, tmp_path):
    quiet('tools/test.py', DET_CONFIG, trained, '--work-dir', tmp_path / 'test', '--cfg-options',
          *coco_options(coco))


def test_image_demo(coco, trained, tmp_path):
    quiet('tools/demo/image_demo.py', osp.join(coco, 'val2017'), DET_CONFIG, trained, '--out-dir', tmp_path,
          '--max-images', '1', '--score-thr', '0.0')
    assert len(list(tmp_path.glob('*.png'))) == 1


def test_seg_train_and_demo(ade, tmp_path):
    """tools/train.py on the segmentation demo config (two iterations), then seg_demo.py with its checkpoint."""
    work = tmp_path / 'work'
    quiet('tools/train.py', SEG_CONFIG, '--work-dir', work, '--cfg-options', *seg_data_options(ade),
          'train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2')
    quiet('tools/demo/seg_demo.py', osp.join(ade, 'images', 'validation'), SEG_CONFIG, work / 'iter_2.pth',
          '--out-dir', tmp_path / 'out', '--max-images', '1')
    assert len(list((tmp_path / 'out').glob('*.png'))) == 1


def test_attention_maps(coco, trained, tmp_path):
    image = sorted(Path(coco, 'val2017').glob('*.jpg'))[0]
    quiet('tools/analysis/attention_maps.py', DET_CONFIG, trained, image, '--out-dir', tmp_path, '--points', '8,8')


def test_get_flops():
    quiet('tools/analysis/get_flops.py', DET_CONFIG, '--shape', '64', '96')


def test_compare_backbones(coco, tmp_path):
    """Timing and peak memory through the profiler (its 'Memory block of unknown size' notice is filtered)."""
    quiet('tools/analysis/compare_backbones.py', DET_CONFIG, '--backbones', 'l2vit-t', 'swin-t', '--out-dir',
          tmp_path, '--time-size', '64', '--flops-size', '64x96', '--warmup', '1', '--repeats', '1', '--cfg-options',
          *coco_options(coco))


def test_export_onnx(tmp_path):
    pytest.importorskip('onnx')
    quiet('tools/deployment/export_onnx.py', SEG_CONFIG, '--shape', '64', '--out', tmp_path / 'seg.onnx')


def test_convert_official(trained, tmp_path):
    quiet('tools/convert_official.py', trained, tmp_path / 'converted.pth')


def test_preflight_cost(tmp_path):
    quiet('tools/analysis/preflight_cost.py', '--images', '20', '--repeats', '1', '--work-dir', tmp_path)


def test_benchmark(tmp_path):
    quiet('tools/analysis/benchmark.py', '--sizes', '32', '--modes', 'infer', '--models', 'l2vit-t', '--repeats',
          '1', '--warmup', '1', '--no-flops', '--threads', '1', '--out-dir', tmp_path)


def test_native_stderr_without_drops_only_the_matching_lines(capfd):
    """What the C++ side writes to file descriptor 2 comes out, less the known line (the profiler's notice)."""
    from l2vit.quiet import PROFILER_UNKNOWN_BLOCK, native_stderr_without
    with native_stderr_without(PROFILER_UNKNOWN_BLOCK):
        os.write(2, b'[W1206 21:26:19.152203962 CPUAllocator.cpp:245] Memory block of unknown size was allocated '
                    b'before the profiling started, profiler results will not include the deallocation event\n'
                    b'a line to keep\n')
    assert capfd.readouterr().err == 'a line to keep\n'


def test_the_runners_logger_drops_only_the_known_messages():
    """The logging filter ``build_runner`` adds: mmengine's notices about itself go, every other warning stays."""
    import logging

    from l2vit.quiet import quiet_logger
    logger = logging.getLogger('l2vit-test-quiet-logger')
    quiet_logger(logger)
    quiet_logger(logger)
    assert len(logger.filters) == 1
    records = [logging.LogRecord(logger.name, logging.WARNING, __file__, 1, message, None, None) for message in (
        '"FileClient" will be deprecated in future. Please use io functions', 'The prefix is not set in metric class '
        'IoUMetric.', 'Reach the end of the dataloader, it will be restarted and continue to iterate. It is '
        'recommended to use `mmengine.dataset.InfiniteSampler`')]
    assert [bool(logger.filter(r)) for r in records] == [False, False, True]  # the last one the user can act on
