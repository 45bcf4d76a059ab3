"""Preparing a config for a run, as ``tools/train.py`` and ``tools/test.py`` do (``prepare_train``,
``prepare_test``): loading it with overrides, the launcher and work dir, AMP, resuming, test-time augmentation,
dumping and drawing predictions, the preflight (``l2vit.apis.checks``) and the CPU launcher.

Each function changes the config it is given (or returns a new one) and raises ``l2vit.errors.ToolError`` with the
fix when it cannot; none of them builds a model or starts a run (``prepare_*`` make the work dir, checked writable).
"""
import copy
import os
import os.path as osp
from typing import Optional, Sequence

import torch
from mmengine.config import Config

from .. import model_zoo
from ..errors import ToolError
from .checks import missing_library_problem, preflight
from .config_tree import as_list, drop_pretrained, leaf_datasets, sync_bn_to_bn
from .paths import writable_dir, writable_file

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')

#: The libraries whose configs the tools know how to adjust (``--show-dir``, ``--out``).
KNOWN_SCOPES = ('mmdet', 'mmseg', 'mmpretrain')


def config_file(path: str) -> str:
    """``path`` if it is a file, else the package's config of the model (or config file) it names, as ``mim train``
    resolves names: ``l2vit-t_in1k``, ``mask-rcnn_l2vit-t_fpn_1x_coco`` (``l2vit.model_zoo.find_config``)."""
    if osp.isfile(path):
        return path
    found = model_zoo.find_config(path)
    if found is not None:
        return found
    if not osp.isfile(model_zoo.MODEL_INDEX) and not osp.dirname(path):
        raise ToolError(f'config file not found: {path}; nor could it be looked up as a model name, because '
                        f'{model_zoo.missing_zoo_message()}')
    raise ToolError(f'config file not found: {path} (neither a file nor a model or config name of the model zoo, '
                    f'{model_zoo.MODEL_INDEX})')


def read_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read the config (its ``custom_imports`` register L2ViT in its library) and apply ``cfg_options``; it must name
    the library whose registries build it (``default_scope``)."""
    path = config_file(path)
    try:
        cfg = Config.fromfile(path)
    except ImportError as err:  # its custom_imports: a library that is not installed gets the install hint
        problem = missing_library_problem(path, err)
        if problem is None:
            raise
        raise ToolError(problem) from err
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('default_scope') is None:
        raise ToolError(f'{path} sets no default_scope; inherit an mmdet::, mmseg:: or mmpretrain:: runtime base (or '
                        f"set default_scope='mmdet'|'mmseg'|'mmpretrain') so the tool knows which library's "
                        f'registries to use.')
    return cfg


def build_model(cfg: Config, pretrained: bool = True):
    """The config's model, built by its library (``default_scope``) as mmengine's Runner builds it (a top-level
    ``data_preprocessor`` goes to the model); ``pretrained=False`` drops every ``init_cfg`` that would load weights.
    Weights are not initialised here (``init_weights`` is the caller's)."""
    from mmengine.registry import MODELS, init_default_scope
    if 'model' not in cfg:
        raise ToolError(f'{cfg.filename} defines no model')
    init_default_scope(cfg.default_scope)
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:  # mmpretrain keeps it at top level
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    if not pretrained:
        drop_pretrained(model_cfg)
    return MODELS.build(model_cfg)


def load_config(path: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = 'none', local_rank: int = 0) -> Config:
    """Read the config (``read_config``) for a run: with ``cfg_options``, the launcher and the work dir (argument >
    config > ``work_dirs/<config name>``)."""
    cfg = read_config(path, cfg_options)
    if launcher not in LAUNCHERS:
        raise ToolError(f'unknown launcher {launcher!r}; choose one of {", ".join(LAUNCHERS)}')
    cfg.launcher = launcher
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def check_inputs(cfg: Config, splits: Sequence[str], check_pretrained: bool = True) -> None:
    """Stop before the model is built when the data, weights or model wiring the run needs are wrong (see
    ``l2vit.apis.checks``), saying what, where it was expected, and how to point elsewhere."""
    problems = preflight(cfg, splits, check_pretrained)
    if problems:
        raise ToolError('\n'.join(problems))


def prepare_train(config: str, work_dir: Optional[str] = None, resume: Optional[str] = None, amp: bool = False,
                  auto_scale_lr: bool = False, cfg_options: Optional[dict] = None, launcher: str = 'none',
                  local_rank: int = 0) -> Config:
    """The config ``run_train`` trains with: loaded, overridden, with our run hooks (``add_run_hooks``), AMP, LR
    scaling and resuming as asked, its inputs checked, its work dir free of another training, and (on CPUs) its
    launcher set up."""
    cfg = load_config(config, cfg_options, work_dir, launcher, local_rank)
    writable_dir(cfg.work_dir, '--work-dir')
    add_run_hooks(cfg)
    if amp:
        enable_amp(cfg)
    if auto_scale_lr:
        enable_auto_scale_lr(cfg)
    set_resume(cfg, resume)
    check_inputs(cfg, ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg') else []))
    check_work_dir_free(cfg.work_dir)
    setup_cpu_launcher(cfg)
    return cfg


def prepare_test(config: str, checkpoint: str, tta: bool = False, out: Optional[str] = None,
                 show_dir: Optional[str] = None, work_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
                 launcher: str = 'none', local_rank: int = 0) -> Config:
    """The config ``run_test`` tests with: ``checkpoint`` loaded (a file or an http(s) URL), test-time augmentation,
    the prediction dump and drawing as asked, the test inputs checked and (on CPUs) the launcher set up."""
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise ToolError(f"checkpoint not found: {checkpoint} (give the path of a training checkpoint, of the "
                        f"authors' released file or of its conversion by tools/convert_official.py, or an http(s) "
                        f'URL)')
    if out is not None and not out.endswith(('.pkl', '.pickle')):
        raise ToolError(f'--out must name a .pkl or .pickle file, got {out!r}')
    cfg = load_config(config, cfg_options, work_dir, launcher, local_rank)
    writable_dir(cfg.work_dir, '--work-dir')
    cfg.load_from = checkpoint
    cfg.resume = False
    add_run_hooks(cfg)  # among them CheckpointFitHook: a checkpoint whose heads do not fit is refused
    if tta:
        enable_tta(cfg)
    if out is not None:
        writable_file(out, '--out')
        add_dump(cfg, out)
    if show_dir is not None:
        enable_visualization(cfg, show_dir)
    # The weights come from the checkpoint; the backbone's pretrained file is not needed to test.
    check_inputs(cfg, ['test_dataloader'], check_pretrained=False)
    setup_cpu_launcher(cfg)
    return cfg


# ----------------------------------------------------------------------------------------------------- run hooks
#: The hooks of ``l2vit.hooks`` that our root configs carry in ``custom_hooks``, in their order.
RUN_HOOKS = ('DataCheckHook', 'ConfigCheckHook', 'RNGStateHook', 'FiniteLossHook', 'CheckpointFitHook')


def add_run_hooks(cfg: Config) -> None:
    """Give any config the guarantees of ours (``l2vit.hooks``): each hook of ``RUN_HOOKS`` that its
    ``custom_hooks`` lack is appended, and mmengine's plain ``CheckpointHook`` becomes ``SafeCheckpointHook``."""
    for name in RUN_HOOKS:
        add_custom_hook(cfg, name)
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if checkpoint is not None:
        kind = str(checkpoint.get('type', ''))
        if kind.split('.')[-1] == 'CheckpointHook':
            checkpoint.type = 'SafeCheckpointHook'
        elif kind.split('.')[-1] != 'SafeCheckpointHook':
            print(f'note: default_hooks.checkpoint is {kind}, kept as it is; the guarantees of SafeCheckpointHook '
                  f'(atomic saves, the work dir lock, --resume in a moved work dir: l2vit/hooks/checkpoint.py) hold '
                  f'only if it subclasses it.')


def add_custom_hook(cfg: Config, name: str) -> None:
    """Append ``dict(type=name)`` to the config's ``custom_hooks`` unless it has one."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(str(h.get('type', '')).split('.')[-1] == name for h in hooks):
        hooks.append(dict(type=name))
    cfg.custom_hooks = hooks


def check_work_dir_free(work_dir: str) -> None:
    """Refuse a work dir that a live training uses before the Runner writes anything into it (its config, its log);
    the run's ``SafeCheckpointHook`` holds the lock itself. Only the first process looks (torchrun, Slurm, MPI)."""
    rank = next((os.environ[v] for v in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK') if v in os.environ), '0')
    if rank != '0':
        return
    from ..hooks.checkpoint import busy_message, lock_work_dir
    lock, holder = lock_work_dir(work_dir)
    if lock is not None:
        lock.close()
    if holder is not None:
        raise ToolError(busy_message(work_dir, holder))


# ------------------------------------------------------------------------------------------------------ training
def enable_amp(cfg: Config) -> None:
    """Switch the config's ``OptimWrapper`` to mmengine's ``AmpOptimWrapper`` (dynamic loss scale)."""
    if not torch.cuda.is_available():
        raise ToolError("--amp needs a CUDA GPU (mmengine's AmpOptimWrapper does not run on the CPU) and none is "
                        'available here; train without --amp.')
    optim_wrapper = cfg.get('optim_wrapper')
    if optim_wrapper is None:
        raise ToolError('--amp: the config has no optim_wrapper to switch to AmpOptimWrapper.')
    kind = optim_wrapper.get('type', 'OptimWrapper')
    if kind == 'AmpOptimWrapper':
        print('--amp: the config already uses AmpOptimWrapper.')
        return
    if kind != 'OptimWrapper':
        raise ToolError(f'--amp switches OptimWrapper to AmpOptimWrapper, but this config uses {kind}; set the AMP '
                        f'wrapper in the config instead.')
    optim_wrapper.type = 'AmpOptimWrapper'
    optim_wrapper.loss_scale = 'dynamic'


def enable_auto_scale_lr(cfg: Config) -> None:
    """Scale the learning rate by the actual total batch size over ``auto_scale_lr.base_batch_size``."""
    if cfg.get('auto_scale_lr', {}).get('base_batch_size') is None:
        raise ToolError('--auto-scale-lr: the config has no auto_scale_lr=dict(base_batch_size=...).')
    cfg.auto_scale_lr.enable = True


def set_resume(cfg: Config, resume: Optional[str]) -> None:
    """``resume``: None (start afresh), ``'auto'`` (the latest checkpoint in the work dir) or a checkpoint."""
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None  # the Runner looks for the latest checkpoint in work_dir
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume


# ------------------------------------------------------------------------------------------------------- testing
def enable_tta(cfg: Config) -> None:
    """Test with the config's test-time augmentation: ``tta_pipeline`` makes the augmented views of each image and
    ``tta_model`` wraps the model to merge their predictions."""
    missing = [key for key in ('tta_model', 'tta_pipeline') if not cfg.get(key)]
    if missing:
        raise ToolError(f'--tta needs tta_model and tta_pipeline in the config; {cfg.filename} has no '
                        f'{" and no ".join(missing)}. Define them (e.g. tta_model=dict(type=\'SegTTAModel\') and a '
                        f"tta_pipeline with a TestTimeAug step, as in mmseg's ADE20K base), or test without --tta.")
    datasets = leaf_datasets((cfg.get('test_dataloader') or {}).get('dataset'))
    if not datasets:
        raise ToolError('--tta: the config has no test_dataloader.dataset whose pipeline the tta_pipeline could '
                        'replace.')
    for dataset in datasets:
        dataset.pipeline = cfg.tta_pipeline
    model = cfg.model
    tta_model = dict(cfg.tta_model, module=model)
    # The Runner gives a tta_model without data_preprocessor the top-level one, which the TTA wrapper then forces on
    # the model it wraps; passing the model's own keeps the precedence of a run without --tta.
    if model.get('data_preprocessor') is not None:
        tta_model.setdefault('data_preprocessor', model.data_preprocessor)
    cfg.model = tta_model


def add_dump(cfg: Config, out_file: str) -> None:
    """Append a metric that pickles every prediction to ``out_file`` when the test loop ends (mmdet: as dicts, like
    mmdet's own test tool; otherwise the data samples)."""
    dump = dict(type='mmdet.DumpDetResults') if cfg.default_scope == 'mmdet' else dict(type='mmengine.DumpResults')
    dump['out_file_path'] = out_file
    cfg.test_evaluator = as_list(cfg.get('test_evaluator')) + [dump]


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Turn on the library's visualization hook so that predictions are drawn into ``show_dir``."""
    scope = cfg.default_scope
    if scope not in KNOWN_SCOPES:
        raise ToolError(f"--show-dir knows the visualization hooks of {', '.join(KNOWN_SCOPES)}; this config's "
                        f'default_scope is {scope!r}. Enable its visualization hook with --cfg-options instead.')
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise ToolError(f'--show-dir: the config has no default_hooks.visualization; inherit the {scope} default '
                        f'runtime.')
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


# -------------------------------------------------------------------------------------------- several processes
def setup_cpu_launcher(cfg: Config) -> None:
    """Make ``launcher='pytorch'`` work on machines without CUDA (nothing to do with GPUs or one process).

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` unconditionally, and the Runner wraps the model in
    DDP with ``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU module. So on a CPU-only machine the process
    group is created here with gloo (the Runner then skips its own initialisation) and DDP gets ``device_ids=None``.
    """
    launcher = cfg.launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ToolError(f'--launcher {launcher} needs CUDA GPUs (mmengine selects a GPU per process), and this '
                        f'machine has none. For multi-process training on CPUs use torchrun with --launcher pytorch.')
    import torch.distributed as dist
    if not dist.is_initialized():
        missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ]
        if missing:
            raise ToolError(f'--launcher pytorch expects to be started by torchrun (environment variables {missing} '
                            f'are not set), e.g. torchrun --nproc_per_node=2 tools/train.py CONFIG --launcher pytorch')
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
    replaced = sync_bn_to_bn(cfg.model)
    if replaced and dist.get_rank() == 0:
        shown = ', '.join(replaced[:4]) + (', ...' if len(replaced) > 4 else '')
        print(f"note: torch's SyncBatchNorm needs GPUs; on this CPU-only machine {len(replaced)} norm configs use "
              f'plain BN instead (statistics per process): {shown}')
