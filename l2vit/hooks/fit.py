"""The hook that refuses a checkpoint whose weights do not fit the model when they are used as they are."""
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop

from ..checkpoint import check_checkpoint_fits, checkpoint_fit, checkpoint_state_dict


def is_training(runner) -> bool:
    """Whether ``runner`` runs ``train()``, told the way mmengine's Runner tells it (``build_param_scheduler``):
    ``Runner.train`` builds its train loop before ``before_run`` and before it loads a checkpoint, while
    ``Runner.test`` and ``Runner.val`` leave ``_train_loop`` a config dict (or None)."""
    return isinstance(getattr(runner, '_train_loop', None), BaseLoop)


class CheckpointFitHook(Hook):
    """Refuse, by name, a checkpoint that does not fit the model when testing, validating or resuming.

    mmengine's Runner loads ``load_from`` with ``strict=False``: tensors whose shapes differ (a head trained for other
    classes) or that the checkpoint lacks only get a warning and keep their random initialisation, and a test then
    prints metrics of a half-random model. This hook compares the checkpoint with the model as soon as it is read
    (``after_load_checkpoint``, before any weight is copied) and raises :class:`~l2vit.errors.CheckpointError`
    naming the tensors, their shapes and the ``num_classes`` they show (see :func:`l2vit.checkpoint.checkpoint_fit`).

    When training starts from ``load_from`` (fine-tuning, e.g. a COCO checkpoint on other classes) a misfit is
    normal: it is logged in one summary and the run goes on (training is told from testing by ``is_training``).
    """

    priority = 'VERY_HIGH'  # before hooks that copy the weights elsewhere (EMAHook)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        source = runner._load_from or 'the checkpoint to resume'
        fine_tuning = is_training(runner) and not runner._resume
        if not fine_tuning:
            for note in check_checkpoint_fits(checkpoint, runner.model, source):
                runner.logger.warning(f'{source}: {note} (not used)')
            return
        problems, notes = checkpoint_fit(checkpoint_state_dict(checkpoint), runner.model)
        if problems or notes:
            runner.logger.warning('\n  '.join([
                f'load_from {source}: not everything fits this model; what does not keeps its initialisation and is '
                f'trained from there (normal when fine-tuning to other classes):', *problems, *notes]))
