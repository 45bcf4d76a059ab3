"""`--resume` after a SIGKILL continues bit-identically (weights-only loading, RNG states carried), with our
`tools/train.py` and with mmdet's own packaged one (what `mim train mmdet` runs)."""
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from helpers import ROOT, demo_data_options, tool
from l2vit.checkpoint import load_checkpoint_file
from l2vit.testing import generate_coco_instances
from test_detection_e2e import DEMO_CONFIG

EPOCHS = 3


def options(data: str):
    return ['--cfg-options', *demo_data_options(data), f'train_cfg.max_epochs={EPOCHS}', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1', 'randomness.seed=0', 'randomness.deterministic=True',
            'model.backbone.drop_path_rate=0.2',  # stochastic depth and random flips both draw random numbers
            # Small images: the test is about what resuming restores, not about the size of the run.
            'train_dataloader.dataset.pipeline.3.scale=(128,128)', 'val_dataloader.dataset.pipeline.1.scale=(128,128)']


def final_weights(work_dir: str):
    return load_checkpoint_file(osp.join(work_dir, f'epoch_{EPOCHS}.pth'))['state_dict']  # weights-only


def last_checkpoint(work_dir: str) -> str:
    path = osp.join(work_dir, 'last_checkpoint')
    return open(path).read().strip() if osp.isfile(path) else ''


def mmdet_train_tool() -> str:
    """mmdet's packaged tools/train.py, run as it is: no wrapper, nothing of ours registered beforehand."""
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')


def train_and_kill_after_first_checkpoint(train_tool: str, data: str, work_dir: str, extra=()) -> None:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    proc = subprocess.Popen([sys.executable, train_tool, DEMO_CONFIG, '--work-dir', work_dir, *options(data), *extra],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if last_checkpoint(work_dir).endswith('epoch_1.pth'):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, 'the run ended before it could be killed after its first checkpoint'
    assert not osp.exists(osp.join(work_dir, f'epoch_{EPOCHS}.pth'))


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    data = str(tmp_path / 'coco')
    generate_coco_instances(data, num_train=4, num_val=1, seed=4, progress=False)

    straight = str(tmp_path / 'straight')
    tool('tools/train.py', DEMO_CONFIG, '--work-dir', straight, *options(data))

    resumed = str(tmp_path / 'resumed')
    train_and_kill_after_first_checkpoint(osp.join(ROOT, 'tools', 'train.py'), data, resumed)
    result = tool('tools/train.py', DEMO_CONFIG, '--work-dir', resumed, '--resume', *options(data))
    assert 'resumed' in (result.stdout + result.stderr).lower()

    expected, actual = final_weights(straight), final_weights(resumed)
    assert expected.keys() == actual.keys()
    different = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not different, f'{len(different)} tensors differ after resuming, e.g. {different[:5]}'

    # mmdet's own train tool, plain: the config's custom_imports registers our weights-only loading (torch's
    # default refuses mmengine's checkpoints otherwise) and its custom_hooks the RNGStateHook. It runs the same Runner
    # on the same config as ours, so its resumed run ends exactly where our uninterrupted one does.
    packaged = mmdet_train_tool()
    mmdet_resumed = str(tmp_path / 'mmdet_resumed')
    train_and_kill_after_first_checkpoint(packaged, data, mmdet_resumed)
    control = str(tmp_path / 'control')
    shutil.copytree(mmdet_resumed, control)  # the same killed run, resumed below without the hook
    with open(osp.join(control, 'last_checkpoint'), 'w') as f:  # its own copy of the checkpoint
        f.write(osp.join(control, 'epoch_1.pth'))
    result = tool(packaged, DEMO_CONFIG, '--work-dir', mmdet_resumed, '--resume', *options(data))
    assert 'resumed' in (result.stdout + result.stderr).lower()
    actual = final_weights(mmdet_resumed)
    assert expected.keys() == actual.keys()
    different = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not different, f'mmdet train.py: {len(different)} tensors differ after resuming, e.g. {different[:5]}'

    # Control: the same killed run resumed with the hook removed (mmengine alone: the RNG states in the checkpoint
    # are not restored) drifts from the uninterrupted run, so this test would notice a hook that does nothing.
    result = tool(packaged, DEMO_CONFIG, '--work-dir', control, '--resume', *options(data), 'custom_hooks=[]')
    assert 'resumed' in (result.stdout + result.stderr).lower()
    drifted = final_weights(control)
    assert any(not torch.equal(expected[k], drifted[k]) for k in expected), \
        'without the RNG states the resumed run should drift; the test would not notice a broken hook'
