"""The hook that refuses a config whose settings do not fit together, for runs started by the libraries' own tools
(ours check the same in the preflight, ``l2vit.apis.checks``, before anything is built)."""
from mmengine.hooks import Hook

from ..errors import ToolError


class ConfigCheckHook(Hook):
    """Stop a run whose config does not fit together, naming each problem and its fix (``ToolError``).

    * ``before_run`` (training or testing, before any weight is loaded): a neck that does not fit the L2ViT stages
      it receives (:func:`l2vit.apis.checks.wiring_problems`: a DINO ChannelMapper's levels, any neck's widths), which
      mmdet reports only as a channel error at the first forward.
    * ``before_train``: what only training reads (:func:`l2vit.apis.checks.training_config_problems`): a Mask2Former
      ``loss_cls.class_weight`` for another class count (the loss would stop at the first iteration), an
      ``image_size`` / ``crop_size`` restated in a child config without the crops and padding its base built from it
      (silent); a head's ``num_classes`` (a panoptic head's ``num_things_classes`` / ``num_stuff_classes``) that
      differs from the classes of the training dataset the Runner built (``checks.num_classes_problems``).
    """

    priority = 'VERY_HIGH'  # before DataCheckHook reads the data

    def before_run(self, runner) -> None:
        from ..apis.checks import wiring_problems
        self._stop(wiring_problems(runner.cfg))

    def before_train(self, runner) -> None:
        from ..apis.checks import num_classes_problems, training_config_problems
        from ..apis.config_tree import run_inputs
        from ..data_checks import leaf_datasets
        inputs = run_inputs(runner.cfg, ['train_dataloader'])
        leaves = leaf_datasets(runner.train_dataloader.dataset, 'train_dataloader.dataset')
        classes = num_classes_problems(inputs, leaves[0][1].metainfo) if leaves and inputs.datasets else []
        self._stop(training_config_problems(runner.cfg) + classes)

    @staticmethod
    def _stop(problems) -> None:
        if problems:
            raise ToolError('the config would not run as intended (ConfigCheckHook, before the first iteration):\n'
                            + '\n'.join(problems))
