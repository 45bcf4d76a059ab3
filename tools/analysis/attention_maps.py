#!/usr/bin/env python
"""Draw and measure where every L²ViT block attends, for chosen query points of an image.

    python tools/analysis/attention_maps.py CONFIG CHECKPOINT IMAGE --out-dir DIR [--points Y,X ...] [--radius 3]
                                            [--size S | --size H W] [--device cpu] [--cfg-options KEY=VALUE ...]

Works with the L²ViT backbone of any of our detection, segmentation or classification configs (and the models
trained by ``make demo`` / ``make demo-seg``); only the backbone runs, once. The checkpoint is read weights-only.

The paper's observation is that linear attention lacks the concentration of softmax attention, and that the local
concentration module (LCM) of the linear blocks restores local focus. This tool shows, on your model and image, the
attention distributions themselves: how spread out each linear block's attention is, next to the window blocks'.

What is drawn
    For each query point (pixel row, column of IMAGE; by default its centre, the centre of its top-left quarter and
    that of its bottom-right quarter) one PNG, ``attention_p<k>_y<Y>_x<X>.png``: a grid of tiles, one per block,
    a row per stage (long stages wrap), in depth order. A tile is the image with the block's attention of the query
    token overlaid, averaged over the heads: colours go from blue (no weight) to red (the tile's own maximum; every
    tile has its own colour scale, so compare spreads, not colours), and weightless areas stay almost clear. The
    white cross is the query token. The tile's title is green for window blocks and blue for linear blocks and reads
    ``H`` (entropy in nats / its maximum, log of the number of keys) and ``loc`` (share of the mass within the radius
    / what a uniform distribution would give).

    * Window blocks (even blocks of each stage): the softmax weights over the query's own window (white frame);
      nothing outside it can receive weight (in stage 0 of a large input the window is only a few tile pixels wide).
      The windows' zero padding on the right/bottom also takes part as keys; the share it takes is ``padded_mass``
      in the JSON (counted in the statistics too) and it is not drawn.
    * Linear blocks (odd blocks): the linear attention's implied weights over all tokens of the stage, normalised
      to a distribution, relu(q)·relu(k_j) / Σ_j relu(q)·relu(k_j) (as the authors visualise it). Weight spread
      over the whole image with little extra at the query (high entropy, ``loc`` near its uniform value) is the
      missing concentration; the LCM (two 7×7 depthwise convolutions after the attention, not drawn) is what adds
      the local focus back.

How to read the numbers
    ``stats.json`` has, for every point and every block, ``entropy`` and ``local_mass`` (mean over heads), the same
    per head, and their references ``max_entropy`` and ``uniform_local_mass``; window blocks add ``padded_mass``,
    linear blocks ``clamped`` (whether the denominator clamp at 100 is active for the query, per head) and
    ``implied_weight_sum`` (the row sum of the un-normalised weights, temperature · min(1, q·Σk / 100)). The radius is
    a Chebyshev distance in tokens of the block's stage (``--radius 3``: the 7×7 square of the LCM's kernels and of a
    7×7 window), so it covers more of the image in deeper stages. ``stats_by_depth.png`` plots entropy and local
    mass against block depth, window and linear blocks as separate series (mean over the points, each point faint),
    with the uniform references dotted.

Input
    IMAGE is resized like the config's test pipeline (its first ``Resize``/``ResizeEdge``; crops are skipped so the
    whole image is analysed), or to ``--size`` (one number: the longer side; two: height and width; 0: as it is),
    then normalised with the model's data preprocessor (mean, std, BGR→RGB). No batch padding is applied: the
    backbone pads to its strides itself.
"""
import argparse
import sys
from typing import Tuple

from l2vit.errors import error_exit  # noqa: E402


def parse_point(text: str) -> Tuple[float, float]:
    try:
        y, x = (float(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'a point is Y,X in pixels (row, column), got {text!r}') from None
    return y, x


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='See the module docstring (head of this file) for how to read the output.')
    parser.add_argument('config', help='model config with an L2ViT backbone (detection, segmentation or ImageNet)')
    parser.add_argument('checkpoint', help='weights (.pth): an mmengine checkpoint or the authors\' release')
    parser.add_argument('image', help='the image to analyse')
    parser.add_argument('--out-dir', required=True, help='folder for the PNGs and stats.json')
    parser.add_argument('--points', nargs='+', type=parse_point, metavar='Y,X',
                        help='query points in pixels of IMAGE (row,column); default: the centre and the centres of '
                        'the top-left and bottom-right quarters')
    parser.add_argument('--radius', type=float, default=3,
                        help='local-mass radius: Chebyshev distance in tokens of each stage (default 3: a 7x7 square)')
    parser.add_argument('--size', type=int, nargs='+', metavar='N',
                        help='resize IMAGE to this longer side (one number) or height and width (two); 0 keeps it. '
                        'Default: the config\'s test resize')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1, ...')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.backbone.window_size=12')
    args = parser.parse_args(argv)
    if args.radius < 0:
        parser.error(f'--radius must be >= 0, got {args.radius}')
    if args.size is not None and (len(args.size) > 2 or any(s < 0 for s in args.size)
                                  or (len(args.size) == 2 and 0 in args.size)):
        parser.error(f'--size takes one number >= 0 (longer side, 0 = unchanged) or two positive ones (H W), got '
                     f'{args.size}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from l2vit.analysis import image_attention, report
    with error_exit():
        found = image_attention(args.config, args.checkpoint, args.image, points=args.points, radius=args.radius,
                                size=args.size, device=args.device, cfg_options=args.cfg_options)
    for path in report.write_attention(found, args.out_dir):
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
