"""Two processes through torchrun on a machine without GPUs (gloo): tools/dist_train.sh and tools/dist_test.sh."""
import copy
import json
import os
import os.path as osp
import socket
import subprocess

import pytest
import torch
from mmengine.registry import FUNCTIONS
from mmengine.runner import FlexibleRunner

import mmdet_l2vit  # noqa: F401  (registers L2ViT in mmdet)
from helpers import CONFIG_DIR, ROOT, demo_data_options, load_config, run_main
from l2vit import L2ViT
from l2vit.checkpoint import load_checkpoint_file
from l2vit.distributed import fsdp_wrap_l2vit_blocks
from l2vit.testing import generate_coco_instances
from test_detection_e2e import DEMO_CONFIG

RANK_HOOK = '''
import json

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from torch.distributed.fsdp import FullyShardedDataParallel


@HOOKS.register_module()
class RecordRank(Hook):
    """When training ends, each process saves the parameters it holds (rank<i>.pth) and how its model is wrapped
    (rank<i>.json: wrapper class, FSDP units, elements held)."""

    def __init__(self, out_dir):
        self.out_dir = out_dir

    def after_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        torch.save({k: v.detach().clone() for k, v in model.named_parameters()},
                   f'{self.out_dir}/rank{runner.rank}.pth')
        units = [m for m in runner.model.modules() if isinstance(m, FullyShardedDataParallel)]
        record = dict(wrapper=type(runner.model).__name__, units=len(units),
                      wrapped=sorted({type(u.module).__name__ for u in units}),
                      local_numel=sum(p.numel() for p in runner.model.parameters()))
        with open(f'{self.out_dir}/rank{runner.rank}.json', 'w') as f:
            json.dump(record, f)
'''


def rank_hook_config(path, bases, out_dir, extra: str = '') -> str:
    """A config on ``bases`` whose processes record themselves with RecordRank (its module sits next to ``path``)."""
    (path.parent / 'record_rank_hook.py').write_text(RANK_HOOK)
    path.write_text(f"_base_ = {list(bases)!r}\n"
                    "custom_imports = dict(imports=['mmdet_l2vit', 'record_rank_hook'], allow_failed_imports=False)\n"
                    f"custom_hooks = [dict(type='RecordRank', out_dir={str(out_dir)!r})]\n" + extra)
    return str(path)


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
    config = rank_hook_config(tmp_path / 'two_process.py', [DEMO_CONFIG], tmp_path,
                              "model = dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)))\n")
    work = str(tmp_path / 'work')
    result = dist_run('dist_train.sh', config, '2', '--work-dir', work, '--cfg-options', *demo_data_options(data),
                      'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', pythonpath=str(tmp_path))
    # SyncBN cannot run on CPUs: the launcher says it uses per-process BN instead.
    assert 'SyncBatchNorm needs GPUs' in result.stdout + result.stderr

    # DDP kept the two processes' parameters identical.
    rank0, rank1 = (torch.load(tmp_path / f'rank{r}.pth', weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys() and len(rank0) > 100
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert all(json.loads((tmp_path / f'rank{r}.json').read_text())['wrapper'] == 'MMDistributedDataParallel'
               for r in (0, 1))

    # Two processes each evaluate part of the val set; the metric is computed on the gathered results, so it equals
    # the single-process one.
    checkpoint = osp.join(work, 'epoch_1.pth')
    two, one = str(tmp_path / 'two.json'), str(tmp_path / 'one.json')
    dist_run('dist_test.sh', DEMO_CONFIG, checkpoint, '2', '--work-dir', work, '--metrics-out', two, '--cfg-options',
             *demo_data_options(data), 'test_dataloader.batch_size=1')
    run_main('tools/test.py', DEMO_CONFIG, checkpoint, '--work-dir', work, '--metrics-out', one, '--cfg-options',
             *demo_data_options(data), 'test_dataloader.batch_size=1')
    with open(two) as f2, open(one) as f1:
        assert json.load(f2) == json.load(f1)


def test_fsdp_config_builds_its_strategy(tmp_path):
    """The sharded Mask R-CNN B config builds mmengine's FlexibleRunner with FSDPStrategy, and its wrap policy makes
    each L2ViT block (and nothing else of the backbone) an FSDP unit."""
    cfg = copy.deepcopy(load_config(CONFIG_DIR / 'mask_rcnn' / 'mask-rcnn_l2vit-b_fpn_fsdp-ms-crop-3x_coco.py'))
    cfg.work_dir, cfg.launcher = str(tmp_path), 'none'
    runner = FlexibleRunner.from_cfg(cfg)
    assert type(runner.strategy).__name__ == 'FSDPStrategy'
    assert runner.strategy.model_wrapper['use_orig_params'] is True
    assert str(runner.strategy.state_dict_type) == 'StateDictType.FULL_STATE_DICT'
    # the policy the wrapper will look up by name is ours
    assert FUNCTIONS.get(runner.strategy.model_wrapper['auto_wrap_policy']['type']) is fsdp_wrap_l2vit_blocks

    backbone = L2ViT(arch=cfg.model.backbone.arch)
    units = [name for name, m in backbone.named_modules() if fsdp_wrap_l2vit_blocks(m, False, 0)]
    assert len(units) == sum(backbone.depths) == 2 + 2 + 18 + 2
    assert all(fsdp_wrap_l2vit_blocks(m, True, 0) for m in backbone.modules())  # it looks inside everything


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU/gloo path')
def test_two_process_fsdp_training(tmp_path):
    """configs/_strategies/fsdp.py on the demo detector: two processes train with sharded parameters, the checkpoint
    holds the whole model under its usual names, and tools/test.py evaluates it."""
    data = str(tmp_path / 'coco')
    generate_coco_instances(data, num_train=8, num_val=3, seed=7, progress=False)
    config = rank_hook_config(tmp_path / 'fsdp.py', [DEMO_CONFIG, osp.join(ROOT, 'configs', '_strategies', 'fsdp.py')],
                              tmp_path)
    work = str(tmp_path / 'work')
    dist_run('dist_train.sh', config, '2', '--work-dir', work, '--cfg-options', *demo_data_options(data),
             'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', pythonpath=str(tmp_path))

    from mmdet.registry import MODELS
    model = MODELS.build(load_config(DEMO_CONFIG).model)
    full = dict(model.named_parameters())
    total = sum(p.numel() for p in full.values())
    records = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in (0, 1)]
    for record in records:
        assert record['wrapper'] == 'MMFullyShardedDataParallel'
        assert record['units'] == 1 + sum(model.backbone.depths)  # the root + one per block
        # the demo config's blocks are the CPU variants (cpu_fast_paths=True), subclasses of the plain blocks
        assert record['wrapped'] == ['CPULinearGlobalBlock', 'CPULocalWindowBlock', 'MaskRCNN']
        assert 0 < record['local_numel'] < total  # each rank holds a part
    assert sum(r['local_numel'] for r in records) == total  # together: all of it

    checkpoint = osp.join(work, 'epoch_1.pth')
    state = load_checkpoint_file(checkpoint)['state_dict']
    assert set(full) <= set(state) and all(state[k].shape == p.shape for k, p in full.items())
    metrics = str(tmp_path / 'metrics.json')
    run_main('tools/test.py', DEMO_CONFIG, checkpoint, '--work-dir', work, '--metrics-out', metrics, '--cfg-options',
             *demo_data_options(data))
    assert 'coco/bbox_mAP' in json.loads(open(metrics).read())
