"""Registers L²ViT in mmdet: `custom_imports=dict(imports=['mmdet_l2vit'])` then `type='L2ViT'`."""
from mmdet.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from l2vit import L2ViT, LayerDecayOptimWrapperConstructor, register_into

register_into(MODELS, OPTIM_WRAPPER_CONSTRUCTORS)

__all__ = ['L2ViT', 'LayerDecayOptimWrapperConstructor']
