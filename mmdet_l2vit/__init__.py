"""Registers L²ViT in mmdet: `custom_imports=dict(imports=['mmdet_l2vit'])` then `type='L2ViT'`."""
from mmdet.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from l2vit import L2ViT, LayerDecayOptimWrapperConstructor, RNGStateHook, register_into

register_into(MODELS, OPTIM_WRAPPER_CONSTRUCTORS, HOOKS)

__all__ = ['L2ViT', 'LayerDecayOptimWrapperConstructor', 'RNGStateHook']
