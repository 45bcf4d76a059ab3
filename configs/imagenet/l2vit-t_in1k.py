# L²ViT-Tiny, ImageNet-1K classification at 224², with the authors' training recipe (paper and released code):
# AdamW lr 4e-3 for a total batch of 4096, weight decay 0.05, 300 epochs (20 linear warm-up epochs, then cosine),
# EMA, RandAugment, mixup 0.8, cutmix 1.0, label smoothing 0.1, random erasing 0.25, no AMP.
#
# Evaluate the released weights, by URL or as a downloaded file (read as released, converted in memory):
#   python tools/test.py configs/imagenet/l2vit-t_in1k.py \
#       https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/L2ViT-Tiny-checkpoint-best-ema.pth
# (or a checkpoint of tools/convert_official.py; `--use-ema` there converts the EMA weights instead of `model`).
#
# Train: 64 images per GPU (the dataset base); lr 4e-3 belongs to 64 GPUs x 64 = 4096 images per step. On fewer
# GPUs, --auto-scale-lr scales lr linearly to the actual total batch:
#   torchrun --nproc_per_node=8 tools/train.py configs/imagenet/l2vit-t_in1k.py --launcher pytorch --auto-scale-lr
#
# Data: data/imagenet/{train,val}/ with meta/{train,val}.txt, mmpretrain's standard ImageNet layout.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmpretrain_l2vit'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    # The authors' classifier normalises the last stage before pooling: norm3 of out_indices=(3, ), then GAP.
    # Drop path: the authors state 0.3 for base only; 0.1 for tiny is our choice (ConvNeXt-T uses 0.1).
    backbone=dict(type='L2ViT', arch='tiny', out_indices=(3, ), drop_path_rate=0.1),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
        cal_acc=False),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))

# The schedule base already exempts biases and 1-D parameters (norm weights) from weight decay, the authors' rule.
optim_wrapper = dict(optimizer=dict(lr=4e-3))
auto_scale_lr = dict(base_batch_size=4096)

# EMA: the authors give no decay rate; 0.9999 (momentum 1e-4) is the default of the ConvNeXt/timm trainer whose
# checkpoint format their release uses (our assumption). Like that trainer, the average covers BatchNorm statistics.
# Validation and saved checkpoints use the EMA weights.
# Then our hooks: those of ../_base_/l2vit_hooks.py (restated: a list here replaces the inherited one).
custom_hooks = [
    dict(type='EMAHook', momentum=1e-4, update_buffers=True, priority='ABOVE_NORMAL'),
    dict(type='DataCheckHook'),
    dict(type='ConfigCheckHook'),
    dict(type='RNGStateHook'),
    dict(type='FiniteLossHook'),
    dict(type='CheckpointFitHook'),
]
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))
