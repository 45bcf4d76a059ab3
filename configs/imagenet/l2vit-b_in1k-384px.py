# L²ViT-Base at 384² (window 12), ImageNet-1K: evaluates the authors' 384² fine-tuned weights and fine-tunes 224²
# weights to 384². No parameter depends on the window size, so 224² weights load unchanged.
#   python tools/test.py configs/imagenet/l2vit-b_in1k-384px.py \
#       https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/L2ViT-Base-22k21k-finetune-384-checkpoint-best.pth
# Evaluation resizes the whole image to 384² (no centre crop), as 384² models are usually evaluated.
#
# Fine-tuning: the authors publish no 384² recipe. Batch, lr and schedule follow ConvNeXt's 384² fine-tuning (our
# choice): 512 images per step (16 GPUs x 32), lr 5e-5, weight decay 1e-8, 30 epochs of cosine decay without warm-up.
# Augmentation, drop path and EMA stay as in the 224² recipe.
#   torchrun --nproc_per_node=8 tools/train.py configs/imagenet/l2vit-b_in1k-384px.py --launcher pytorch \
#       --auto-scale-lr \
#       --cfg-options load_from=https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/L2ViT-Base-checkpoint-best-ema.pth  # noqa: E501
_base_ = ['./l2vit-b_in1k.py']

model = dict(backbone=dict(window_size=12))

bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=384, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=384, backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=5e-5, weight_decay=1e-8))
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=0, end=30, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=30)
auto_scale_lr = dict(base_batch_size=512)
