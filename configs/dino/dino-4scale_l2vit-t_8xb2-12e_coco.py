# DINO 4-scale + L2ViT-T on COCO 2017, 12 epochs: mmdet's own DINO recipe (AdamW 1e-4, wd 1e-4, grad clip 0.1,
# lr x0.1 after epoch 11, DETR multi-scale + crop augmentation, 8 GPUs x 2 images); we change the backbone.
# 4-scale: the ChannelMapper takes stages 1-3 (strides 8, 16, 32) and adds one level (stride 64) by a strided conv.
_base_ = [
    'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', '../_base_/l2vit_hooks.py', '../_base_/l2vit_no_decay.py'
]
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
        # Stages 1-3 for the neck's three inputs (L2ViT's default, 0-3, would give four).
        out_indices=(1, 2, 3),
        # SyncBN for the stem and LCM BatchNorms: synchronised under distributed training, plain BN otherwise.
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    # The widths of stages 1-3; num_outs (4) stays the base's.
    neck=dict(in_channels=[192, 384, 768]))

# mmdet's Swin/DINO optimizer rule (backbone lr x0.1), with no weight decay on the backbone's norms and attention
# temperatures, as mmdet's Swin recipes intend for norms and embeddings, for L2ViT's names
# (../_base_/l2vit_no_decay.py).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={{_base_.l2vit_custom_keys}}))
