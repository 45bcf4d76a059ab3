"""Long runs lose nothing: checkpoints are never lost or half-written (a kill at any moment of a save, a full disk),
``--resume`` works in a moved work dir, one training at a time uses a work dir, and a non-finite loss stops the run
(l2vit/hooks: SafeCheckpointHook, FiniteLossHook).

Through mmdet's own packaged train.py (what `mim train mmdet` runs: only the config's hooks, registered by its
custom_imports, carry the guarantees) and through our tools/train.py (also with the iteration-based mmseg demo and
with two processes), on the tiny demo configs: 4 training images, 2 iterations an epoch; and with mmengine's Runner
on a toy model for the best checkpoint and the lock's lifetime."""
import os
import os.path as osp
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.hooks import CheckpointHook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from helpers import ROOT, config_paths, demo_data_options, load_config
from l2vit.apis import add_run_hooks
from l2vit.checkpoint import load_checkpoint_file
from l2vit.errors import RunStopped
from l2vit.hooks import FiniteLossHook, SafeCheckpointHook
from l2vit.hooks.checkpoint import LOCK_FILE, PARTIAL, lock_work_dir
from l2vit.testing import generate_ade_semantic, generate_coco_instances
from test_detection_e2e import DEMO_CONFIG
from test_distributed import free_port
from test_entry_points import packaged_tool
from test_segmentation_e2e import DEMO_CONFIG as SEG_DEMO
from test_segmentation_e2e import data_options as seg_data_options

#: Imported by the training process (a user config's custom_imports): SIGKILL it at a chosen moment (KILL_AT) of the
#: save of KILL_FILE (epoch_2.pth). os.fsync / os.replace are wrapped in that process only; the libraries run unchanged.
KILL_MODULE = '''
import os
import signal

MOMENT = os.environ.get('KILL_AT')
NAME = os.environ.get('KILL_FILE', 'epoch_2.pth')
_fsync, _replace = os.fsync, os.replace


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def fsync(fd):
    try:
        path = os.readlink(f'/proc/self/fd/{fd}')
    except OSError:
        path = ''
    if MOMENT == 'writing' and path.endswith(NAME + '.partial'):
        os.truncate(path, os.path.getsize(path) // 2)  # killed halfway through writing it
        _die()
    return _fsync(fd)


def replace(src, dst, **kwargs):
    if MOMENT == 'written' and str(src).endswith(NAME + '.partial'):
        _die()
    _replace(src, dst, **kwargs)
    if MOMENT == 'renamed' and str(dst).endswith(NAME):
        _die()
    if MOMENT == 'recorded' and str(dst).endswith('last_checkpoint'):
        with open(dst) as f:
            if f.read().endswith(NAME):
                _die()


if MOMENT:
    os.fsync, os.replace = fsync, replace
'''


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    data = str(tmp_path_factory.mktemp('coco'))
    generate_coco_instances(data, num_train=4, num_val=2, seed=11, progress=False)
    return data


def options(data: str, *extra: str) -> list:
    """2 epochs of 2 iterations, a checkpoint after each epoch and only the newest kept, deterministic."""
    return ['--cfg-options', *demo_data_options(data), 'train_cfg.max_epochs=2', 'train_cfg.val_interval=10',
            'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=1', 'randomness.seed=0',
            'randomness.deterministic=True', *extra]


def train(script: str, config: str, work, *args, env=None, preexec_fn=None, path=None) -> subprocess.CompletedProcess:
    """A training in a fresh interpreter (``path``: a folder put first on its PYTHONPATH)."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore', **(env or {}))
    if path is not None:
        env['PYTHONPATH'] = os.pathsep.join([str(path), env.get('PYTHONPATH', '')])
    return subprocess.run([sys.executable, script, str(config), '--work-dir', str(work), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, env=env, preexec_fn=preexec_fn)


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def user_config(tmp_path, *imports: str, base: str = DEMO_CONFIG, package: str = 'mmdet_l2vit') -> str:
    """A user's config that inherits ``base`` (the detection demo config), importing ``imports`` too."""
    path = tmp_path / 'user_config.py'
    path.write_text(f'_base_ = {base!r}\n'
                    f'custom_imports = dict(imports=[{package!r}, *{list(imports)!r}], allow_failed_imports=False)\n')
    return str(path)


def weights(path) -> dict:
    return load_checkpoint_file(path)['state_dict']


def differing(a: dict, b: dict) -> list:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def leftovers(work) -> list:
    return sorted(name for name in os.listdir(work) if name.endswith(PARTIAL))


@pytest.fixture(scope='module')
def straight(coco, tmp_path_factory):
    """The uninterrupted run: mmdet's train.py, 2 epochs."""
    work = tmp_path_factory.mktemp('straight')
    result = train(packaged_tool('mmdet', 'train.py'), DEMO_CONFIG, work, *options(coco))
    assert result.returncode == 0, output(result)[-3000:]
    return weights(work / 'epoch_2.pth')


# ----------------------------------------------------------------------------------------------- the configs
@pytest.mark.parametrize('path', config_paths(), ids=lambda p: p.name)
def test_every_config_trains_with_the_safe_hooks(path):
    """Whatever tool trains it, every config saves through SafeCheckpointHook and stops on a non-finite loss: the
    hooks are in the config (registered by its custom_imports), not added by our tools."""
    from mmengine.registry import HOOKS, DefaultScope
    cfg = load_config(path)
    finite = [h for h in cfg.get('custom_hooks') or [] if h['type'] == 'FiniteLossHook']
    assert len(finite) == 1, f'{path.name}: custom_hooks = {cfg.get("custom_hooks")}'
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        assert isinstance(HOOKS.build(dict(cfg.default_hooks.checkpoint)), SafeCheckpointHook)
        assert isinstance(HOOKS.build(finite[0]), FiniteLossHook)


def test_our_train_tool_gives_any_config_the_safe_hooks(capsys):
    """tools/train.py (prepare_train): a user's config of its own gets SafeCheckpointHook in place of mmengine's
    CheckpointHook (its settings kept) and each custom hook of ours, once; a checkpoint hook of the user's own is
    kept."""
    from mmengine.config import Config
    cfg = Config(dict(default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3, max_keep_ckpts=2)),
                      custom_hooks=[dict(type='EMAHook')]))
    add_run_hooks(cfg)
    add_run_hooks(cfg)
    assert cfg.default_hooks.checkpoint == dict(type='SafeCheckpointHook', interval=3, max_keep_ckpts=2)
    assert [h['type'] for h in cfg.custom_hooks] == ['EMAHook', 'DataCheckHook', 'ConfigCheckHook', 'RNGStateHook',
                                                     'FiniteLossHook', 'CheckpointFitHook']
    cfg.default_hooks.checkpoint.type = 'MyCheckpointHook'
    add_run_hooks(cfg)
    assert cfg.default_hooks.checkpoint.type == 'MyCheckpointHook'
    assert 'MyCheckpointHook, kept as it is' in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- killed mid-save
@pytest.mark.slow
@pytest.mark.parametrize('moment', ['writing', 'written', 'renamed', 'recorded'])
def test_killed_at_any_moment_of_a_save_resumes_exactly(moment, coco, straight, tmp_path):
    """max_keep_ckpts=1, the process SIGKILLed while saving epoch_2.pth: halfway through writing it, once written,
    once renamed to its name, once last_checkpoint names it. `--resume` (from the work dir) continues from the newest
    complete checkpoint and ends bit-identical to the uninterrupted run; nothing partial is left.

    mmengine's plain CheckpointHook removes epoch_1.pth before it writes epoch_2.pth in place, so a kill while
    writing leaves only a truncated epoch_2.pth and --resume has nothing to start from (shown, with a full disk in
    place of the kill, by test_full_disk_stops_the_run_and_keeps_the_checkpoints[CheckpointHook])."""
    (tmp_path / 'kill_at_save.py').write_text(KILL_MODULE)
    config = user_config(tmp_path, 'kill_at_save')
    work = tmp_path / 'work'
    tool = packaged_tool('mmdet', 'train.py')
    killed = train(tool, config, work, *options(coco), env=dict(KILL_AT=moment), path=tmp_path)
    assert killed.returncode == -signal.SIGKILL, output(killed)[-3000:]
    assert osp.isfile(work / 'epoch_1.pth')  # removed only once epoch_2.pth is complete and recorded
    resumed = train(tool, config, work, '--resume', *options(coco), path=tmp_path)
    assert resumed.returncode == 0, output(resumed)[-3000:]
    assert 'resumed epoch: ' in output(resumed)
    assert not differing(straight, weights(work / 'epoch_2.pth'))
    assert not osp.exists(work / 'epoch_1.pth')  # max_keep_ckpts=1 still holds
    assert not leftovers(work)


@pytest.mark.slow
def test_killed_while_saving_an_iteration_checkpoint_resumes_exactly(tmp_path):
    """The same through our train tool with the iteration-based segmentation demo (mmseg, max_keep_ckpts=1): killed
    halfway through writing iter_2.pth, `--resume` removes the partial file, continues from iter_1.pth and ends
    bit-identical (mmengine's IterBasedTrainLoop loads the batches it skips after the RNG states were restored, so
    RNGStateHook takes them before restoring)."""
    data = str(tmp_path / 'ade')
    generate_ade_semantic(data, num_train=4, num_val=2, seed=3, progress=False)
    (tmp_path / 'kill_at_save.py').write_text(KILL_MODULE)
    config = user_config(tmp_path, 'kill_at_save', base=SEG_DEMO, package='mmseg_l2vit')
    seg = ['--cfg-options', *seg_data_options(data), 'train_cfg.max_iters=3', 'train_cfg.val_interval=10',
           'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=1', 'randomness.seed=0',
           'randomness.deterministic=True']
    straight = train('tools/train.py', config, tmp_path / 'straight', *seg, path=tmp_path)
    assert straight.returncode == 0, output(straight)[-3000:]
    work = tmp_path / 'work'
    killed = train('tools/train.py', config, work, *seg, env=dict(KILL_AT='writing', KILL_FILE='iter_2.pth'),
                   path=tmp_path)
    assert killed.returncode == -signal.SIGKILL, output(killed)[-3000:]
    assert osp.isfile(work / 'iter_1.pth') and leftovers(work) == ['iter_2.pth.partial']
    resumed = train('tools/train.py', config, work, '--resume', *seg, path=tmp_path)
    assert resumed.returncode == 0, output(resumed)[-3000:]
    assert 'Removed' in output(resumed) and 'iter_2.pth.partial' in output(resumed)
    assert 'resumed epoch: 0, iter: 1' in output(resumed)
    assert sorted(name for name in os.listdir(work) if name.endswith(('.pth', PARTIAL))) == ['iter_3.pth']
    assert not differing(weights(tmp_path / 'straight' / 'iter_3.pth'), weights(work / 'iter_3.pth'))


# --------------------------------------------------------------------------------------------------- full disk
def limit_file_size(limit: int):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # python ignores SIGXFSZ: write() fails, EFBIG

    return preexec


@pytest.mark.slow
@pytest.mark.parametrize('hook', ['ours', 'CheckpointHook'])
def test_full_disk_stops_the_run_and_keeps_the_checkpoints(hook, coco, tmp_path):
    """epoch_1.pth saved; the run resumed with no room for epoch_2.pth (a file size limit below a checkpoint's size).
    Ours (the config's SafeCheckpointHook): the run stops naming the folder, its file system and the space needed, no
    partial file is left and epoch_1.pth is intact. mmengine's plain CheckpointHook (max_keep_ckpts=1) removed
    epoch_1.pth first and left a truncated epoch_2.pth: nothing to resume from."""
    tool = packaged_tool('mmdet', 'train.py')
    work = tmp_path / 'work'
    plain = ['default_hooks.checkpoint.type=CheckpointHook'] if hook == 'CheckpointHook' else []
    first = train(tool, DEMO_CONFIG, work, *options(coco, 'train_cfg.max_epochs=1', *plain))
    assert first.returncode == 0, output(first)[-3000:]
    size = osp.getsize(work / 'epoch_1.pth')
    full = train(tool, DEMO_CONFIG, work, '--resume', *options(coco, *plain), preexec_fn=limit_file_size(size // 2))
    assert full.returncode != 0
    if hook == 'CheckpointHook':
        assert not osp.exists(work / 'epoch_1.pth') and osp.getsize(work / 'epoch_2.pth') < size
        return
    text = output(full)
    assert 'RunStopped' in text and 'cannot save' in text and str(work) in text and 'mounted at' in text, text[-3000:]
    assert 'epoch_1.pth' in text and '--resume' in text
    assert not leftovers(work)
    assert not osp.exists(work / 'epoch_2.pth')
    assert weights(work / 'epoch_1.pth')  # complete and loadable
    with open(work / 'last_checkpoint') as f:
        assert f.read().endswith('epoch_1.pth')


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU/gloo path')
def test_full_disk_stops_every_process(coco, tmp_path):
    """Two processes (tools/dist_train.sh) resumed with no room for epoch_2.pth: rank 0, the only writer, stops, and
    rank 1 learns it at the save and stops with the same message instead of waiting for rank 0 in the next
    collective; epoch_1.pth stays."""
    work = tmp_path / 'work'
    first = train('tools/train.py', DEMO_CONFIG, work, *options(coco, 'train_cfg.max_epochs=1'))
    assert first.returncode == 0, output(first)[-3000:]
    size = osp.getsize(work / 'epoch_1.pth')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore', PORT=free_port())
    both = subprocess.run(['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), DEMO_CONFIG, '2', '--work-dir',
                           str(work), '--resume', *options(coco, 'train_dataloader.batch_size=1')], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, preexec_fn=limit_file_size(size // 2))
    assert both.returncode != 0
    assert output(both).count('error: cannot save') == 2, output(both)[-5000:]
    assert weights(work / 'epoch_1.pth') and not leftovers(work) and not osp.exists(work / 'epoch_2.pth')


class ToyModel(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(256, 256)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


def toy_runner(work_dir, hook, **kwargs) -> Runner:
    """mmengine's Runner training a small linear model for one epoch of one iteration, saving through ``hook``."""
    return Runner(model=ToyModel(), work_dir=str(work_dir), experiment_name=f'toy_{time.time_ns()}',
                  train_dataloader=dict(dataset=[dict(inputs=torch.randn(256)) for _ in range(2)], batch_size=2,
                                        sampler=dict(type='DefaultSampler', shuffle=False)),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
                  train_cfg=dict(by_epoch=True, max_epochs=1), default_hooks=dict(checkpoint=hook), **kwargs)


def test_the_lock_is_released_when_the_run_ends_and_a_lost_checkpoint_is_named(tmp_path):
    """The work dir's lock lives exactly as long as the training; --resume with a last_checkpoint that names a file
    found neither there nor in the work dir stops with what to do (mmengine: a FileNotFoundError about weights)."""
    toy_runner(tmp_path, SafeCheckpointHook(interval=1)).train()
    lock, holder = lock_work_dir(str(tmp_path))
    assert lock is not None and holder is None
    lock.close()
    (tmp_path / 'epoch_1.pth').unlink()
    (tmp_path / 'last_checkpoint').write_text('/gone/elsewhere/epoch_1.pth')
    with pytest.raises(RunStopped, match='names /gone/elsewhere/epoch_1.pth, which does not exist, and .* has no '
                                         'epoch_1.pth either. Resume from a checkpoint you name'):
        toy_runner(tmp_path, SafeCheckpointHook(interval=1), resume=True).train()


@pytest.mark.parametrize('hook_class', [SafeCheckpointHook, CheckpointHook], ids=lambda c: c.__name__)
def test_full_disk_keeps_the_previous_best_checkpoint(hook_class, tmp_path):
    """save_best: a better score with no room for its checkpoint. Ours stops the run and keeps the previous best;
    mmengine's CheckpointHook removed the previous best before failing to write the new one."""
    hook = hook_class(interval=1, save_best='acc', rule='greater')
    runner = toy_runner(tmp_path, hook)
    runner.train()
    hook.after_val_epoch(runner, dict(acc=0.4))
    runner.train_loop._epoch += 1  # the next validation, one epoch later
    hook.after_val_epoch(runner, dict(acc=0.5))
    best = tmp_path / 'best_acc_epoch_2.pth'
    assert osp.isfile(best) and not osp.exists(tmp_path / 'best_acc_epoch_1.pth')  # the previous best removed
    size = osp.getsize(best)
    runner.train_loop._epoch += 1
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, hard))
    try:
        with pytest.raises((RunStopped, OSError)) as failure:
            hook.after_val_epoch(runner, dict(acc=0.9))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    if hook_class is CheckpointHook:
        assert not osp.exists(best)
        return
    assert failure.type is RunStopped and 'best_acc_epoch_3.pth' in str(failure.value)
    assert torch.equal(weights(best)['linear.weight'], runner.model.linear.weight.detach())
    assert not osp.exists(tmp_path / 'best_acc_epoch_3.pth') and not leftovers(tmp_path)


# ------------------------------------------------------------------------------------------ one run per work dir
@pytest.mark.slow
@pytest.mark.parametrize('ours', [True, False], ids=['tools/train.py', 'mmdet train.py'])
def test_a_second_training_into_a_busy_work_dir_is_refused(ours, coco, tmp_path):
    """A live process holds the work dir's lock: our train tool (before the Runner writes into the work dir) and
    mmdet's (the config's SafeCheckpointHook, before anything is loaded or trained) refuse, naming it; once that
    process is killed (its lock dies with it, the lock file stays) training into the work dir runs."""
    work = tmp_path / 'work'
    tool = 'tools/train.py' if ours else packaged_tool('mmdet', 'train.py')
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import sys, time\nfrom l2vit.hooks.checkpoint import lock_work_dir\n'
         'lock = lock_work_dir(sys.argv[1])\nprint("locked", flush=True)\ntime.sleep(600)', str(work)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        refused = train(tool, DEMO_CONFIG, work, *options(coco, 'train_cfg.max_epochs=1'))
        assert refused.returncode == (2 if ours else 1), output(refused)[-3000:]
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith('error: ' if ours else 'l2vit.errors.RunStopped: '), last
        assert f'another training is using the work dir {work}: pid {holder.pid} on host ' in last
        assert not osp.exists(work / 'epoch_1.pth')
        if ours:  # refused before the Runner wrote its config and log there
            assert sorted(os.listdir(work)) == [LOCK_FILE]
    finally:
        holder.kill()
        holder.wait()
    assert osp.isfile(work / LOCK_FILE)
    result = train(tool, DEMO_CONFIG, work, *options(coco, 'train_cfg.max_epochs=1'))
    assert result.returncode == 0, output(result)[-3000:]
    assert osp.isfile(work / 'epoch_1.pth')


# ------------------------------------------------------------------------------------------------ moved work dir
@pytest.mark.slow
def test_resume_in_a_moved_work_dir(coco, tmp_path):
    """A work dir moved after epoch 1 (its last_checkpoint names the old place): mmdet's train.py --resume in the new
    place continues from its epoch_1.pth (mmengine alone: FileNotFoundError for the old path)."""
    tool = packaged_tool('mmdet', 'train.py')
    old, new = tmp_path / 'old', tmp_path / 'new'
    first = train(tool, DEMO_CONFIG, old, *options(coco, 'train_cfg.max_epochs=1'))
    assert first.returncode == 0, output(first)[-3000:]
    shutil.move(str(old), str(new))
    resumed = train(tool, DEMO_CONFIG, new, '--resume', *options(coco))
    assert resumed.returncode == 0, output(resumed)[-3000:]
    assert f'resuming from {new / "epoch_1.pth"}' in output(resumed)
    assert 'resumed epoch: 1' in output(resumed)
    assert osp.isfile(new / 'epoch_2.pth')
    # Without last_checkpoint (lost, or a kill before the first was written), --resume takes the newest checkpoint
    # there instead of silently training afresh over it.
    os.remove(new / 'last_checkpoint')
    again = train(tool, DEMO_CONFIG, new, '--resume', *options(coco, 'train_cfg.max_epochs=3'))
    assert again.returncode == 0, output(again)[-3000:]
    assert 'has no last_checkpoint file; resuming from the newest checkpoint there' in output(again)
    assert 'resumed epoch: 2' in output(again)


# ------------------------------------------------------------------------------------------------ non-finite loss
@pytest.mark.slow
def test_a_non_finite_loss_stops_the_run(coco, tmp_path):
    """lr=1e4, no checkpoint before epoch 2: the weights turn NaN in iteration 2 and mmdet's train.py stops at the
    first non-finite loss (iteration 3), naming it and the loss terms, with nothing saved."""
    work = tmp_path / 'work'
    result = train(packaged_tool('mmdet', 'train.py'), DEMO_CONFIG, work,
                   *options(coco, 'optim_wrapper.optimizer.lr=1e4', 'default_hooks.checkpoint.interval=2'))
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith('l2vit.errors.RunStopped: the loss is not finite at epoch 2, iteration 3'), message
    assert 'loss_rpn_cls=' in message and '(not finite)' in message
    assert 'learning rate' in message and 'AMP' in message and 'boxes' in message
    assert not [name for name in os.listdir(work) if name.endswith(('.pth', PARTIAL))]


@pytest.mark.slow
def test_non_finite_weights_are_never_saved(coco, tmp_path):
    """lr=1e4 with a checkpoint after every iteration: the weights turn NaN in iteration 2 (its loss was finite), and
    our train tool stops instead of saving them; iter_1.pth stays, finite."""
    work = tmp_path / 'work'
    result = train('tools/train.py', DEMO_CONFIG, work,
                   *options(coco, 'optim_wrapper.optimizer.lr=1e4', 'default_hooks.checkpoint.by_epoch=False',
                            'default_hooks.checkpoint.max_keep_ckpts=-1'))
    assert result.returncode == 2, output(result)[-3000:]
    assert 'error: not saving iter_2.pth: the model weights are not finite' in result.stderr, result.stderr[-3000:]
    assert 'iter_1.pth' in result.stderr and 'backbone.' in result.stderr
    assert sorted(name for name in os.listdir(work) if name.endswith(('.pth', PARTIAL))) == ['iter_1.pth']
    for key, value in weights(work / 'iter_1.pth').items():
        assert torch.isfinite(value).all(), key
