"""Eager-CPU fast paths of L²ViT, kept apart from the model: ``L2ViT(cpu_fast_paths=True)`` or
:func:`use_cpu_fast_paths` swaps them in; the plain modules of :mod:`l2vit.models` are the model."""
import os
import warnings

from .modules import use_cpu_fast_paths

if 'L2VIT_CACHE_BLOCKED' in os.environ:  # the switch of earlier releases: say that it does nothing now
    warnings.warn('L2VIT_CACHE_BLOCKED is no longer read: the cache-blocked CPU inference is one of the CPU fast '
                  'paths, chosen with L2ViT(cpu_fast_paths=True|False) in the config or '
                  'l2vit.models.use_cpu_fast_paths(model, enable=True|False).')

__all__ = ['use_cpu_fast_paths']
