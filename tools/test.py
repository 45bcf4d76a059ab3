"""Evaluate a checkpoint with a config's test split; the config's ``default_scope`` picks the library.

    python tools/test.py CONFIG CHECKPOINT [--tta] [--work-dir DIR] [--out FILE.pkl] [--metrics-out FILE.json]
                                           [--show-dir DIR] [--cfg-options KEY=VALUE ...]
                                           [--launcher {none,pytorch,slurm,mpi}]

Without ``--tta`` the config's single-scale test pipeline is used; ``--tta`` switches to its test-time augmentation
(``tta_pipeline`` + ``tta_model``: for the ADE20K configs multi-scale + flip, the papers' "ms" number).

``--out`` pickles the predictions (mmdet: as dicts, like mmdet's own test tool; otherwise the data samples).
``--show-dir`` draws the predictions into image files: under ``DIR`` (mmseg, mmpretrain) or, as mmdet's own test tool
does, under ``WORK_DIR/<timestamp>/DIR`` (mmdet).

What is done to the config before mmengine's Runner tests it: ``l2vit.apis.prepare_test``.
"""
import argparse

from l2vit.apis import add_run_args, run_options, run_test
from l2vit.errors import error_exit


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
    add_run_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    with error_exit():
        run_test(args.config, args.checkpoint, tta=args.tta, out=args.out, metrics_out=args.metrics_out,
                 show_dir=args.show_dir, **run_options(args))


if __name__ == '__main__':
    main()
