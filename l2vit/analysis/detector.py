"""The whole Mask R-CNN of ``configs/maskrcnn_l2vit.py`` with a chosen backbone, for measuring in one process: its
config (:func:`detector_config`: SyncBN as BN, no pretrained weights, ``model.backbone`` and the neck's input widths
replaced, everything else as the config has it), the model with its optimizer wrapper as mmengine's runner builds
them (:func:`build_detector`), and a packed batch of random images with ground truth (:func:`packed_batch`).

One training iteration is then ``detector.train_step(data)``: ``model.train_step(data, optim_wrapper)``, what the
runner calls per iteration (the model's data preprocessor, the losses, backward, the optimizer step, zero_grad)."""
import copy
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

__all__ = ['MASK_RCNN_CONFIG', 'SWIN_T_CONFIG', 'SWIN_T_CHANNELS', 'COCO_CLASSES', 'BOXES', 'base_config',
           'swin_t_backbone', 'detector_config', 'amp_config', 'Detector', 'build_detector', 'packed_batch']

MASK_RCNN_CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'maskrcnn_l2vit.py'
SWIN_T_CONFIG = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
#: Swin-T's four stage widths, the FPN's ``in_channels`` (L²ViT-T's are the same).
SWIN_T_CHANNELS = (96, 192, 384, 768)
COCO_CLASSES = 80
#: Ground-truth instances per image of :func:`packed_batch`.
BOXES = 3


def base_config(config: str) -> Any:
    """An mmengine ``Config`` of a file path or an ``mmdet::``-style name (``Config.fromfile`` does not resolve those
    itself; a ``_base_`` does, as in our own configs)."""
    from mmengine.config import Config
    if '::' in config:
        return Config.fromstring(f'_base_ = {config!r}', '.py')
    return Config.fromfile(config)


def swin_t_backbone() -> Dict[str, Any]:
    """mmdet's Swin-T backbone dict (of :data:`SWIN_T_CONFIG`), without pretrained weights."""
    return dict(base_config(SWIN_T_CONFIG).model.backbone.to_dict(), init_cfg=None)


def detector_config(backbone: Optional[Dict[str, Any]] = None, in_channels: Optional[Sequence[int]] = None,
                    config: str = str(MASK_RCNN_CONFIG)) -> Any:
    """``config`` (our Mask R-CNN L²ViT-T) for one process: every SyncBN as BN, no ``init_cfg`` that loads weights;
    with ``backbone``, ``model.backbone`` replaced by it (a whole new dict, nothing of the old one kept) and
    ``model.neck.in_channels`` by ``in_channels``, the widths of the backbone's outputs (required with a
    ``backbone``). Nothing else changes: neck, heads, data preprocessor, train/test settings and optimizer stay."""
    from ..apis.config_tree import drop_pretrained, sync_bn_to_bn
    cfg = base_config(config)
    if backbone is not None:
        if in_channels is None:
            raise ValueError('detector_config: a backbone needs its output widths (in_channels of the neck)')
        cfg.model.backbone = copy.deepcopy(dict(backbone))
        cfg.model.neck.in_channels = list(in_channels)
    drop_pretrained(cfg.model)
    sync_bn_to_bn(cfg.model)
    return cfg


def amp_config(cfg: Any, dtype: str) -> Any:
    """A copy of ``cfg`` that trains in mixed precision: its ``optim_wrapper`` becomes mmengine's ``AmpOptimWrapper``
    computing in ``dtype`` ('bfloat16' or 'float16'; dynamic loss scaling, mmengine's default), its optimizer and
    the rest kept. This is how an AMP config of ours changes its base (it needs a GPU)."""
    cfg = copy.deepcopy(cfg)
    cfg.optim_wrapper = dict(cfg.optim_wrapper, type='AmpOptimWrapper', dtype=dtype)
    return cfg


class Detector:
    """A detector with its optimizer wrapper: what one training iteration needs."""

    def __init__(self, model: Any, optim_wrapper: Any) -> None:
        self.model, self.optim_wrapper = model, optim_wrapper

    def train(self) -> None:
        self.model.train()

    def train_step(self, data: Dict[str, Any]) -> Dict[str, Any]:
        """One training iteration on ``data`` (:func:`packed_batch`); returns the logged losses."""
        return self.model.train_step(data, self.optim_wrapper)


def build_detector(cfg: Any, device: Any, seed: int = 0) -> Detector:
    """The config's model (weights initialised after ``torch.manual_seed(seed)``) on ``device``, and its
    ``optim_wrapper``, built as mmengine's runner builds them."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from ..apis.config import build_model
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = build_model(cfg, pretrained=False)
        model.init_weights()
        model.to(device)
        return Detector(model, build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper)))


def packed_batch(size: Tuple[int, int], batch: int, boxes: int = BOXES,
                 num_classes: int = COCO_CLASSES) -> Dict[str, Any]:
    """A batch as the runner's data loader gives one: ``inputs``, ``batch`` uint8 images of ``size`` (H, W), and
    ``data_samples``, ``DetDataSample`` s each with ``boxes`` random gt boxes, labels and bitmap masks (mmdet's
    ``demo_mm_inputs``, seeded: the same batch every call). On the CPU, like a loader's; the data preprocessor moves
    it to the model's device."""
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(batch_size=batch, image_shapes=(3, *size), num_items=[boxes] * batch,
                          num_classes=num_classes, with_mask=True)
