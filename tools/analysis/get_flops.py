#!/usr/bin/env python
"""Count the FLOPs and parameters of a model config with an L²ViT backbone.

    python tools/analysis/get_flops.py CONFIG [--shape H [W]] [--cfg-options KEY=VALUE ...] [--show-table]

FLOPs are multiply-adds, as mmengine's FlopAnalyzer counts them (one multiply-add = one flop; element-wise ops such
as residual additions, activations and softmax are not counted), with the attention matrix products included: the
window attention's ``q·kᵀ`` and ``attn·v`` (computed by ``scaled_dot_product_attention``, which mmengine alone would
count as zero) and the linear attention's ``kᵀv``, ``q·(kᵀv)`` and ``q·Σk`` (see ``l2vit/analysis/flops.py``).

What is counted, on one random 1×3×H×W image (the model is built without pretrained weights):

* mmpretrain classifiers: the whole model in tensor mode (backbone, neck, head -> class scores); default: the
  test pipeline's image size (its last fixed-size Resize or CenterCrop: 224×224, 384×384 for the 384² config),
  224×224 if it has none. The backbone's share of that trace is shown as well.
* mmdet detectors: the backbone alone, and the whole model as ``model._forward`` (backbone, neck, heads in tensor
  mode; two-stage detectors include the RPN and the RoI head on its proposals); default 800×1333. The RoI head's
  cost depends on how many proposals the RPN keeps for the random image, up to the config's ``max_per_img``.
* mmseg segmentors: the backbone alone, and the whole model in tensor mode (backbone, neck, decode head; the
  auxiliary head runs only in training and is not counted); default 512×512.

The image is used as given, not padded to the data preprocessor's size divisor (the backbone pads to its strides
itself). If the whole model cannot be traced the tool says so and still prints the backbone.
"""
import argparse
import sys
import time
import warnings
from typing import Optional, Sequence

from l2vit.errors import error_exit

warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='a config of ours (ImageNet, detection or segmentation)')
    parser.add_argument('--shape', type=int, nargs='+', metavar='N',
                        help='input height and width (one number: a square); default: the test crop/resize of an '
                        'mmpretrain config (224), 800 1333 for mmdet, 512 512 for mmseg')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.backbone.window_size=12')
    parser.add_argument('--show-table', action='store_true', help='also print mmengine\'s per-module table')
    parser.add_argument('--max-depth', type=int, default=3, help='depth of the per-module table (default 3)')
    args = parser.parse_args(argv)
    if args.shape is not None and (len(args.shape) > 2 or any(s < 1 for s in args.shape)):
        parser.error(f'--shape takes one or two positive numbers (H [W]), got {args.shape}')
    return args


def format_table(rows: Sequence[tuple]) -> str:
    """The rows as a Markdown table: parameters in M, FLOPs in G, two decimals (``n/a`` for None)."""
    lines = [f'| {"part":<12} | {"params (M)":>10} | {"FLOPs (G)":>9} |', f'|{"-" * 14}|{"-" * 11}:|{"-" * 10}:|']
    for name, params, flops in rows:
        p = f'{params / 1e6:.2f}' if params is not None else 'n/a'
        f = f'{flops / 1e9:.2f}' if flops is not None else 'n/a'
        lines.append(f'| {name:<12} | {p:>10} | {f:>9} |')
    return '\n'.join(lines)


def print_model_flops(config: str, shape: Optional[Sequence[int]] = None, cfg_options: Optional[dict] = None,
                      show_table: bool = False, max_depth: int = 3) -> None:
    """What ``tools/analysis/get_flops.py`` prints for a config: its model's parameters and FLOPs (the backbone's
    too) on one random image of ``shape`` ((H, W) or (N, ): a square; default: :data:`DEFAULT_SHAPES`, or an
    mmpretrain config's test size), the notes, and with ``show_table`` mmengine's per-module tables."""
    import torch
    from mmengine.analysis.print_helper import complexity_stats_table

    from l2vit.analysis.flops import DEFAULT_SHAPES, build_model, classifier_test_size, count_model
    from l2vit.models import L2ViT

    torch.manual_seed(0)
    model, scope, cfg = build_model(config, cfg_options)
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, L2ViT):
        print(f'note: model.backbone is {type(backbone).__name__}, not L2ViT; counting it all the same.')
    if shape is None:
        size = (scope == 'mmpretrain' and classifier_test_size(cfg)) or DEFAULT_SHAPES[scope]
    else:
        size = (shape[0], shape[-1])
    start = time.perf_counter()
    rows, notes, tables = count_model(model, scope, size, config)
    print(f'config: {config} ({scope}, {type(model).__name__})')
    print(f'input shape: 1x3x{size[0]}x{size[1]}')
    print(format_table(rows))
    print('FLOPs: multiply-adds (mmengine convention), attention products included.')
    for note in notes:
        print(f'note: {note}')
    if show_table:
        for name, analyzer in tables:
            print(f'\n{name}, per module:')
            print(complexity_stats_table(analyzer, max_depth=max_depth, show_param_shapes=False))
    print(f'(counted in {time.perf_counter() - start:.1f} s)', file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    with error_exit():
        print_model_flops(args.config, args.shape, args.cfg_options, show_table=args.show_table,
                          max_depth=args.max_depth)
    return 0


if __name__ == '__main__':
    sys.exit(main())
