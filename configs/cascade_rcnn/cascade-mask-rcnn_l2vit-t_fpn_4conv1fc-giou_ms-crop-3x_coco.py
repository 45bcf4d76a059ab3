# Cascade Mask R-CNN + FPN + L2ViT-T on COCO 2017, 3x. The authors released no Cascade recipe; this is mmdet's ConvNeXt
# one (three 4conv1fc box heads with GIoU loss, AdamW lr 2e-4 wd 0.05, 1000-iteration warm-up, DETR-style
# multi-scale + crop augmentation, 36 epochs with lr x0.1 after 27 and 33) with L2ViT's 3x drop path (T 0.2) and
# two changes: fp32 instead of AMP (the authors trained in fp32), and our layer-wise lr decay instead of mmdet's
# ConvNeXt-only constructor.
_base_ = [
    'mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py',
    '../_base_/l2vit_hooks.py'
]
custom_imports = dict(imports=['mmdet_l2vit'], allow_failed_imports=False)
# Our hooks: see ../_base_/l2vit_hooks.py.
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))

pretrained = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
              'L2ViT-Tiny-checkpoint-best-ema.pth')
model = dict(
    backbone=dict(
        _delete_=True,
        type='L2ViT',
        arch='tiny',
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        # SyncBN for the stem and LCM BatchNorms: synchronised under distributed training, plain BN otherwise.
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[96, 192, 384, 768]))

# Layer-wise lr decay, lr x rate**(num_layers - 1 - layer_id). ConvNeXt-T's recipe uses 0.7 over 6 "layers" (the heads
# and neck at 1, its last stage at 0.7, its stem at 0.7**7 = 0.08). LayerDecayOptimWrapperConstructor counts every
# L2ViT block as a layer (stem 0, blocks 1..N, neck and heads N + 1), so the same profile needs a rate near
# 0.7 ** (6 / N): N = 12 blocks for T gives 0.84 -> 0.85 (stem at 0.85**13 = 0.12), N = 24 for S and B gives 0.915
# -> 0.92 (stem at 0.92**25 = 0.12).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.85),
    optimizer=dict(type='AdamW', lr=0.0002, betas=(0.9, 0.999), weight_decay=0.05))
