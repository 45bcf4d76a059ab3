"""Eager-CPU fast paths of L²ViT, kept apart from the model: ``L2ViT(cpu_fast_paths=True)`` or
:func:`use_cpu_fast_paths` swaps them in; the plain modules of :mod:`l2vit.models` are the model."""
from .modules import use_cpu_fast_paths, uses_cpu_fast_paths

__all__ = ['use_cpu_fast_paths', 'uses_cpu_fast_paths']
