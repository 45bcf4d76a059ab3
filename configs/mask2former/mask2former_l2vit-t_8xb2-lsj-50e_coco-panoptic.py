# Mask2Former + L2ViT-T, panoptic segmentation on COCO 2017 (133 classes: 80 things, 53 stuff): mmdet's Swin-T recipe
# (as for instance segmentation) with our backbone; the same differences from mmdet's Swin-T config as
# ./mask2former_l2vit-t_8xb2-lsj-50e_coco.py. PQ needs panopticapi, installed from source (docs/mask2former.md).
_base_ = [
    'mmdet::mask2former/mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py', './_base_/l2vit_mask2former.py'
]
custom_imports = dict(imports=['mmdet_l2vit'], allow_failed_imports=False)
# Our hooks: see ../_base_/l2vit_hooks.py (inherited through ./_base_/l2vit_mask2former.py).
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))

model = dict(backbone={{_base_.l2vit_backbone}}, panoptic_head=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={{_base_.l2vit_custom_keys}}))
