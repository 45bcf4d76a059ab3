"""Two processes through torchrun on a machine without GPUs (gloo): tools/dist_train.sh and tools/dist_test.sh."""
import json
import os
import os.path as osp
import socket
import subprocess

import pytest
import torch
from helpers import ROOT, tool
from test_detection_e2e import DEMO_CONFIG, data_options

from l2vit.datasets import generate_coco_instances

RANK_HOOK = '''
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class SaveRankParameters(Hook):
    """Each process saves its model's parameters when training ends."""

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def after_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        torch.save({k: v.detach().clone() for k, v in model.named_parameters()},
                   f'{self.out_dir}/rank{runner.rank}.pth')
'''


def free_port() -> str:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def dist_run(script: str, *args: str, pythonpath: str = '') -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore', PORT=free_port(),
               PYTHONPATH=os.pathsep.join(p for p in (pythonpath, os.environ.get('PYTHONPATH', '')) if p))
    result = subprocess.run(['bash', osp.join(ROOT, 'tools', script), *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f'{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
    return result


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU/gloo path; on GPUs dist_train.sh uses NCCL')
def test_two_process_training_and_gathered_evaluation(tmp_path):
    data = str(tmp_path / 'coco')
    generate_coco_instances(data, num_train=8, num_val=3, seed=7, progress=False)
    (tmp_path / 'rank_parameters_hook.py').write_text(RANK_HOOK)
    config = tmp_path / 'two_process.py'
    config.write_text(f"_base_ = {DEMO_CONFIG!r}\n"
                      "custom_imports = dict(imports=['mmdet_l2vit', 'rank_parameters_hook'], "
                      "allow_failed_imports=False)\n"
                      f"custom_hooks = [dict(type='SaveRankParameters', out_dir={str(tmp_path)!r})]\n"
                      "model = dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)))\n")
    work = str(tmp_path / 'work')
    result = dist_run('dist_train.sh', str(config), '2', '--work-dir', work, '--cfg-options', *data_options(data),
                      'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', pythonpath=str(tmp_path))
    # SyncBN cannot run on CPUs: the launcher says it uses per-process BN instead.
    assert 'SyncBatchNorm needs GPUs' in result.stdout + result.stderr

    # DDP kept the two processes' parameters identical.
    rank0, rank1 = (torch.load(tmp_path / f'rank{r}.pth', weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys() and len(rank0) > 100
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)

    # Two processes each evaluate part of the val set; the metric is computed on the gathered results, so it equals
    # the single-process one.
    checkpoint = osp.join(work, 'epoch_1.pth')
    two, one = str(tmp_path / 'two.json'), str(tmp_path / 'one.json')
    dist_run('dist_test.sh', DEMO_CONFIG, checkpoint, '2', '--work-dir', work, '--metrics-out', two, '--cfg-options',
             *data_options(data), 'test_dataloader.batch_size=1')
    tool('tools/test.py', DEMO_CONFIG, checkpoint, '--work-dir', work, '--metrics-out', one, '--cfg-options',
         *data_options(data), 'test_dataloader.batch_size=1')
    with open(two) as f2, open(one) as f1:
        assert json.load(f2) == json.load(f1)
