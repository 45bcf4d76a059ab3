#!/usr/bin/env python
"""Count the FLOPs and parameters of a model config with an L²ViT backbone.

    python tools/analysis/get_flops.py CONFIG [--shape H [W]] [--cfg-options KEY=VALUE ...] [--show-table]

FLOPs are multiply-adds, as mmengine's FlopAnalyzer counts them (one multiply-add = one flop; element-wise ops such
as residual additions, activations and softmax are not counted), with the attention matrix products included: the
window attention's ``q·kᵀ`` and ``attn·v`` (computed by ``scaled_dot_product_attention``, which mmengine alone would
count as zero) and the linear attention's ``kᵀv``, ``q·(kᵀv)`` and ``q·Σk`` (see ``l2vit/flops.py``).

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
import copy
import os.path as osp
import sys
import time
import warnings
from typing import Any, List, Optional, Tuple

from l2vit.errors import fail

warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

DEFAULT_SHAPES = {'mmpretrain': (224, 224), 'mmdet': (800, 1333), 'mmseg': (512, 512)}
NOTE = 'FLOPs: multiply-adds (mmengine convention), attention products included.'


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


def drop_pretrained(cfg: Any) -> None:
    """Remove every ``init_cfg`` (and ``pretrained``) that would load a file: FLOPs need no weights."""
    if isinstance(cfg, dict):
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        elif isinstance(init, list):
            cfg['init_cfg'] = [c for c in init if not (isinstance(c, dict) and c.get('type') == 'Pretrained')]
        if isinstance(cfg.get('pretrained'), str):
            cfg['pretrained'] = None
        for value in cfg.values():
            drop_pretrained(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            drop_pretrained(value)


def build_model(config: str, cfg_options: Optional[dict]):
    """The config's model, built in its default scope without pretrained weights, in eval mode; and the scope."""
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import MODELS, init_default_scope

    if not osp.isfile(config):
        fail(f'config file not found: {config}')
    cfg = Config.fromfile(config)  # imports custom_imports (mmdet_l2vit, ...), registering L2ViT
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in DEFAULT_SHAPES:
        fail(f'{config} has default_scope {scope!r}; this tool knows {sorted(DEFAULT_SHAPES)} (inherit an mmdet::, '
             f'mmseg:: or mmpretrain:: runtime base or set default_scope).')
    if 'model' not in cfg:
        fail(f'{config} defines no model')
    init_default_scope(scope)
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:  # as mmengine's Runner does (mmpretrain keeps it at top level)
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    drop_pretrained(model_cfg)
    # The latest logger is mmengine's 'current' one: keep building and init_weights quiet (no list of parameters).
    MMLogger.get_instance('l2vit_get_flops', log_level='WARNING')
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model.eval(), scope, cfg


def classifier_test_size(cfg) -> Optional[Tuple[int, int]]:
    """(H, W) the test pipeline of an mmpretrain config gives its images (last fixed-size Resize or CenterCrop),
    e.g. 384×384 for the 384² fine-tuned base; None if it has none."""
    try:
        pipeline = cfg.test_dataloader.dataset.pipeline
    except AttributeError:
        pipeline = cfg.get('test_pipeline') or []
    size = None
    for step in pipeline:
        value = step.get('crop_size') if step.get('type') == 'CenterCrop' else (
            step.get('scale') if step.get('type') == 'Resize' else None)
        if isinstance(value, int):
            size = (value, value)
        elif isinstance(value, (list, tuple)) and len(value) == 2:
            size = (int(value[1]), int(value[0]))  # mmpretrain sizes are (w, h)
    return size


def _not_counted(analyzer) -> str:
    ops = [name.replace('aten::', '') for name, _ in analyzer.unsupported_ops().most_common()]
    return ', '.join(ops) if ops else 'none'


def count(module, inputs) -> Tuple[int, int, Any]:
    """(FLOPs, parameters, analyzer) of ``module`` on ``inputs``."""
    import torch
    from mmengine.analysis import parameter_count

    from l2vit.flops import flop_analyzer
    analyzer = flop_analyzer(module, inputs)
    with torch.no_grad():
        flops = int(analyzer.total())
    return flops, int(parameter_count(module)['']), analyzer


def whole_model_forward(model, scope: str, shape: Tuple[int, int]):
    """Make ``model(x)`` run the library's tensor-mode forward on a batch of one image (instance attribute, so the
    module tree and its names stay as they are)."""
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                             batch_input_shape=shape, scale_factor=(1., 1.)))
        model.forward = lambda x: model._forward(x, [sample])
    elif scope == 'mmseg':
        model.forward = lambda x: model._forward(x, None)
    # mmpretrain: forward(inputs) is already the tensor mode (class scores).
    return model


def format_table(rows: List[Tuple[str, Optional[float], Optional[float]]]) -> str:
    lines = [f'| {"part":<12} | {"params (M)":>10} | {"FLOPs (G)":>9} |', f'|{"-" * 14}|{"-" * 11}:|{"-" * 10}:|']
    for name, params, flops in rows:
        p = f'{params / 1e6:.2f}' if params is not None else 'n/a'
        f = f'{flops / 1e9:.2f}' if flops is not None else 'n/a'
        lines.append(f'| {name:<12} | {p:>10} | {f:>9} |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from l2vit.models import L2ViT

    torch.manual_seed(0)
    model, scope, cfg = build_model(args.config, args.cfg_options)
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, L2ViT):
        print(f'note: model.backbone is {type(backbone).__name__}, not L2ViT; counting it all the same.')
    if args.shape is None:
        shape = (scope == 'mmpretrain' and classifier_test_size(cfg)) or DEFAULT_SHAPES[scope]
    else:
        shape = (args.shape[0], args.shape[-1])
    image = torch.randn(1, 3, *shape)

    start = time.perf_counter()
    rows, notes, tables = [], [], []
    if scope == 'mmpretrain':
        flops, params, analyzer = count(model, (image, ))
        if backbone is not None:
            from mmengine.analysis import parameter_count
            rows.append(('backbone', parameter_count(model)['backbone'], analyzer.total('backbone')))
        rows.append(('whole model', params, flops))
        notes.append(f'not counted (element-wise, mmengine convention): {_not_counted(analyzer)}')
        tables.append(('whole model', analyzer))
    else:
        if backbone is None:
            fail(f'the model of {args.config} has no backbone')
        b_flops, b_params, b_analyzer = count(backbone, (image, ))
        rows.append(('backbone', b_params, b_flops))
        tables.append(('backbone', b_analyzer))
        try:
            flops, params, analyzer = count(whole_model_forward(model, scope, shape), (image, ))
        except Exception as err:  # noqa: BLE001  (any tracing failure: report it, keep the backbone numbers)
            from mmengine.analysis import parameter_count
            rows.append(('whole model', parameter_count(model)[''], None))
            message = str(err).strip().splitlines()[0] if str(err).strip() else ''
            notes.append(f'the whole model could not be traced ({type(err).__name__}: {message[:300]}); its FLOPs '
                         f'are not reported, the backbone\'s are.')
        else:
            rows.append(('whole model', params, flops))
            notes.append(f'not counted in the whole model (element-wise or custom ops): {_not_counted(analyzer)}')
            if scope == 'mmdet' and getattr(model, 'with_rpn', False):
                notes.append('the RoI head is counted on the proposals the RPN keeps for a random image (at most '
                             'the config\'s test max_per_img); real images may give a different count.')
            if scope == 'mmseg' and getattr(model, 'with_auxiliary_head', False):
                notes.append('the parameters include the auxiliary head (training only); the FLOPs do not.')
            tables.append(('whole model', analyzer))

    print(f'config: {args.config} ({scope}, {type(model).__name__})')
    print(f'input shape: 1x3x{shape[0]}x{shape[1]}')
    print(format_table(rows))
    print(NOTE)
    for note in notes:
        print(f'note: {note}')
    if args.show_table:
        from mmengine.analysis.print_helper import complexity_stats_table
        for name, analyzer in tables:
            print(f'\n{name}, per module:')
            print(complexity_stats_table(analyzer, max_depth=args.max_depth, show_param_shapes=False))
    print(f'(counted in {time.perf_counter() - start:.1f} s)', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
