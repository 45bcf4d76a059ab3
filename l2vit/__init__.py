"""L²ViT for the OpenMMLab 2.x stack: the one model implementation (torch + mmengine + mmcv only)."""
from .checkpoint import CheckpointError, convert_official, load_checkpoint_file, load_pretrained
from .models import L2ViT
from .optim import LayerDecayOptimWrapperConstructor
from .version import __version__


def register_into(models, optim_wrapper_constructors) -> None:
    """Register L²ViT and the layer-decay constructor in a downstream library's registries (each library's
    ``mm*_l2vit`` package calls this with its own ``MODELS`` and ``OPTIM_WRAPPER_CONSTRUCTORS``)."""
    models.register_module(module=L2ViT)
    optim_wrapper_constructors.register_module(module=LayerDecayOptimWrapperConstructor)


__all__ = [
    'L2ViT', 'LayerDecayOptimWrapperConstructor', 'CheckpointError', 'convert_official', 'load_checkpoint_file',
    'load_pretrained', 'register_into', '__version__'
]
