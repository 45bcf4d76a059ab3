"""Registers L²ViT in mmseg: `custom_imports=dict(imports=['mmseg_l2vit'])` then `type='L2ViT'`."""
from mmseg.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from l2vit import L2ViT, LayerDecayOptimWrapperConstructor, register_into

register_into(MODELS, OPTIM_WRAPPER_CONSTRUCTORS)

__all__ = ['L2ViT', 'LayerDecayOptimWrapperConstructor']
