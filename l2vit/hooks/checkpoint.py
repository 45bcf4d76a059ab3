"""The checkpoint hook our configs use: no checkpoint is ever lost or half-written, ``--resume`` finds its checkpoint
in a moved work dir, and one training at a time uses a work dir."""
import errno
import fcntl
import glob
import os
import os.path as osp
import re
import shutil
import socket
import sys
import time
from collections import deque
from typing import List, Optional, Tuple

import torch
from mmengine.dist import all_reduce, broadcast_object_list, get_world_size, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper

from ..checkpoint import fsync_folder, fsync_path
from ..errors import RunStopped
from .fit import is_training

#: Suffix of a file being written; it gets its final name only once complete.
PARTIAL = '.partial'
#: The lock file a training holds in its work dir (it says who holds it).
LOCK_FILE = '.train.lock'
#: Errors of a write that found no room: disk full, quota exceeded, file size limit.
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


# ------------------------------------------------------------------------------------------------- file helpers
def finish_partial(partial: str, final: str) -> None:
    """Flush the complete file ``partial`` to disk, then give it its final name (atomically replacing any file of
    that name) and make the rename durable (where the file system can flush a folder)."""
    fsync_path(partial)
    os.replace(partial, final)
    fsync_folder(osp.dirname(final) or '.')


def write_text_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that ``path`` holds either its old or its new text, whenever the process dies."""
    with open(path + PARTIAL, 'w') as f:
        f.write(text)
    finish_partial(path + PARTIAL, path)


def remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def mount_point(path: str) -> str:
    path = osp.realpath(path)
    while not osp.ismount(path):
        path = osp.dirname(path)
    return path


def filesystem_type(mount: str) -> str:
    """The type of the file system mounted at ``mount`` (from /proc/mounts; 'unknown' elsewhere)."""
    kind = 'unknown'
    try:
        with open('/proc/mounts') as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[1] == mount:
                    kind = fields[2]  # the last mount there is the visible one
    except OSError:
        pass
    return kind


def size_text(n: Optional[float]) -> str:
    if n is None:
        return 'an unknown amount'
    for unit in ('bytes', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB':
            return f'{n:.0f} {unit}' if unit == 'bytes' else f'{n:.1f} {unit}'
        n /= 1024
    raise AssertionError('unreachable')


def read_last_checkpoint(work_dir: str) -> Optional[str]:
    """What ``work_dir/last_checkpoint`` names (None without one)."""
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def saves_folders(runner) -> bool:
    """Whether the runner's strategy (mmengine's FlexibleRunner) saves each checkpoint as a folder that every process
    writes into (DeepSpeed, sharded FSDP state dicts)."""
    strategy = getattr(runner, 'strategy', None)
    if strategy is None:
        return False
    if 'DeepSpeed' in type(strategy).__name__:
        return True
    full = getattr(strategy, '_is_full_state_dict', None)
    return full is not None and not full()


# ------------------------------------------------------------------------------------------------ the work dir lock
def describe_process() -> str:
    return (f'pid {os.getpid()} on host {socket.gethostname()}, started {time.strftime("%Y-%m-%d %H:%M:%S %Z")}, '
            f'command: {" ".join(sys.argv)}')


def lock_work_dir(work_dir: str) -> Tuple[Optional[object], Optional[str]]:
    """Take the exclusive lock of ``work_dir``: ``(open lock file, None)``; ``(None, holder)`` when a live process
    holds it (``holder`` says who); ``(None, None)`` where the file system cannot lock (``flock``).

    The lock lives as long as the returned file is open; the kernel releases it when the process ends however it
    ends, so a killed run never leaves a lock behind (its lock file stays, naming a process that no longer holds it).
    """
    os.makedirs(work_dir, exist_ok=True)
    f = open(osp.join(work_dir, LOCK_FILE), 'a+')
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or 'a process that did not write who it is'
        f.close()
        return None, holder
    except OSError:
        f.close()
        return None, None
    f.seek(0)
    f.truncate()
    f.write(describe_process() + '\n')
    f.flush()
    return f, None


def busy_message(work_dir: str, holder: str) -> str:
    return (f'another training is using the work dir {work_dir}: {holder}. Two trainings in one work dir overwrite '
            f"each other's checkpoints. Wait for that run to end (or stop it), or train into another work dir "
            f'(--work-dir DIR, or work_dir in the config). A run that was killed does not hold the lock: the holder '
            f'above is alive.')


# ------------------------------------------------------------------------------------------------------- the hook
class _DeferredRemoval:
    """The hook's file backend while mmengine saves a best checkpoint: removals wait until the new one is saved."""

    def __init__(self, backend) -> None:
        self.backend, self.removals = backend, []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def remove(self, path) -> None:
        self.removals.append(str(path))

    rmtree = remove


class _SavingRunner:
    """The runner as mmengine's best-checkpoint logic sees it: its saves go through the hook's atomic write."""

    def __init__(self, runner, hook: 'SafeCheckpointHook') -> None:
        self.runner, self._hook = runner, hook

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def save_checkpoint(self, out_dir, filename, **kwargs) -> None:
        self._hook._save_file(self.runner, out_dir, filename, **kwargs)


class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) that never loses a checkpoint nor leaves one half-written.

    mmengine's hook removes the oldest checkpoint (``max_keep_ckpts``) or the previous best before writing the new
    one, and writes it in place: a run killed or out of disk space during a save can be left with no usable
    checkpoint. This one, for a local folder:

    * writes each checkpoint to ``<name>.partial``, flushes it to disk and only then renames it (atomically), then
      updates ``last_checkpoint`` the same way, and only then removes the checkpoints beyond ``max_keep_ckpts`` (a
      previous best: after the new best is saved); leftover ``.partial`` files of a killed save are removed (and
      logged) when training starts;
    * stops the run with ``RunStopped`` when the disk is full (naming the folder, its file system, the space needed
      and free, and the intact checkpoints), removing the partial file;
    * never writes a checkpoint whose model weights are not finite (stops the run, naming them);
    * with ``--resume`` from the work dir, resumes from the file ``last_checkpoint`` names even when the work dir was
      moved or copied (the file of that name in this work dir), or, without ``last_checkpoint``, from the newest
      checkpoint there;
    * lets one training at a time use a work dir: the first process takes an exclusive ``flock`` on
      ``<work_dir>/.train.lock`` for the whole run (released when the process ends, however it ends) and a second
      training is refused, naming the first. A file system without ``flock``: a warning, and the run goes on.

    Other storage backends (``backend_args``, ``file_client_args``, an ``out_dir`` URL) and checkpoints saved as
    folders by every process (DeepSpeed, sharded FSDP) keep mmengine's way of saving.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._lock = None
        self._local = False

    # ------------------------------------------------------------------------------------ start and end of a run
    def before_run(self, runner) -> None:
        if not is_training(runner):
            return  # testing or validating: no lock, nothing to resume
        self._take_lock(runner)
        self._find_checkpoint_to_resume(runner)

    def after_run(self, runner) -> None:
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._local = (self.file_client_args is None and isinstance(self.file_backend, LocalBackend)
                       and not saves_folders(runner))
        if self._local and is_main_process():
            for path in sorted(glob.glob(osp.join(glob.escape(self.out_dir), '*' + PARTIAL)) +
                               glob.glob(osp.join(glob.escape(runner.work_dir), 'last_checkpoint' + PARTIAL))):
                remove_quietly(path)
                runner.logger.warning(f'Removed {path}: the incomplete file of a save that was interrupted (the '
                                      f'checkpoints saved before it are complete).')

    def _take_lock(self, runner) -> None:
        holder = None
        if is_main_process():
            self._lock, holder = lock_work_dir(runner.work_dir)
            if self._lock is None and holder is None:
                runner.logger.warning(
                    f'Cannot lock {osp.join(runner.work_dir, LOCK_FILE)}: its file system does not support flock, '
                    f'so a second training started into {runner.work_dir} would not be refused. Make sure no other '
                    f'run uses this work dir (their checkpoints would overwrite each other).')
        if get_world_size() > 1:
            shared = [holder]
            broadcast_object_list(shared)
            holder = shared[0]
        if holder is not None:
            raise RunStopped(busy_message(runner.work_dir, holder))

    def _checkpoint_dir(self, runner) -> str:
        """Where ``before_train`` will save checkpoints (``out_dir`` is resolved there)."""
        if self.out_dir is None or self.out_dir == runner.work_dir:
            return runner.work_dir
        return osp.join(str(self.out_dir), osp.basename(runner.work_dir.rstrip(osp.sep)))

    def _find_checkpoint_to_resume(self, runner) -> None:
        """With ``resume=True`` and no ``load_from`` the Runner resumes from what ``last_checkpoint`` names: make
        that work when the work dir was moved or copied, or when ``last_checkpoint`` is missing."""
        if not runner._resume or runner._load_from is not None:
            return
        work_dir = runner.work_dir
        named = read_last_checkpoint(work_dir)
        if named is None:
            found = self._newest_checkpoints(self._checkpoint_dir(runner))
            if found:
                runner._load_from = found[0]
                runner.logger.warning(f'{work_dir} has no last_checkpoint file; resuming from the newest checkpoint '
                                      f'there, {found[0]}.')
            return
        if '://' in named or osp.exists(named):
            return
        folders = list(dict.fromkeys([work_dir, self._checkpoint_dir(runner)]))
        here = next((osp.join(f, osp.basename(named)) for f in folders
                     if osp.isfile(osp.join(f, osp.basename(named)))), None)
        if here is None:
            raise RunStopped(
                f'--resume: {osp.join(work_dir, "last_checkpoint")} names {named}, which does not exist, and '
                f'{" and ".join(folders)} has no {osp.basename(named)} either. Resume from a checkpoint you name '
                f'(--resume CKPT, or resume=True with load_from=CKPT), or train afresh without --resume.')
        runner._load_from = here
        runner.logger.info(f'last_checkpoint names {named}, which does not exist (the work dir was moved or '
                           f'copied); resuming from {here}.')

    def _newest_checkpoints(self, folder: str) -> List[str]:
        """The checkpoints named by ``filename_tmpl`` in ``folder``, newest (highest step) first."""
        pattern = re.compile(re.sub(r'\\\{[^}]*\\\}', r'(\\d+)', re.escape(self.filename_tmpl)) + '$')
        steps = []
        for name in os.listdir(folder) if osp.isdir(folder) else []:
            match = pattern.match(name)
            if match:
                steps.append((int(match.group(1)), osp.join(folder, name)))
        return [path for _, path in sorted(steps, reverse=True)]

    # ------------------------------------------------------------------------------------------------- saving
    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if isinstance(runner, _SavingRunner):
            runner = runner.runner
        filename = self.filename_tmpl.format(step)
        if not self._local:
            self._check_weights(runner, filename)
            return super()._save_checkpoint_with_step(runner, step, meta)
        dropped = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            kept = list(self.keep_ckpt_ids) + [step]
            # The checkpoint records the ones to remove too: a run resumed from it removes them if this one could
            # not (mmengine's before_train trims the list to max_keep_ckpts, removing the files).
            runner.message_hub.update_info('keep_ckpt_ids', kept)
            dropped = kept[:-self.max_keep_ckpts]
            self.keep_ckpt_ids = deque(kept[-self.max_keep_ckpts:], self.max_keep_ckpts)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        self._save_file(runner, self.out_dir, filename, save_optimizer=self.save_optimizer,
                        save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                        backend_args=self.backend_args, **self.args)
        if dropped:
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        if not is_main_process():
            return
        self._no_room_guard(runner, osp.join(runner.work_dir, 'last_checkpoint'),
                            lambda: write_text_atomically(osp.join(runner.work_dir, 'last_checkpoint'),
                                                          self.last_ckpt))
        for old in dropped:
            self._remove_checkpoint(osp.join(self.out_dir, self.filename_tmpl.format(old)))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self._local:
            return super()._save_best_checkpoint(runner, metrics)
        backend = self.file_backend
        self.file_backend = deferred = _DeferredRemoval(backend)
        try:
            super()._save_best_checkpoint(_SavingRunner(runner, self), metrics)
        finally:
            self.file_backend = backend
        current = {getattr(self, 'best_ckpt_path', None), *getattr(self, 'best_ckpt_path_dict', {}).values()}
        for path in deferred.removals:
            if path not in current and is_main_process():
                self._remove_checkpoint(path)

    def _remove_checkpoint(self, path: str) -> None:
        if osp.isfile(path):
            os.remove(path)
        elif osp.isdir(path):  # deepspeed saves folders
            shutil.rmtree(path)

    def _save_file(self, runner, out_dir: str, filename: str, **kwargs) -> None:
        """``runner.save_checkpoint`` into ``<filename>.partial`` (rank 0 writes), renamed once complete; never with
        non-finite weights."""
        self._check_weights(runner, filename)
        final = osp.join(out_dir, filename)
        stopped = None
        try:
            self._no_room_guard(runner, final, lambda: runner.save_checkpoint(out_dir, filename + PARTIAL, **kwargs))
            if is_main_process():
                self._no_room_guard(runner, final, lambda: finish_partial(final + PARTIAL, final))
        except RunStopped as err:
            stopped = err
        if get_world_size() > 1:  # the other processes learn whether rank 0 could save, and stop with it
            shared = [None if stopped is None else str(stopped)]
            broadcast_object_list(shared)
            if stopped is None and shared[0] is not None:
                stopped = RunStopped(shared[0])
        if stopped is not None:
            raise stopped

    def _no_room_guard(self, runner, final: str, write) -> None:
        """Run ``write`` (which writes ``final`` through ``final.partial``); on an error, remove the partial file,
        and when the disk is full stop the run saying so."""
        partial = final + PARTIAL
        try:
            write()
        except OSError as err:
            written = osp.getsize(partial) if osp.isfile(partial) else 0
            remove_quietly(partial)
            if err.errno in NO_ROOM:
                raise RunStopped(self._no_room_message(runner, final, err, written)) from err
            raise

    def _no_room_message(self, runner, final: str, err: OSError, written: int) -> str:
        folder = osp.dirname(final)
        mount = mount_point(folder)
        previous = self._newest_checkpoints(self.out_dir)
        needed = (f'about {size_text(osp.getsize(previous[0]))} (the size of {osp.basename(previous[0])})'
                  if previous else f'more than {size_text(written)}')
        kept = (f'The checkpoints already there are complete and intact: {", ".join(previous[:3])}'
                f'{" ..." if len(previous) > 3 else ""}; last_checkpoint names '
                f'{read_last_checkpoint(runner.work_dir)}.' if previous else 'No checkpoint was saved before.')
        reason = {errno.EFBIG: 'the file is larger than this process or file system allows (ulimit -f, or a file '
                               'system with a file size limit)',
                  errno.EDQUOT: 'your disk quota is exhausted'}.get(err.errno, 'the disk is full')
        return (f'cannot save {final}: {reason} ({err.strerror}). The folder {folder} is on the '
                f'{filesystem_type(mount)} file system mounted at {mount}; the checkpoint needs {needed}, and '
                f'{size_text(shutil.disk_usage(folder).free)} are free there. The incomplete file was removed. {kept} '
                f'Free space there, or save elsewhere (--work-dir DIR, or '
                f'--cfg-options default_hooks.checkpoint.out_dir=DIR), then continue with --resume.')

    def _check_weights(self, runner, filename: str) -> None:
        """Stop the run rather than save non-finite weights (every rank checks its own, and all stop together)."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        tensors = [(name, t) for name, t in [*model.named_parameters(), *model.named_buffers()]
                   if t.is_floating_point()]
        if not tensors:
            return
        finite = torch.stack([torch.isfinite(t.detach()).all() for _, t in tensors]).cpu()
        bad = [name for (name, _), ok in zip(tensors, finite.tolist()) if not ok]
        count = torch.tensor(len(bad))
        if get_world_size() > 1:
            all_reduce(count)
        if int(count) == 0:
            return
        named = ', '.join(bad[:5]) + (f' and {len(bad) - 5} more' if len(bad) > 5 else '') if bad else \
            'on another process'
        raise RunStopped(
            f'not saving {filename}: the model weights are not finite (NaN or inf) at epoch {runner.epoch + 1}, '
            f'iteration {runner.iter + 1}: {named}. Training diverged. No checkpoint with these weights was written; '
            f'the last one saved, {read_last_checkpoint(runner.work_dir) or "(none yet)"}, is intact. Fix the cause '
            f'(learning rate too high for the batch size, AMP/fp16 overflow, boxes of zero or negative size or NaN '
            f'coordinates; optim_wrapper.clip_grad=dict(max_norm=...) bounds the updates), then continue with '
            f'--resume.')
