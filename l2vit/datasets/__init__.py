"""Datasets that ship with the project: a synthetic COCO-format instance-segmentation set for demos and tests."""
from .synthetic_coco import CLASSES, PALETTE, generate_coco_instances, metainfo

__all__ = ['CLASSES', 'PALETTE', 'generate_coco_instances', 'metainfo']
