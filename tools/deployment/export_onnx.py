#!/usr/bin/env python
"""Export a model of our configs (or its backbone, or backbone + neck) to ONNX, optionally checked in onnxruntime.

    python tools/deployment/export_onnx.py CONFIG [--checkpoint CKPT] --shape H [W] --out FILE.onnx [--dynamic]
        [--part model|backbone|neck] [--opset N] [--batch N] [--verify] [--tolerance T] [--cfg-options K=V ...]

``--part model`` (default): an mmpretrain classifier (logits) or an mmseg UperNet / EncoderDecoder (logits at the
input size). ``--part backbone``: the backbone of any config, its feature maps as outputs ``stage0``..``stage3``.
``--part neck``: backbone + neck (a detector's FPN), outputs ``neck0``... Whole detectors are not exported (see
docs/deployment.md).

The input is ``image``, (B, 3, H, W) float32 after the config's data preprocessor (normalised; the mean, std and
channel order are printed and stored in the file's metadata). ``--dynamic``: batch, height and width stay free; one
file runs at any size (the padding to whole windows and strides is computed in the graph). ``--verify``: run the file
in onnxruntime (CPU) against torch at the export size and, with ``--dynamic``, at two other sizes and batch sizes,
and print every output's error (max |ort - torch| / max |torch|); exit 2 above ``--tolerance`` (1e-4).

Weights: ``--checkpoint`` (a file or URL) is read weights-only, as everywhere in this project, and must fit the
exported part strictly. Without it the config's initialisation is exported (random weights), and the tool says so.
The default opset is 17 (``scaled_dot_product_attention`` needs 14, ``einsum`` 12, LayerNorm is one node from 17).
"""
import argparse
import sys
from typing import Optional, Sequence

from l2vit.errors import error_exit


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    from l2vit.deploy.export import DEFAULT_OPSET, PARTS
    from l2vit.deploy.runtime import DEFAULT_TOLERANCE
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='a config of ours (ImageNet, detection or segmentation)')
    parser.add_argument('--checkpoint', help='weights to export (file or URL); default: the config\'s initialisation')
    parser.add_argument('--shape', type=int, nargs='+', required=True, metavar='N',
                        help='input height and width to trace at (one number: a square), at least 32')
    parser.add_argument('--out', required=True, metavar='FILE.onnx', help='the ONNX file to write')
    parser.add_argument('--dynamic', action='store_true', help='batch, height and width dynamic (one file, any size)')
    parser.add_argument('--part', choices=PARTS, default='model',
                        help='model (classifier or segmentor), backbone, or neck (backbone + neck); default: model')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default {DEFAULT_OPSET})')
    parser.add_argument('--batch', type=int, default=1, help='batch size to trace with (default 1)')
    parser.add_argument('--verify', action='store_true', help='check the file in onnxruntime against torch')
    parser.add_argument('--tolerance', type=float, default=DEFAULT_TOLERANCE,
                        help=f'largest relative error --verify accepts (default {DEFAULT_TOLERANCE:g})')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.backbone.window_size=12')
    args = parser.parse_args(argv)
    if len(args.shape) > 2:
        parser.error(f'--shape takes one or two numbers (H [W]), got {args.shape}')
    if args.batch < 1:
        parser.error(f'--batch must be a positive integer, got {args.batch}')
    if not args.out.endswith('.onnx'):
        parser.error(f'--out must name a .onnx file, got {args.out}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from l2vit.deploy.export import ExportRequest, run_export_tool

    with error_exit():
        request = ExportRequest(config=args.config, out=args.out, shape=tuple(args.shape), checkpoint=args.checkpoint,
                                part=args.part, dynamic=args.dynamic, opset=args.opset, batch=args.batch,
                                cfg_options=args.cfg_options)
        return run_export_tool(request, check=args.verify, tolerance=args.tolerance)


if __name__ == '__main__':
    sys.exit(main())
