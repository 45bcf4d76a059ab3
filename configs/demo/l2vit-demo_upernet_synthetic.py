# `make demo-seg`: the UperNet + L2ViT pipeline of configs/upernet/ (T recipe), shrunk to train from scratch on a
# 2-core CPU in minutes, on the synthetic outdoor scenes written by tools/datasets/make_synthetic_ade.py (ADE20K
# layout: 0 = unlabelled, 1..6 = the classes, hence reduce_zero_label=True).
_base_ = '../upernet/l2vit-t_upernet_8xb2-160k_ade20k-512x512.py'

data_root = 'data/synthetic_ade/'
# l2vit.testing.seg_metainfo(), written out so that the config reads on its own.
metainfo = dict(classes=('sky', 'building', 'tree', 'grass', 'road', 'water'),
                palette=[[255, 190, 40], [0, 200, 255], [255, 60, 180], [150, 60, 255], [255, 60, 40],
                         [60, 255, 120]])
num_classes = 6
crop_size = (160, 160)
img_scale = (256, 256)  # the images are 160-320 px a side; their long side is brought to ~256
norm_cfg = dict(type='BN', requires_grad=True)  # one process: plain BN instead of the recipe's SyncBN

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='L2ViT',
        arch=dict(embed_dims=[32, 64, 128, 256], depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
        window_size=7,
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3),
        norm_cfg=norm_cfg,
        cpu_fast_paths=True,  # the CPU variants of the blocks: same results, less memory and time on a CPU
        init_cfg=None),  # from scratch: no ImageNet weights needed
    decode_head=dict(in_channels=[32, 64, 128, 256], channels=64, dropout_ratio=0.0, num_classes=num_classes,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=128, channels=32, dropout_ratio=0.0, num_classes=num_classes, norm_cfg=norm_cfg))

# The dataset type is mmseg's generic one: ADE20KDataset would map our class names onto ADE's 150 ids. The datasets'
# reduce_zero_label=True reaches LoadAnnotations (0 -> 255 ignored, c -> c - 1).
dataset_type = 'BaseSegDataset'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo, reduce_zero_label=True,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo, reduce_zero_label=True,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch with a small batch: a higher lr than the fine-tuning recipe's 6e-5, short warm-up, linear decay.
# 600 iterations take ~4 min on 2 idle CPU cores (~0.37 s each) and reach ~88 mIoU on the val split.
max_iters = 600
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.01), clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=50, end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)  # evaluate once, at the end
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
