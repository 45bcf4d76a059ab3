"""The hook that checks a run's data before the run trains or tests on it (``l2vit.data_checks``), and makes a data
file that breaks later name itself."""
from typing import List, Optional, Tuple

import torch
from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..data_checks import IGNORE_INDEX, batch_label_problem, check_dataset, ignored_batch, leaf_datasets
from ..errors import DataError

#: How many batches whose pixels are all ignored are warned about.
MAX_WARNINGS = 5


class NamingPipeline:
    """A dataset's ``pipeline`` (mmengine's ``Compose``), run transform by transform as ``Compose`` runs it, whose
    exceptions become a ``DataError`` naming the sample's files, the transform and the original error.

    Picklable (DataLoader workers get a copy), and raised in a worker it reaches the main process intact: torch
    re-raises a worker's exception by its type with one string, which ``DataError`` takes. Other attributes
    (``transforms``) are the wrapped pipeline's."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline

    def __call__(self, data):
        files = ', '.join(str(data[k]) for k in ('img_path', 'seg_map_path') if isinstance(data, dict) and data.get(k))
        for transform in getattr(self.pipeline, 'transforms', None) or [self.pipeline]:
            try:
                data = transform(data)
            except Exception as err:
                raise DataError(f'{files or "a sample"}: {type(transform).__name__} failed on it: '
                                f'{type(err).__name__}: {err}. Fix: restore or re-save the file, or remove it from '
                                f'the annotations.') from err
            if data is None:
                return None
        return data

    def __getattr__(self, name: str):
        if name == 'pipeline':  # not set yet (while unpickling)
            raise AttributeError(name)
        return getattr(self.pipeline, name)

    def __repr__(self) -> str:
        return f'NamingPipeline({self.pipeline!r})'


class DataCheckHook(Hook):
    """Stop a run before its first iteration when its data would train wrong, and name the file when one breaks.

    * ``before_train`` (train and val datasets), ``before_val`` / ``before_test`` (a dataset not checked yet): the
      checks of ``l2vit.data_checks`` on the datasets the Runner built (no annotation file is parsed again, except
      a COCO file's categories), run by the main process; one ``DataError`` lists every problem with its fix, and
      warnings go to the log. ``check=False`` skips them.
    * Each dataset's ``pipeline`` is wrapped in a ``NamingPipeline``. An ``IterBasedTrainLoop`` started its
      DataLoader workers when it was built, before any hook, with the pipeline unwrapped: they are started again.
      The run reads and draws what it would have without the restart (see ``_restart_workers``).
    * ``before_train_iter``: a segmentation batch's labels with values that are neither a class nor the ignore
      index stop the run with the files named (a comparison on the batch's labels; the start-up check decodes only
      a sample of the label maps). A batch whose pixels are all ignored is a warning naming its files (the first
      ``MAX_WARNINGS``), not a stop: a crop can be all unlabelled; label maps that are all ignored throughout are
      found by the start-up sample.
    """

    priority = 'HIGHEST'  # the data is checked before any other hook starts on it

    def __init__(self, check: bool = True) -> None:
        self.check = check
        self._checked = set()
        self._num_classes: Optional[int] = None
        self._ignore_index = IGNORE_INDEX
        self._ignored_warnings = 0

    def before_train(self, runner) -> None:
        self._prepare(runner, [('train_dataloader', runner.train_dataloader),
                               ('val_dataloader', getattr(runner.val_loop, 'dataloader', None))])
        _restart_workers(runner.train_loop)
        leaves = leaf_datasets(runner.train_dataloader.dataset, 'train_dataloader.dataset')
        if any(hasattr(d, 'reduce_zero_label') for _, d in leaves):  # mmseg's datasets
            self._num_classes = len(leaves[0][1].metainfo.get('classes') or ()) or None
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            self._ignore_index = getattr(getattr(model, 'decode_head', None), 'ignore_index', IGNORE_INDEX)

    def before_val(self, runner) -> None:
        self._prepare(runner, [('val_dataloader', getattr(runner.val_loop, 'dataloader', None))])

    def before_test(self, runner) -> None:
        self._prepare(runner, [('test_dataloader', getattr(runner.test_loop, 'dataloader', None))])

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._num_classes:
            problem = batch_label_problem(data_batch, self._num_classes, self._ignore_index)
            if problem:
                raise DataError(f'at iteration {runner.iter + 1}: {problem}')
            ignored = ignored_batch(data_batch, self._ignore_index) if self._ignored_warnings < MAX_WARNINGS else []
            if ignored:
                self._ignored_warnings += 1
                more = ' (the last such warning)' if self._ignored_warnings == MAX_WARNINGS else ''
                runner.logger.warning(f'iteration {runner.iter + 1}: every pixel of this batch is ignored '
                                      f'({self._ignore_index}), so it teaches nothing: {", ".join(ignored)}. Check '
                                      f'these label maps and reduce_zero_label{more}.')

    def _prepare(self, runner, loaders) -> None:
        """Check the datasets of ``loaders`` (``(config key, DataLoader or None)``) not checked yet, then wrap every
        one's pipeline."""
        leaves = [leaf for key, loader in loaders if loader is not None
                  for leaf in leaf_datasets(loader.dataset, f'{key}.dataset')]
        new = [(key, d) for key, d in leaves if id(d) not in self._checked]
        if self.check and new:
            result = [_check_all(new) if is_main_process() else None]
            broadcast_object_list(result)  # every process stops, or none
            errors, warnings = result[0]
            for warning in warnings:
                runner.logger.warning(warning)
            if errors:
                raise DataError('the data would train wrong (DataCheckHook, before the first iteration):\n' +
                                '\n'.join(errors))
        self._checked.update(id(d) for _, d in new)
        for _, dataset in leaves:
            if hasattr(dataset, 'pipeline') and not isinstance(dataset.pipeline, NamingPipeline):
                dataset.pipeline = NamingPipeline(dataset.pipeline)


def _check_all(datasets) -> Tuple[List[str], List[str]]:
    errors, warnings = [], []
    for key, dataset in datasets:
        more, also = check_dataset(dataset, key)
        errors += more
        warnings += also
    return errors, warnings


def _restart_workers(loop) -> None:
    """An ``IterBasedTrainLoop`` iterates its DataLoader from its construction (``dataloader_iterator``): with
    worker processes, start them again, so that they get the datasets as they are now, and as if they had not been
    started before: mmengine's ``InfiniteSampler`` (which yields from one generator for its lifetime) starts its
    sequence again, and the random number drawn for the new workers' seed is given back (mmengine seeds each worker
    itself), so that the run draws and reads what it would have without the restart."""
    iterator = getattr(loop, 'dataloader_iterator', None)
    loader = getattr(loop, 'dataloader', None)
    if iterator is None or not getattr(loader, 'num_workers', 0):
        return
    sampler = getattr(loader, 'sampler', None)
    if hasattr(sampler, '_indices_of_rank'):
        sampler.indices = sampler._indices_of_rank()
    loader._iterator = None  # where torch keeps persistent workers; the old ones end with the old iterator
    state = torch.get_rng_state()
    loop.dataloader_iterator = type(iterator)(loader)
    torch.set_rng_state(state)
