"""The hook that stops training at the first non-finite loss."""
import math
import os.path as osp

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook

from ..errors import RunStopped
from .checkpoint import read_last_checkpoint


class FiniteLossHook(Hook):
    """Stop training at the first iteration whose loss, or any loss term, is NaN or infinite.

    It runs after every training iteration on every process (all stop together), before the checkpoint hook of that
    iteration could save the spoiled weights, and raises ``RunStopped`` naming the iteration, every loss term with
    its value and the usual causes. mmdet's ``CheckInvalidLossHook`` does not do the job: it looks every 50
    iterations by default (the NaN weights of the iterations between may be saved), only at the total loss, only in
    mmdet, and stops with a bare ``assert`` that says nothing (and vanishes under ``python -O``).
    """

    priority = 'HIGH'  # before the EMA, logger and checkpoint hooks (and after the runtime info one)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        terms = {key: float(value.detach() if isinstance(value, torch.Tensor) else value)
                 for key, value in (outputs or {}).items()
                 if 'loss' in key and (isinstance(value, (int, float)) or
                                       (isinstance(value, torch.Tensor) and value.numel() == 1))}
        bad = [key for key, value in terms.items() if not math.isfinite(value)]
        count = torch.tensor(len(bad))
        if get_world_size() > 1:
            all_reduce(count)  # a non-finite loss on one process stops them all, at the same iteration
        if int(count) == 0:
            return
        from mmengine.runner import EpochBasedTrainLoop
        where = f'iteration {runner.iter + 1}'
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            where = f'epoch {runner.epoch + 1}, {where} (iteration {batch_idx + 1} of the epoch)'
        shown = ', '.join(f'{key}={value:.4g}' + (' (not finite)' if key in bad else '') for key, value in
                          terms.items()) if bad else 'finite here; not finite on another process'
        last = read_last_checkpoint(runner.work_dir)
        kept = (f'The last checkpoint, {last}, is intact: continue from it with --resume once the cause is fixed.'
                if last else f'No checkpoint was saved in {osp.abspath(runner.work_dir)} yet.')
        raise RunStopped(
            f'the loss is not finite at {where}: {shown}. Training stopped before saving anything of this '
            f'iteration. Usual causes: a learning rate too high for the batch size (optim_wrapper.optimizer.lr; '
            f'optim_wrapper.clip_grad=dict(max_norm=...) bounds the updates), fp16 overflow with AMP (--amp, '
            f'AmpOptimWrapper), boxes of zero or negative width or height or with NaN coordinates in the '
            f'annotations. {kept}')
