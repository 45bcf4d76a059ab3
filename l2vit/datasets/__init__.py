"""Datasets that ship with the project: synthetic COCO-format instance segmentation and ADE20K-format semantic
segmentation sets for demos and tests."""
from .synthetic_ade import SEG_CLASSES, SEG_PALETTE, generate_ade_semantic, seg_metainfo
from .synthetic_coco import CLASSES, PALETTE, generate_coco_instances, metainfo

__all__ = ['CLASSES', 'PALETTE', 'generate_coco_instances', 'metainfo', 'SEG_CLASSES', 'SEG_PALETTE',
           'generate_ade_semantic', 'seg_metainfo']
