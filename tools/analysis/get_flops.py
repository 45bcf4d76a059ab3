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

from l2vit.errors import error_exit


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


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.analysis.print_helper import complexity_stats_table

    from l2vit.analysis.flops import count_config
    from l2vit.analysis.report import fmt, table
    with error_exit():
        counted = count_config(args.config, args.shape, args.cfg_options)
    print(f'config: {args.config} ({counted["scope"]}, {counted["model"]})')
    print('input shape: 1x3x{}x{}'.format(*counted['size']))
    print('\n'.join(table(['part', 'params (M)', 'FLOPs (G)'], [
        [part, fmt(params, 2, 1e6), fmt(flops, 2, 1e9)] for part, params, flops in counted['rows']])))
    print('FLOPs: multiply-adds (mmengine convention), attention products included.')
    print('\n'.join(f'note: {note}' for note in counted['notes']))
    for name, analyzer in counted['tables'] if args.show_table else ():
        print(f'\n{name}, per module:')
        print(complexity_stats_table(analyzer, max_depth=args.max_depth, show_param_shapes=False))
    return 0


if __name__ == '__main__':
    sys.exit(main())
