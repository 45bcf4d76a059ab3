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
      (silent).
    """

    priority = 'VERY_HIGH'  # before DataCheckHook reads the data

    def before_run(self, runner) -> None:
        from ..apis.checks import wiring_problems
        self._stop(wiring_problems(runner.cfg))

    def before_train(self, runner) -> None:
        from ..apis.checks import training_config_problems
        self._stop(training_config_problems(runner.cfg))

    @staticmethod
    def _stop(problems) -> None:
        if problems:
            raise ToolError('the config would not run as intended (ConfigCheckHook, before the first iteration):\n'
                            + '\n'.join(problems))
