"""Synthetic datasets for the demos and the tests, written in the exact layout of real ones so that the stock
OpenMMLab datasets read them: COCO-format instance segmentation (:mod:`l2vit.testing.coco`) and ADE20K-format
semantic segmentation (:mod:`l2vit.testing.ade`). They need OpenCV and, for COCO, pycocotools (the ``testing``
extra); a missing one is a :class:`~l2vit.testing.common.MissingDependencyError` (an ``ImportError``) that says what
to install. ``import l2vit`` does not import this package.
"""
from .ade import SEG_CLASSES, SEG_PALETTE, generate_ade_semantic, seg_metainfo
from .coco import CLASSES, PALETTE, STUFF_CLASSES, generate_coco_instances, metainfo, panoptic_metainfo
from .common import MissingDependencyError

__all__ = [
    'CLASSES', 'PALETTE', 'STUFF_CLASSES', 'generate_coco_instances', 'metainfo', 'panoptic_metainfo', 'SEG_CLASSES',
    'SEG_PALETTE', 'generate_ade_semantic', 'seg_metainfo', 'MissingDependencyError'
]
