"""Registers L²ViT in mmpretrain: `custom_imports=dict(imports=['mmpretrain_l2vit'])` then `type='L2ViT'`; and our
ImageNet classifiers in mmpretrain's model zoo: `mmpretrain.get_model('l2vit-t_in1k')` (see l2vit/model_zoo.py)."""
from mmpretrain.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from l2vit import L2ViT, LayerDecayOptimWrapperConstructor, RNGStateHook, register_into
from l2vit.model_zoo import register_mmpretrain_models

register_into(MODELS, OPTIM_WRAPPER_CONSTRUCTORS, HOOKS)
register_mmpretrain_models()

__all__ = ['L2ViT', 'LayerDecayOptimWrapperConstructor', 'RNGStateHook']
