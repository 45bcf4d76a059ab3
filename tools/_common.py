"""What ``tools/train.py`` and ``tools/test.py`` share: arguments, config loading, checkpoint safety, CPU launching.

Both tools import this file as a sibling module: running ``python tools/train.py`` puts ``tools/`` first on
``sys.path``, whatever the current directory is.
"""
import argparse
import os
import os.path as osp
import sys
import warnings
from typing import List

import torch

# mmengine imports pkg_resources to resolve `mmdet::`-style bases; its deprecation warning is noise for our users.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
from mmengine.config import Config, DictAction  # noqa: E402

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


def fail(message: str) -> None:
    """Stop the tool with a readable message instead of a traceback."""
    print(f'error: {message}', file=sys.stderr)
    raise SystemExit(2)


def run_tool(main) -> None:
    """Run a tool's ``main``; a checkpoint that cannot be used ends it with its message, not a traceback."""
    from l2vit.checkpoint import CheckpointError
    try:
        main()
    except CheckpointError as err:
        fail(str(err))


def allow_safe_checkpoint_globals() -> None:
    """Let torch's weights-only unpickler (the default since torch 2.6) read the non-tensor types our checkpoints
    are known to hold. mmengine calls ``torch.load`` without ``weights_only``, so this allow-list is what makes
    loading and resuming work; nothing is ever loaded with ``weights_only=False``."""
    from l2vit.checkpoint import allow_safe_globals
    allow_safe_globals()


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


def as_list(value) -> List:
    """A config entry that may be one dict or a list of dicts, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


#: The expected on-disk layout per dataset type, shown when a dataset is missing.
DATASET_LAYOUTS = {
    'CocoDataset': ('COCO 2017', 'data/coco/\n'
                    '      annotations/instances_train2017.json\n'
                    '      annotations/instances_val2017.json\n'
                    '      train2017/*.jpg\n'
                    '      val2017/*.jpg'),
    'ADE20KDataset': ('ADE20K (ADEChallengeData2016)', 'data/ade/ADEChallengeData2016/\n'
                      '      images/training/*.jpg       annotations/training/*.png\n'
                      '      images/validation/*.jpg     annotations/validation/*.png'),
    'ImageNet': ('ImageNet-1k', 'data/imagenet/\n'
                 '      train/<class>/*.JPEG  (or train/ + meta/train.txt)\n'
                 '      val/<class>/*.JPEG    (or val/ + meta/val.txt)'),
}


def leaf_datasets(dataset) -> List:
    """The datasets inside dataset wrappers (RepeatDataset, ConcatDataset, ClassBalancedDataset, ...)."""
    if not isinstance(dataset, dict):
        return []
    if 'datasets' in dataset:
        return [leaf for d in dataset['datasets'] for leaf in leaf_datasets(d)]
    if 'dataset' in dataset:
        return leaf_datasets(dataset['dataset'])
    return [dataset]


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def missing_data(cfg: Config, splits) -> List[str]:
    """Describe every dataset file or folder the given dataloaders need that does not exist."""
    problems = []
    for split in splits:
        loader = cfg.get(split)
        if not loader:
            continue
        for dataset in leaf_datasets(loader.get('dataset')):
            root = dataset.get('data_root') or ''
            kind = str(dataset.get('type', 'dataset')).split('.')[-1]
            needed = []
            if root:
                needed.append((root, f'{split}.dataset.data_root'))
            if dataset.get('ann_file'):
                needed.append((_join(root, dataset['ann_file']), f'{split}.dataset.ann_file'))
            prefix = dataset.get('data_prefix') or {}
            for key, folder in (prefix.items() if isinstance(prefix, dict) else []):
                if isinstance(folder, str) and folder:
                    needed.append((_join(root, folder), f'{split}.dataset.data_prefix.{key}'))
            for path, key in needed:
                if not osp.exists(path):
                    problems.append((kind, root, split, f'{path} ({key})'))
                    break  # the first missing piece says enough for this dataset
    for split in splits:
        evaluator_key = split.replace('_dataloader', '_evaluator')
        for evaluator in as_list(cfg.get(evaluator_key)) if cfg.get(split) else []:
            ann_file = evaluator.get('ann_file') if isinstance(evaluator, dict) else None
            if ann_file and not osp.exists(ann_file):
                problems.append(('', '', evaluator_key, f'{ann_file} ({evaluator_key}.ann_file)'))
    if not problems:
        return []
    lines = ['the dataset is missing:']
    lines += [f'  {what}' for _, _, _, what in problems]
    for kind in dict.fromkeys(p[0] for p in problems):
        name, layout = DATASET_LAYOUTS.get(kind, (kind, None))
        if layout:
            lines.append(f'Expected layout for {name} (relative to the working directory):\n    {layout}')
    overrides = ' '.join(f'{split}.dataset.data_root=/path/to/data/' if split.endswith('_dataloader') else
                         f'{split}.ann_file=/path/to/annotations.json' for split in dict.fromkeys(p[2] for p in problems))
    lines.append(f'Put the data there (a symlink is fine), or point elsewhere: --cfg-options {overrides}')
    return lines


def _pretrained_checkpoints(node, path: str = 'model'):
    """(config key, checkpoint) of every init_cfg=dict(type='Pretrained', checkpoint=...) under ``node``."""
    if isinstance(node, dict):
        init = node.get('init_cfg')
        for item in as_list(init):
            if isinstance(item, dict) and item.get('type') == 'Pretrained' and isinstance(item.get('checkpoint'), str):
                yield f'{path}.init_cfg.checkpoint', item['checkpoint']
        for key, value in node.items():
            if key != 'init_cfg':
                yield from _pretrained_checkpoints(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _pretrained_checkpoints(value, f'{path}.{i}')


def missing_pretrained(cfg: Config) -> List[str]:
    """Describe every local pretrained-weights file named by an ``init_cfg`` that does not exist."""
    lines = []
    for key, checkpoint in _pretrained_checkpoints(cfg.get('model')):
        if '://' in checkpoint or osp.isfile(checkpoint):
            continue
        init_key = key[:-len('.checkpoint')]
        lines += [f'pretrained weights not found: {checkpoint} ({key})',
                  "  Convert the authors' ImageNet checkpoint: python tools/convert_official.py "
                  f'L2ViT-<Tiny|Small|Base>-checkpoint-best-ema.pth {checkpoint}   (see README, "Pretrained weights"),',
                  f'  or point elsewhere: --cfg-options {key}=/path/to/weights.pth,',
                  f'  or train from scratch: --cfg-options {init_key}=None']
    return lines


def check_inputs(cfg: Config, splits, check_pretrained: bool = True) -> None:
    """Stop before anything is built when the data or weights the run needs are missing, saying what, where it was
    expected, and how to point elsewhere."""
    problems = missing_data(cfg, splits) + (missing_pretrained(cfg) if check_pretrained else [])
    if problems:
        fail('\n'.join(problems))
