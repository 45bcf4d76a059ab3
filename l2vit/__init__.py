"""L²ViT for the OpenMMLab 2.x stack: the one model implementation (torch + mmengine + mmcv only)."""
from .checkpoint import (convert_official, load_checkpoint_file, load_checkpoint_url, load_pretrained,
                         register_checkpoint_loading)
from .errors import CheckpointError
from .hooks import HOOK_CLASSES, RNGStateHook
from .models import L2ViT
from .optim import LayerDecayOptimWrapperConstructor
from .quiet import filter_known_warnings
from .version import __version__

# Every checkpoint mmengine reads in a process that uses L²ViT is read weights-only, with the authors' files understood
# (see l2vit.checkpoint.register_checkpoint_loading); importing mmdet_l2vit, mmseg_l2vit or mmpretrain_l2vit (what a
# config's custom_imports does) imports this package first.
register_checkpoint_loading()
# Warnings the user cannot act on (pkg_resources' deprecation, ...), filtered by message and module: l2vit/quiet.py.
filter_known_warnings()


def register_into(models, optim_wrapper_constructors, hooks) -> None:
    """Register L²ViT, the layer-decay constructor and our hooks (``l2vit.hooks.HOOK_CLASSES``) in a downstream
    library's registries (each library's ``mm*_l2vit`` package calls this with its own ``MODELS``,
    ``OPTIM_WRAPPER_CONSTRUCTORS`` and ``HOOKS``)."""
    models.register_module(module=L2ViT)
    optim_wrapper_constructors.register_module(module=LayerDecayOptimWrapperConstructor)
    for hook in HOOK_CLASSES:
        hooks.register_module(module=hook)


__all__ = [
    'L2ViT', 'LayerDecayOptimWrapperConstructor', 'RNGStateHook', 'CheckpointError', 'convert_official',
    'load_checkpoint_file', 'load_checkpoint_url', 'load_pretrained', 'register_checkpoint_loading', 'register_into',
    '__version__'
]
