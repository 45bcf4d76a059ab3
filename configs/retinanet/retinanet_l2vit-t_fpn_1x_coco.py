# RetinaNet + FPN + L2ViT-T on COCO 2017 (boxes only), the authors' 1x recipe: FPN over the last three stages
# (strides 8-32) plus two extra levels from the last input map, AdamW 1e-4 (wd 0.05) for 2 images/GPU x 8 GPUs,
# 500-iteration linear warm-up, lr x0.1 after epochs 8 and 11 of 12 (the schedule of the base config), DETR-style
# multi-scale (+ crop) augmentation.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/l2vit_hooks.py']
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
        drop_path_rate=0.1,
        out_indices=(1, 2, 3),  # only the stages the FPN reads: an unused output norm would get no gradient
        # SyncBN for the stem and LCM BatchNorms: synchronised under distributed training, plain BN otherwise.
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[192, 384, 768], start_level=0, add_extra_convs='on_input', num_outs=5))

# The augmentation of the Mask R-CNN recipe, without masks: either resize the short side to 480-800 (long side
# <= 1333), or resize to 400/500/600, crop a random 384-600 patch and resize that to 480-800.
multi_scale = [(short, 1333) for short in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)], keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600), allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# The authors' optimizer: plain AdamW on every parameter (no per-parameter decay rules).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05))
