"""What ``tools/train.py`` and ``tools/test.py`` share: arguments, config loading, checkpoint safety, CPU launching.

Both tools import this file as a sibling module: running ``python tools/train.py`` puts ``tools/`` first on
``sys.path``, whatever the current directory is.
"""
import argparse
import os
import os.path as osp
import warnings
from typing import List

import torch

# mmengine imports pkg_resources to resolve `mmdet::`-style bases; its deprecation warning is noise for our users.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
from mmengine.config import Config, DictAction  # noqa: E402

from _checks import as_list, input_problems, leaf_datasets  # noqa: E402,F401  (re-exported for the tools)
# Importing l2vit (here, for its error exit) makes every checkpoint mmengine loads weights-only; see
# l2vit.checkpoint.register_checkpoint_loading.
from l2vit.errors import fail  # noqa: E402

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')

#: The libraries whose configs these tools know how to adjust (``--show-dir``, ``--out``).
KNOWN_SCOPES = ('mmdet', 'mmseg', 'mmpretrain')


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Options both tools take: work dir, config overrides and the distributed launcher."""
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. train_dataloader.batch_size=8 '
        'optim_wrapper.optimizer.lr=1e-4; lists as key="[a,b]" or key=a,b; quote values with spaces')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher (torchrun: pytorch)')
    # torch.distributed.launch passes --local_rank (older) or --local-rank (torch >= 2.0).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)


def run_tool(main) -> None:
    """Run a tool's ``main``; a checkpoint that cannot be used ends it with its message, not a traceback."""
    from l2vit.checkpoint import CheckpointError
    try:
        main()
    except CheckpointError as err:
        fail(str(err))


def load_config(args: argparse.Namespace) -> Config:
    """Read the config, apply ``--cfg-options``, the launcher and the work dir (CLI > config > default)."""
    if not osp.isfile(args.config):
        fail(f'config file not found: {args.config}')
    # Importing `custom_imports` (e.g. mmdet_l2vit) registers L2ViT in the config's library before anything is built.
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    scope = cfg.get('default_scope')
    if scope is None:
        fail(f'{args.config} sets no default_scope; inherit an mmdet::, mmseg:: or mmpretrain:: runtime base (or set '
             f"default_scope='mmdet'|'mmseg'|'mmpretrain') so the tool knows which library's registries to use.")
    cfg.launcher = args.launcher
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def setup_launcher(cfg: Config) -> None:
    """Make ``--launcher pytorch`` work on machines without CUDA.

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` unconditionally, and the Runner wraps the model in
    DDP with ``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU module. So on a CPU-only machine the process
    group is created here with gloo (the Runner then skips its own initialisation) and DDP gets ``device_ids=None``.
    """
    launcher = cfg.launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        fail(f'--launcher {launcher} needs CUDA GPUs (mmengine selects a GPU per process), and this machine has '
             f'none. For multi-process training on CPUs use torchrun with --launcher pytorch.')
    import torch.distributed as dist
    if not dist.is_initialized():
        missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
        if missing:
            fail(f'--launcher pytorch expects to be started by torchrun (environment variables {missing} are not '
                 f'set), e.g. torchrun --nproc_per_node=2 tools/train.py CONFIG --launcher pytorch')
        dist.init_process_group(backend='gloo')
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = dict()
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = dict()
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    strategy = cfg.get('strategy')
    if strategy is not None and 'FSDP' in str(strategy.get('type', '')):
        # FSDP places each rank's shards on GPU LOCAL_RANK unless told the module lives on the CPU.
        if strategy.get('model_wrapper') is None:
            strategy.model_wrapper = dict()
        strategy.model_wrapper.device_id = 'cpu'
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        # The Runner's own default, plus device_ids=None for a module that lives on the CPU.
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    elif 'DistributedDataParallel' in str(wrapper.get('type', 'MMDistributedDataParallel')):
        wrapper['device_ids'] = None
    replaced = _sync_bn_to_bn(cfg.model)
    if replaced and dist.get_rank() == 0:
        shown = ', '.join(replaced[:4]) + (', ...' if len(replaced) > 4 else '')
        print(f'note: torch\'s SyncBatchNorm needs GPUs; on this CPU-only machine {len(replaced)} norm configs use '
              f'plain BN instead (statistics per process): {shown}')


def _sync_bn_to_bn(node, path: str = 'model') -> List[str]:
    """Turn every ``type='SyncBN'`` norm config under ``node`` into ``'BN'``; return their config keys."""
    replaced = []
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            replaced.append(path)
        for key, value in node.items():
            replaced += _sync_bn_to_bn(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            replaced += _sync_bn_to_bn(value, f'{path}.{i}')
    return replaced


def check_inputs(cfg: Config, splits, check_pretrained: bool = True) -> None:
    """Stop before anything is built when the data, weights or model wiring the run needs are wrong (see
    ``_checks.py``), saying what, where it was expected, and how to point elsewhere."""
    problems = input_problems(cfg, splits, check_pretrained)
    if problems:
        fail('\n'.join(problems))
