"""Analyses of L²ViT models, as functions; ``tools/analysis/*.py`` parse their options and make one call here.

* :mod:`~l2vit.analysis.attention`: where each block attends, one query at a time (recorded block inputs, the
  linear attention's implied weights, the window softmax, concentration statistics).
* :mod:`~l2vit.analysis.attention_maps`: that analysis of a trained model on an image, written as PNGs and
  ``stats.json`` (``tools/analysis/attention_maps.py``); :mod:`~l2vit.analysis.attention_render` draws them.
* :mod:`~l2vit.analysis.flops`: FLOPs with the attention products counted, of a module or of a config's model
  (``tools/analysis/get_flops.py``).
* :mod:`~l2vit.analysis.benchmark`: time and memory of L²ViT-T, Swin-T and ViT-S/16 (and of a Mask R-CNN training
  iteration with L²ViT-T or Swin-T) measured into a JSON-able record; :mod:`~l2vit.analysis.benchmark_report`
  renders a record (tables, Markdown page, plot); :mod:`~l2vit.analysis.benchmark_tool` is
  ``tools/analysis/benchmark.py``'s flow; :mod:`~l2vit.analysis.op_profile` sums a profiled step's self time by op
  family and direction (``--profile``).
* :mod:`~l2vit.analysis.detector`: our Mask R-CNN config with any backbone dict, built with its optimizer wrapper
  for ``train_step``, and a packed batch of random images with ground truth.

Not imported by ``import l2vit``; OpenCV, matplotlib, mmdet and mmseg are imported only by the functions that use
them.
"""
from .attention import (AttentionRecorder, BlockAttention, BlockInput, LinearAttentionWeights, analyse_attention,
                        attention_statistics, block_attention, linear_attention_weights, split_qkv, token_of_pixel,
                        window_attention_weights)
from .attention_maps import attention_stats, write_attention_maps
from .attention_render import draw_grid, plot_by_depth, render_tile
from .benchmark import derive, evaluate_targets, load_report, measure_report, save_report
from .benchmark_report import print_report, render_markdown, report_lines, write_docs
from .benchmark_tool import run_benchmark_tool
from .detector import Detector, build_detector, detector_config, packed_batch
from .flops import (ATTENTION_FLOP_HANDLES, DEFAULT_SHAPES, build_model, classifier_test_size, count_flops, count_model,
                    einsum_flop_jit, flop_analyzer, print_model_flops, sdpa_flop_jit, sdpa_macs)

__all__ = [
    'AttentionRecorder', 'BlockAttention', 'BlockInput', 'LinearAttentionWeights', 'analyse_attention',
    'attention_statistics', 'block_attention', 'linear_attention_weights', 'split_qkv', 'token_of_pixel',
    'window_attention_weights', 'attention_stats', 'write_attention_maps', 'draw_grid', 'plot_by_depth', 'render_tile',
    'derive', 'evaluate_targets', 'load_report', 'measure_report', 'save_report', 'print_report', 'render_markdown',
    'report_lines', 'write_docs', 'run_benchmark_tool', 'Detector', 'build_detector', 'detector_config', 'packed_batch',
    'ATTENTION_FLOP_HANDLES', 'DEFAULT_SHAPES', 'build_model',
    'classifier_test_size', 'count_flops', 'count_model', 'einsum_flop_jit', 'flop_analyzer', 'print_model_flops',
    'sdpa_flop_jit', 'sdpa_macs'
]
