"""Analyses of L²ViT models; ``tools/analysis/*.py`` parse their options, call one of these and render the result.

* :func:`analyse_attention` / :func:`image_attention`: where each block attends, one query at a time.
* :func:`count_flops`: FLOPs with the attention products counted (``get_flops.py`` counts a config with
  :func:`~l2vit.analysis.flops.count_model`).
* :func:`measure_steps` / :func:`benchmark_backbones`: time and peak memory, measured side by side, as plain data.
* :func:`compare`: a config's backbone swapped for Swin-T, ConvNeXt-T or ResNet-50, counted, timed and trained.

Not imported by ``import l2vit``; OpenCV, matplotlib, mmdet and mmseg are imported by the functions that use them.
"""
from .attention import analyse_attention
from .attention_maps import image_attention
from .benchmark import benchmark_backbones, measure_steps
from .compare import compare
from .flops import count_flops

__all__ = ['analyse_attention', 'image_attention', 'count_flops', 'measure_steps', 'benchmark_backbones',
           'compare']
