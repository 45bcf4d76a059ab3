"""Train a detector, segmentor or classifier from a config; the config's ``default_scope`` picks the library.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
                                 [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Several processes (GPUs, or CPUs with gloo):
    torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch

What is done to the config before mmengine's Runner trains it: ``l2vit.apis.prepare_train``.
"""
import argparse

from l2vit.apis import add_run_args, run_options, run_train
from l2vit.errors import error_exit


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model (mmdet, mmseg or mmpretrain config) with L2ViT.')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        metavar='CKPT',
        help='resume training: from CKPT, or, without a value, from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='mixed-precision training (needs a CUDA GPU)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help="scale the learning rate by the actual total batch size over the config's auto_scale_lr.base_batch_size")
    add_run_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    with error_exit():
        run_train(args.config, resume=args.resume, amp=args.amp, auto_scale_lr=args.auto_scale_lr,
                  **run_options(args))


if __name__ == '__main__':
    main()
