# Mask2Former + L2ViT-T, instance segmentation on COCO 2017: mmdet's Swin-T recipe (LSJ 1024x1024, 50 epochs as
# 368750 iterations, AdamW 1e-4, wd 0.05, 8 GPUs x 2 images) with our backbone. What differs from mmdet's Swin-T
# config: the backbone, the head's input widths, and the optimizer's per-parameter rules restated for L2ViT's names
# (./_base_/l2vit_mask2former.py).
_base_ = [
    'mmdet::mask2former/mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco.py', './_base_/l2vit_mask2former.py'
]
custom_imports = dict(imports=['mmdet_l2vit'], allow_failed_imports=False)
# Our hooks: see ../_base_/l2vit_hooks.py (inherited through ./_base_/l2vit_mask2former.py).
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))

model = dict(backbone={{_base_.l2vit_backbone}}, panoptic_head=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={{_base_.l2vit_custom_keys}}))
# The LSJ crop size: mmdet's base applies its `image_size` to RandomResize, RandomCrop and the batch padding when
# the base is read, so a child that restates `image_size` restates those three as well (see docs/mask2former.md;
# our tools' preflight refuses a config where they differ).

# mmdet's instance config keeps its panoptic base's `data_prefix.seg` (annotations/panoptic_{train,val}2017/), which
# the instance pipeline never reads; dropped, so that COCO without the panoptic files is complete for this config.
train_dataloader = dict(dataset=dict(data_prefix=dict(_delete_=True, img='train2017/')))
val_dataloader = dict(dataset=dict(data_prefix=dict(_delete_=True, img='val2017/')))
test_dataloader = val_dataloader
