# Mask R-CNN + FPN + L2ViT-T on COCO 2017, the authors' 1x recipe: AdamW 1e-4 (wd 0.05) for 2 images/GPU x 8 GPUs,
# 500-iteration linear warm-up, lr x0.1 after epochs 8 and 11 of 12, DETR-style multi-scale (+ crop) augmentation.
# mmdet's Swin-T "ms-crop-3x" config carries exactly that augmentation; we change backbone and schedule.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', '../_base_/l2vit_hooks.py']
custom_imports = dict(imports=['mmdet_l2vit'], allow_failed_imports=False)
# Our hooks: see ../_base_/l2vit_hooks.py.
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))

# The authors' released ImageNet weights (downloaded once into the torch hub cache; a local file works too).
pretrained = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
              'L2ViT-Tiny-checkpoint-best-ema.pth')
model = dict(
    backbone=dict(
        _delete_=True,
        type='L2ViT',
        arch='tiny',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        # SyncBN for the stem and LCM BatchNorms: synchronised under distributed training, plain BN otherwise.
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[96, 192, 384, 768]))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
# The authors' optimizer: plain AdamW on every parameter (no per-parameter decay rules).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05))
# 8 GPUs x 2 images; `--auto-scale-lr` in tools/train.py rescales the lr for another total batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)
