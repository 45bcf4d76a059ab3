"""Evaluate a checkpoint with a config's test split; the config's ``default_scope`` picks the library.

    python tools/test.py CONFIG CHECKPOINT [--tta] [--work-dir DIR] [--out FILE.pkl] [--metrics-out FILE.json]
                                           [--show-dir DIR] [--cfg-options KEY=VALUE ...]
                                           [--launcher {none,pytorch,slurm,mpi}]

Without ``--tta`` the config's single-scale test pipeline is used; ``--tta`` switches to its test-time augmentation
(``tta_pipeline`` + ``tta_model``: for the ADE20K configs multi-scale + flip, the papers' "ms" number).

``--out`` pickles the predictions (mmdet: as dicts, like mmdet's own test tool; otherwise the data samples).
``--show-dir`` draws the predictions into image files: under ``DIR`` (mmseg, mmpretrain) or, as mmdet's own test tool
does, under ``WORK_DIR/<timestamp>/DIR`` (mmdet).
"""
import argparse
import json
import os
import os.path as osp

from _common import (KNOWN_SCOPES, add_common_args, as_list, check_inputs, leaf_datasets, load_config, run_tool,
                     setup_launcher)
from l2vit.errors import fail


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a checkpoint (mmdet, mmseg or mmpretrain config) with L2ViT.')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        help="checkpoint: a file or an http(s) URL; an mmengine checkpoint (training, tools/convert_official.py) or "
        "the authors' released ImageNet file, converted in memory")
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test-time augmentation: the config's tta_pipeline and tta_model (e.g. multi-scale + flip)")
    parser.add_argument('--out', metavar='FILE', help='also dump the predictions to this .pkl file')
    parser.add_argument('--metrics-out', metavar='FILE', help='also write the metrics to this JSON file')
    parser.add_argument(
        '--show-dir', metavar='DIR', help='save images of the predictions in DIR (mmdet: WORK_DIR/<timestamp>/DIR)')
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must name a .pkl or .pickle file, got {args.out!r}')
    return args


def enable_tta(cfg) -> None:
    """Test with the config's test-time augmentation: ``tta_pipeline`` makes the augmented views of each image and
    ``tta_model`` wraps the model to merge their predictions."""
    missing = [key for key in ('tta_model', 'tta_pipeline') if not cfg.get(key)]
    if missing:
        fail(f'--tta needs tta_model and tta_pipeline in the config; {cfg.filename} has no {" and no ".join(missing)}. '
             f"Define them (e.g. tta_model=dict(type='SegTTAModel') and a tta_pipeline with a TestTimeAug step, as "
             f"in mmseg's ADE20K base), or test without --tta.")
    datasets = leaf_datasets((cfg.get('test_dataloader') or {}).get('dataset'))
    if not datasets:
        fail('--tta: the config has no test_dataloader.dataset whose pipeline the tta_pipeline could replace.')
    for dataset in datasets:
        dataset.pipeline = cfg.tta_pipeline
    model = cfg.model
    tta_model = dict(cfg.tta_model, module=model)
    # The Runner gives a tta_model without data_preprocessor the top-level one, which the TTA wrapper then forces on
    # the model it wraps; passing the model's own keeps the precedence of a run without --tta.
    if model.get('data_preprocessor') is not None:
        tta_model.setdefault('data_preprocessor', model.data_preprocessor)
    cfg.model = tta_model


def _number_or_text(value):
    """Metrics come as python, numpy or torch numbers (mmseg: numpy); JSON gets plain floats."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def add_dump(cfg, out_file: str) -> None:
    """Append a metric that pickles every prediction to ``out_file`` when the test loop ends."""
    dump = dict(type='mmdet.DumpDetResults') if cfg.default_scope == 'mmdet' else dict(type='mmengine.DumpResults')
    dump['out_file_path'] = out_file
    cfg.test_evaluator = as_list(cfg.get('test_evaluator')) + [dump]


def enable_visualization(cfg, show_dir: str) -> None:
    """Turn on the library's visualization hook so that predictions are drawn into ``show_dir``."""
    scope = cfg.default_scope
    if scope not in KNOWN_SCOPES:
        fail(f'--show-dir knows the visualization hooks of {", ".join(KNOWN_SCOPES)}; this config\'s default_scope '
             f'is {scope!r}. Enable its visualization hook with --cfg-options instead.')
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        fail(f'--show-dir: the config has no default_hooks.visualization; inherit the {scope} default runtime.')
    if scope == 'mmdet':
        hook.draw = True
        hook.test_out_dir = show_dir
    elif scope == 'mmseg':
        hook.draw = True
        cfg.visualizer.save_dir = show_dir  # SegVisualizationHook writes through the visualizer's backend
    else:  # mmpretrain
        hook.enable = True
        hook.out_dir = show_dir
        hook.interval = 1  # every test image, as the mmdet and mmseg hooks do


def main(argv=None) -> None:
    args = parse_args(argv)
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        fail(f'checkpoint not found: {args.checkpoint} (give the path of a training checkpoint, of the authors\' '
             f'released file or of its conversion by tools/convert_official.py, or an http(s) URL)')
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.tta:
        enable_tta(cfg)
    if args.out is not None:
        add_dump(cfg, args.out)
    if args.show_dir is not None:
        enable_visualization(cfg, args.show_dir)
    # The weights come from CHECKPOINT; the backbone's pretrained file is not needed to test.
    check_inputs(cfg, ['test_dataloader'], check_pretrained=False)
    setup_launcher(cfg)

    from mmengine.runner import Runner
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    from mmengine.dist import get_rank
    if args.metrics_out and get_rank() == 0:  # every process gets the gathered metrics; one writes them
        os.makedirs(osp.dirname(osp.abspath(args.metrics_out)), exist_ok=True)
        with open(args.metrics_out, 'w') as f:
            json.dump({k: _number_or_text(v) for k, v in metrics.items()}, f, indent=2)


if __name__ == '__main__':
    run_tool(main)
