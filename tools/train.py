"""Train a detector, segmentor or classifier from a config; the config's ``default_scope`` picks the library.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
                                 [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Several processes (GPUs, or CPUs with gloo):
    torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch
"""
import argparse

import torch

from _common import add_common_args, check_inputs, load_config, run_tool, setup_launcher
from l2vit.errors import fail


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
    add_common_args(parser)
    return parser.parse_args(argv)


def enable_amp(cfg) -> None:
    if not torch.cuda.is_available():
        fail('--amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper does not run on the CPU) and none is available '
             'here; train without --amp.')
    optim_wrapper = cfg.get('optim_wrapper')
    if optim_wrapper is None:
        fail('--amp: the config has no optim_wrapper to switch to AmpOptimWrapper.')
    kind = optim_wrapper.get('type', 'OptimWrapper')
    if kind == 'AmpOptimWrapper':
        print('--amp: the config already uses AmpOptimWrapper.')
        return
    if kind != 'OptimWrapper':
        fail(f'--amp switches OptimWrapper to AmpOptimWrapper, but this config uses {kind}; set the AMP wrapper '
             f'in the config instead.')
    optim_wrapper.type = 'AmpOptimWrapper'
    optim_wrapper.loss_scale = 'dynamic'


def add_rng_state_hook(cfg) -> None:
    """Checkpoints carry the RNG states, so that --resume continues exactly (see l2vit.hooks.RNGStateHook)."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(str(h.get('type', '')).split('.')[-1] == 'RNGStateHook' for h in hooks):
        hooks.append(dict(type='RNGStateHook'))
    cfg.custom_hooks = hooks


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args)
    add_rng_state_hook(cfg)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        if cfg.get('auto_scale_lr', {}).get('base_batch_size') is None:
            fail('--auto-scale-lr: the config has no auto_scale_lr=dict(base_batch_size=...).')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None  # the Runner looks for the latest checkpoint in work_dir
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    splits = ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg') else [])
    check_inputs(cfg, splits)
    setup_launcher(cfg)

    from mmengine.runner import Runner
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    run_tool(main)
