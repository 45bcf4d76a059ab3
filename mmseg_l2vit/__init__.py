"""Registers L²ViT in mmseg: `custom_imports=dict(imports=['mmseg_l2vit'])` then `type='L2ViT'`."""
from mmseg.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from l2vit import L2ViT, LayerDecayOptimWrapperConstructor, RNGStateHook, register_into

register_into(MODELS, OPTIM_WRAPPER_CONSTRUCTORS, HOOKS)

__all__ = ['L2ViT', 'LayerDecayOptimWrapperConstructor', 'RNGStateHook']
