# UperNet + L2ViT-T on ADE20K, 512x512 crops, the authors' 160k recipe: AdamW 6e-5 (betas 0.9/0.999, wd 0.01) for
# 2 images/GPU x 8 GPUs, 1500-iteration linear warm-up then poly (power 1) decay to 0 at 160k iterations, drop path
# 0.3, auxiliary FCN head on stage 2 (loss weight 0.4). mmseg's Swin-T UperNet config is that same recipe (model
# heads, ADE20K pipeline, schedule, runtime); we swap the backbone and use plain AdamW.
#   single scale:            python tools/test.py CONFIG CHECKPOINT
#   multi-scale + flip (ms): python tools/test.py CONFIG CHECKPOINT --tta
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py', '../_base_/l2vit_hooks.py'
]
custom_imports = dict(imports=['mmseg_l2vit'], allow_failed_imports=False)
# Our hooks: see ../_base_/l2vit_hooks.py.
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))

# The authors' released ImageNet weights (downloaded once into the torch hub cache; a local file works too); the
# name is the base's, so its Swin URL does not linger in the config.
checkpoint_file = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
                   'L2ViT-Tiny-checkpoint-best-ema.pth')
model = dict(
    backbone=dict(
        _delete_=True,
        type='L2ViT',
        arch='tiny',
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        # SyncBN for the stem and LCM BatchNorms: synchronised under distributed training, plain BN otherwise.
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file, prefix='backbone.')),
    # UperNet reads all four stages, the auxiliary FCN head stage 2 (in_index=2 in the base).
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))

# The authors' optimizer: plain AdamW on every parameter (the base's Swin-specific decay rules are dropped).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=160000)
]
train_cfg = dict(max_iters=160000)
# data_root 'data/ade/ADEChallengeData2016' comes from mmseg's ADE20K base.
train_dataloader = dict(batch_size=2)
# 8 GPUs x 2 images; `--auto-scale-lr` in tools/train.py rescales the lr for another total batch.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# Multi-scale + flip testing (`tools/test.py --tta`) as the authors' mmseg 0.x evaluation did it: ratios of the
# single-scale test size (2048, 512), where mmseg 1.x's ADE20K base scales the original image instead.
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(int(2048 * r), int(512 * r)), keep_ratio=True) for r in img_ratios],
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
