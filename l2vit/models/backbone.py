"""The L²ViT backbone ("The Linear Attention Resurrection in Vision Transformer", arXiv 2501.16182)."""
import copy
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, initialize, kaiming_init, trunc_normal_init
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import CheckpointError
from .blocks import LinearGlobalBlock, LocalWindowBlock
from .cpu import use_cpu_fast_paths
from .layers import Downsample, StemEmbed
from .state_dict import adapt_state_dict

ARCH_ALIASES = {'t': 'tiny', 's': 'small', 'b': 'base'}
ARCH_KEYS = ('embed_dims', 'depths', 'num_heads')


class L2ViT(BaseModule):
    """L²ViT: local window attention and linear global attention blocks, alternating, in four stages.

    Within each stage block ``j`` is a :class:`LocalWindowBlock` for even ``j`` and a :class:`LinearGlobalBlock` for
    odd ``j``. Parameter names equal the authors' so that their checkpoints load with ``strict=True``.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'`` (or ``'t'``, ``'s'``, ``'b'``), or a dict with ``embed_dims``,
            ``depths`` and ``num_heads``, four ints each.
        in_channels: channels of the input image.
        window_size: side of the local attention windows (7; 12 for the 384² fine-tuned base). No parameter depends
            on it, so weights move between window sizes unchanged.
        mlp_ratio: hidden width of every MLP relative to its input.
        drop_path_rate: stochastic depth, increasing linearly over all blocks from 0 to this value.
        out_indices: stages whose (normalised) outputs are returned; negative indices count from the end.
        frozen_stages: freeze the stem and stages ``0..frozen_stages`` (and their output norms); -1 freezes nothing.
        norm_eval: keep the BatchNorm layers in eval mode while training.
        with_cp: gradient checkpointing of every block and every downsampling layer, the convolutional stem
            included (saves memory, same outputs and gradients).
        norm_cfg: norm of the convolutional stem and of every LCM; BN by default, SyncBN for distributed training.
        cpu_fast_paths: swap in the eager-CPU variants of the blocks (see the note below).
        init_cfg: mmengine init config, a dict or a list of dicts. ``dict(type='Pretrained', checkpoint=PATH_OR_URL[,
            prefix='backbone.'])`` accepts a converted checkpoint as well as the authors' released file.

    Note:
        ``cpu_fast_paths=True`` (what the demo configs use) runs :func:`l2vit.models.cpu.use_cpu_fast_paths` on the
        backbone: its blocks become CPU variants that, in eager CPU training, recompute cheap activations in
        backward instead of keeping them (about a third less activation memory) and compute some gradients with
        hand-written functions, and in eager CPU inference go through large layers in cache-sized pieces. Outputs,
        gradients and BatchNorm statistics equal the plain model's. Elsewhere (GPUs, ``torch.compile``,
        ``torch.export``, ONNX export) the variants run the plain forward, so the option changes nothing there.

    Loading weights: however a state dict reaches this module (``init_cfg``, ``load_from``, mmengine's
    ``load_checkpoint``, ``load_state_dict``), the authors' layout is understood (``norm.*`` is ``norm3.*``, ``head.*``
    is set aside, a ``module.`` or ``backbone.`` wrapper prefix is stripped), and weights that do not fit this
    architecture are refused with the mismatching keys named before anything is loaded (see
    :func:`l2vit.models.state_dict.adapt_state_dict`).
    """

    # Version 2: our layout (output norms norm0-norm3). State dicts without a version may be in the authors' layout.
    _version = 2

    arch_zoo: Dict[str, Dict[str, List[int]]] = {
        'tiny': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24]),
        'small': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24]),
        'base': dict(embed_dims=[128, 256, 512, 1024], depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]),
    }
    num_stages = 4

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 window_size: int = 7,
                 mlp_ratio: float = 4.,
                 drop_path_rate: float = 0.,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 norm_cfg: Optional[dict] = None,
                 cpu_fast_paths: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        arch = self.parse_arch(arch)
        self.embed_dims: List[int] = arch['embed_dims']
        self.depths: List[int] = arch['depths']
        self.num_heads: List[int] = arch['num_heads']
        if not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f'window_size must be a positive int, got {window_size!r}')
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate!r}')
        self.out_indices = self.parse_out_indices(out_indices)
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages < self.num_stages:
            raise ValueError(f'frozen_stages must be an int in [-1, {self.num_stages - 1}] (-1 freezes nothing, i '
                             f'freezes the stem and stages 0..i), got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.window_size = window_size
        norm_cfg = copy.deepcopy(norm_cfg) if norm_cfg is not None else dict(type='BN')

        dims = self.embed_dims
        self.downsample_layers = nn.ModuleList(
            [StemEmbed(in_channels, dims[0], norm_cfg)] +
            [Downsample(dims[i - 1], dims[i]) for i in range(1, self.num_stages)])

        dpr = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        self.stages = nn.ModuleList()
        for i, depth in enumerate(self.depths):
            blocks = []
            for j in range(depth):
                rate = dpr[sum(self.depths[:i]) + j]
                if j % 2 == 0:
                    block = LocalWindowBlock(dims[i], self.num_heads[i], window_size, mlp_ratio, rate)
                else:
                    block = LinearGlobalBlock(dims[i], self.num_heads[i], mlp_ratio, rate, norm_cfg)
                blocks.append(block)
            self.stages.append(nn.ModuleList(blocks))

        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(dims[i]))
        #: Every state-dict entry this module holds, with its shape: what a checkpoint must provide to fit.
        self.state_dict_shapes: Dict[str, Tuple[int, ...]] = {k: tuple(v.shape) for k, v in self.state_dict().items()}
        if cpu_fast_paths:
            use_cpu_fast_paths(self)
        self._freeze_stages()

    # ------------------------------------------------------------------ configuration
    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> Dict[str, List[int]]:
        """Resolve an arch name, alias or dict into validated ``embed_dims``/``depths``/``num_heads`` lists."""
        accepted = (f'one of {sorted(cls.arch_zoo)} (aliases {sorted(ARCH_ALIASES)}) or a dict with keys '
                    f'{list(ARCH_KEYS)} of 4 ints each')
        if isinstance(arch, str):
            name = ARCH_ALIASES.get(arch.lower(), arch.lower())
            if name not in cls.arch_zoo:
                raise ValueError(f'Unknown L2ViT arch {arch!r}; expected {accepted}.')
            return copy.deepcopy(cls.arch_zoo[name])
        if not isinstance(arch, dict):
            raise ValueError(f'L2ViT arch must be {accepted}, got {type(arch).__name__} {arch!r}.')
        missing = [k for k in ARCH_KEYS if k not in arch]
        extra = [k for k in arch if k not in ARCH_KEYS]
        if missing or extra:
            raise ValueError(f'L2ViT arch dict must have exactly the keys {list(ARCH_KEYS)}; '
                             f'missing {missing}, unexpected {extra}.')
        parsed = {}
        for key in ARCH_KEYS:
            value = arch[key]
            if (not isinstance(value, (list, tuple)) or len(value) != cls.num_stages
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
                raise ValueError(f'L2ViT arch[{key!r}] must be {cls.num_stages} positive ints, got {value!r}.')
            parsed[key] = list(value)
        for i, (dim, heads) in enumerate(zip(parsed['embed_dims'], parsed['num_heads'])):
            if dim % heads:
                raise ValueError(f'L2ViT stage {i}: embed_dims {dim} is not divisible by num_heads {heads}; '
                                 f'choose num_heads that divide the stage width.')
        if parsed['embed_dims'][0] % 2:
            raise ValueError(f'L2ViT embed_dims[0] must be even (the stem halves it), got {parsed["embed_dims"][0]}.')
        return parsed

    @classmethod
    def parse_out_indices(cls, out_indices: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        """Validate ``out_indices`` and return them sorted, negative indices resolved."""
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        if not isinstance(out_indices, (list, tuple)) or not out_indices:
            raise ValueError(f'out_indices must be a non-empty sequence of stage indices, got {out_indices!r}')
        parsed = []
        for index in out_indices:
            if not isinstance(index, int) or not -cls.num_stages <= index < cls.num_stages:
                raise ValueError(f'out_indices must be stage indices in [0, {cls.num_stages - 1}] (or negative '
                                 f'from the end), got {index!r} in {tuple(out_indices)!r}')
            parsed.append(index % cls.num_stages)
        if len(set(parsed)) != len(parsed):
            raise ValueError(f'out_indices lists a stage twice: {tuple(out_indices)!r}')
        return tuple(sorted(parsed))

    # ------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """The authors' initialisation, or what ``init_cfg`` names: other initialisers first, then the pretrained
        weights, loaded by mmengine's ``Pretrained`` initialiser (files, URLs, any scheme it knows). With pretrained
        weights alone, what they lack (the output norms ``norm0``-``norm2`` of ImageNet weights) keeps its
        construction values, which equal the authors' initialisation of norms."""
        if self.init_cfg is None:
            init_cfgs = []
        else:
            init_cfgs = list(self.init_cfg) if isinstance(self.init_cfg, (list, tuple)) else [self.init_cfg]
        pretrained = [cfg for cfg in init_cfgs if cfg.get('type') == 'Pretrained']
        others = [cfg for cfg in init_cfgs if cfg.get('type') != 'Pretrained']
        if others:
            initialize(self, others)
        elif not pretrained:
            self._authors_init()
        for cfg in pretrained:
            try:
                initialize(self, cfg)
            except CheckpointError as err:
                raise CheckpointError(f'{cfg.get("checkpoint")!r}: {err}') from None
        self._is_init = True

    def _authors_init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1.0, bias=0)
            elif isinstance(m, nn.Conv2d):
                kaiming_init(m)
            elif isinstance(m, _BatchNorm):
                constant_init(m, val=1.0, bias=0)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # Runs before any child module reads its entries: adapting (or refusing) here decides for the whole backbone.
        adapt_state_dict(state_dict, prefix, self.state_dict_shapes, local_metadata.get('version'), self.arch_zoo)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    # ------------------------------------------------------------------ training behaviour
    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen: List[nn.Module] = [self.downsample_layers[0]]
        for i in range(self.frozen_stages + 1):
            frozen += [self.downsample_layers[i], self.stages[i]]
            if i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'L2ViT':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id of a parameter for layer-wise learning-rate decay, and the number of layers.

        The stem is layer 0, block ``j`` of stage ``i`` is ``sum(depths[:i]) + j + 1``, the downsampling in front of
        stage ``i`` shares the id of the last block before it, and everything else (output norms, heads, parameters
        outside ``prefix``) is the last layer, ``sum(depths) + 1``.
        """
        num_layers = sum(self.depths) + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        parts = name.split('.')
        if parts[0] == 'downsample_layers':
            layer_id = sum(self.depths[:int(parts[1])])
        elif parts[0] == 'stages':
            stage_id, block_id = int(parts[1]), int(parts[2])
            layer_id = sum(self.depths[:stage_id]) + block_id + 1
        else:
            layer_id = num_layers - 1
        return layer_id, num_layers

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W) images of any size -> NCHW maps at strides 4, 8, 16, 32 for ``out_indices``."""
        if x.dim() != 4 or x.shape[1] != self.downsample_layers[0].proj.proj[0].in_channels:
            raise ValueError(f'L2ViT expects a batch of images shaped (B, '
                             f'{self.downsample_layers[0].proj.proj[0].in_channels}, H, W), got {tuple(x.shape)}')
        if x.numel() == 0:
            raise ValueError(f'L2ViT got an empty input of shape {tuple(x.shape)}; images must have H, W >= 1')
        outs = []
        checkpointed = self.with_cp and self.training and torch.is_grad_enabled()
        for i in range(self.num_stages):
            for layer in [self.downsample_layers[i], *self.stages[i]]:
                x = _checkpointed(layer, x) if checkpointed else layer(x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x).permute(0, 3, 1, 2).contiguous())
        return tuple(outs)


@contextmanager
def _frozen_bn_statistics(module: nn.Module) -> Iterator[None]:
    """Keep BatchNorm running statistics unchanged (momentum 0) while a checkpointed block is recomputed."""
    saved = []
    for m in module.modules():
        if isinstance(m, _BatchNorm) and m.training and m.track_running_stats:
            saved.append((m, m.momentum, m.num_batches_tracked.clone()))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


def _checkpointed(block: nn.Module, x: Tensor) -> Tensor:
    """Run ``block`` under non-reentrant gradient checkpointing.

    The recomputation in backward would update the LCM's BatchNorm statistics a second time; it is run with them
    frozen, so running statistics, outputs and gradients all equal a run without checkpointing.
    """
    calls = 0

    def run(inp: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:
            return block(inp)
        with _frozen_bn_statistics(block):
            return block(inp)

    return cp.checkpoint(run, x, use_reentrant=False)
