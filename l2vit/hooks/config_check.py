"""The hook that refuses, before the first iteration, config settings that would stop a run later or train wrong
silently, for runs started by the libraries' own tools (ours check them in the preflight)."""
from mmengine.hooks import Hook

from ..errors import ToolError


class ConfigCheckHook(Hook):
    """Run :func:`l2vit.apis.checks.mask_head_problems` on the run's config when training starts: a Mask2Former
    ``loss_cls.class_weight`` whose length does not match the classes (mmdet's and mmseg's loss would stop at the
    first iteration) and an ``image_size`` restated in a child config that did not reach the LSJ crop and padding
    (silent). Raises :class:`~l2vit.errors.ToolError` naming each problem and its fix."""

    priority = 'VERY_HIGH'  # before DataCheckHook reads the data

    def before_train(self, runner) -> None:
        from ..apis.checks import mask_head_problems
        problems = mask_head_problems(runner.cfg)
        if problems:
            raise ToolError('the config would not train as intended (ConfigCheckHook, before the first '
                            'iteration):\n' + '\n'.join(problems))
