"""Layer-wise learning-rate decay for detectors, segmentors and classifiers whose backbone is L²ViT.

mmdet's ``LearningRateDecayOptimizerConstructor`` only accepts ConvNeXt, and mmseg's only BEiT/ConvNeXt; this one
asks the backbone itself (``backbone.get_layer_depth``), so it serves L²ViT (and any backbone with that method).
"""
from typing import List, Optional

from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn


class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Scale each parameter's learning rate by ``layer_decay_rate ** (num_layers - 1 - layer_id)``.

    ``paramwise_cfg``:
        layer_decay_rate (float, required): decay per layer; 1.0 disables the decay.
        no_decay_names (list[str], optional): substrings of parameter names that get no weight decay, in addition to
            1-D parameters and biases (the authors' rule).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        cfg = dict(paramwise_cfg or {})
        # Checked here: mmengine skips add_params() altogether when paramwise_cfg is empty, which would silently
        # train without the decay.
        if 'layer_decay_rate' not in cfg:
            raise ValueError("LayerDecayOptimWrapperConstructor needs paramwise_cfg=dict(layer_decay_rate=...), "
                             "e.g. 0.9; use 1.0 for no decay.")
        self.decay_rate = float(cfg.pop('layer_decay_rate'))
        self.no_decay_names = list(cfg.pop('no_decay_names', []))
        if cfg:
            raise ValueError(f'LayerDecayOptimWrapperConstructor: unknown paramwise_cfg keys {sorted(cfg)}; '
                             f'accepted: layer_decay_rate, no_decay_names.')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '', **kwargs) -> None:
        if prefix:  # the whole model is handled in the top-level call
            return
        decay_rate, no_decay_names = self.decay_rate, self.no_decay_names
        model = getattr(module, 'module', module)  # unwrap (Distributed)DataParallel
        backbone = getattr(model, 'backbone', None)
        if backbone is not None:
            get_depth, depth_prefix = backbone.get_layer_depth, 'backbone.'
        elif hasattr(model, 'get_layer_depth'):
            get_depth, depth_prefix = model.get_layer_depth, ''
        else:
            raise TypeError(f'LayerDecayOptimWrapperConstructor needs a model whose backbone has get_layer_depth() '
                            f'(such as L2ViT); {type(model).__name__} has none. Use the default constructor.')
        groups = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            layer_id, num_layers = get_depth(name, depth_prefix)
            no_decay = param.ndim == 1 or name.endswith('.bias') or any(n in name for n in no_decay_names)
            key = (layer_id, no_decay)
            if key not in groups:
                scale = decay_rate**(num_layers - 1 - layer_id)
                groups[key] = dict(params=[], lr=self.base_lr * scale, weight_decay=0.0 if no_decay else self.base_wd)
            groups[key]['params'].append(param)
        rank, _ = get_dist_info()
        if rank == 0:
            print_log(f'Layer-wise lr decay {decay_rate}: {len(groups)} parameter groups over {num_layers} layers.',
                      logger='current')
        params.extend(groups[key] for key in sorted(groups))
