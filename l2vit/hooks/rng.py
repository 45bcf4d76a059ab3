"""The hook that makes resumed training continue bit-identically."""
import random
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook


def capture_rng_states() -> Dict[str, Any]:
    """The python, numpy and torch (CPU and CUDA) random number generator states of this process."""
    states = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Dict[str, Any]) -> None:
    random.setstate(states['python'])
    np.random.set_state(states['numpy'])
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


class _Skipped:
    """A dataloader iterator whose first ``count`` batches were taken already: ``next`` gives None for them."""

    def __init__(self, iterator, count: int) -> None:
        self.iterator, self.count = iterator, count

    def __getattr__(self, name):
        return getattr(self.iterator, name)

    def __next__(self):
        if self.count > 0:
            self.count -= 1
            return None
        return next(self.iterator)


def skip_trained_batches(runner) -> None:
    """An iteration-based loop resumed at iteration k skips the k batches already trained after ``before_train``,
    loading them (their augmentations draw random numbers): take them here, before the RNG states are restored, and
    let the loop's own skipping pass over nothing."""
    from mmengine.runner import IterBasedTrainLoop
    loop = runner.train_loop
    if not isinstance(loop, IterBasedTrainLoop) or loop.iter == 0:
        return
    for _ in range(loop.iter):
        next(loop.dataloader_iterator)
    loop.dataloader_iterator = _Skipped(loop.dataloader_iterator, loop.iter)


class RNGStateHook(Hook):
    """Carry every process's RNG states through checkpoints, so that ``--resume`` continues exactly.

    mmengine restores weights, optimizer, schedulers and the data order on resume, but not the random number
    generators that drive augmentation and stochastic depth, so a resumed run drifts from an uninterrupted one. This
    hook stores the states (one per rank) in each checkpoint and restores them when training resumes. It also keeps
    validation from consuming training randomness (the states are put back after each validation), because a resumed
    run starts right after the checkpoint and skips the validation that followed it.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._resumed: Optional[Dict[str, Any]] = None
        self._before_val: Optional[Dict[str, Any]] = None
        self._gathered: Optional[List[Dict[str, Any]]] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # Saving runs on rank 0 only; with several processes their states were gathered just before (below).
        if get_world_size() == 1:
            checkpoint['rng_states'] = [capture_rng_states()]
        elif self._gathered is not None:
            checkpoint['rng_states'], self._gathered = self._gathered, None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._gather_if_saving(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_saving(runner, by_epoch=True)

    def _gather_if_saving(self, runner, by_epoch: bool) -> None:
        """With several processes, collect every rank's states at the point where the CheckpointHook (which runs
        after this hook) is about to save: a collective all ranks reach, unlike the rank-0-only saving itself."""
        if get_world_size() == 1:
            return
        saver = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        if saver is None or saver.by_epoch != by_epoch:
            return
        every, is_last = ((saver.every_n_epochs, saver.is_last_train_epoch) if by_epoch else
                          (saver.every_n_train_iters, saver.is_last_train_iter))
        if every(runner, saver.interval, saver.save_begin) or (saver.save_last and is_last(runner)):
            self._gathered = all_gather_object(capture_rng_states())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get('rng_states')
        if not getattr(runner, '_resume', False) or not states:
            return  # loading weights to start a new run (load_from) does not carry its randomness over
        if len(states) != get_world_size():
            runner.logger.warning(f'The checkpoint holds RNG states of {len(states)} processes but {get_world_size()} '
                                  f'are running: the resumed run will not repeat the interrupted one exactly.')
            return
        self._resumed = states[get_rank()]

    def before_train(self, runner) -> None:
        # Restored here, after everything the Runner does at start-up (weight init, dataloader set-up) that draws
        # random numbers the interrupted run drew before its checkpoint.
        if self._resumed is not None:
            skip_trained_batches(runner)
            restore_rng_states(self._resumed)
            self._resumed = None

    def before_val(self, runner) -> None:
        self._before_val = capture_rng_states()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_rng_states(self._before_val)
            self._before_val = None
