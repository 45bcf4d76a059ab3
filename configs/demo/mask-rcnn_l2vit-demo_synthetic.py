# `make demo`: the real Mask R-CNN + L2ViT pipeline of configs/maskrcnn_l2vit.py, shrunk to train from scratch on a
# 2-core CPU in minutes, on the synthetic shapes set written by tools/datasets/make_synthetic_coco.py.
_base_ = '../maskrcnn_l2vit.py'

data_root = 'data/synthetic_coco/'
metainfo = dict(classes=('ellipse', 'rectangle', 'triangle', 'star'),
                palette=[(220, 20, 60), (0, 114, 255), (0, 170, 60), (255, 170, 0)])
num_classes = 4
img_scale = (224, 224)  # the images are 200-360 px; shapes stay 26-100 px

model = dict(
    backbone=dict(
        _delete_=True,
        type='L2ViT',
        arch=dict(embed_dims=[32, 64, 128, 256], depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8]),
        window_size=7,
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN', requires_grad=True),
        cpu_fast_paths=True,  # the CPU variants of the blocks: same results, less memory and time on a CPU
        init_cfg=None),  # from scratch: no ImageNet weights needed
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        # One sample per RoI bin: mmcv's CPU RoIAlign (its backward above all) is a fifth of a training iteration
        # with a 2x2 grid, and the adaptive default is far slower still.
        bbox_roi_extractor=dict(out_channels=64, roi_layer=dict(sampling_ratio=1)),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=64, roi_layer=dict(sampling_ratio=1)),
        mask_head=dict(num_convs=2, in_channels=64, conv_out_channels=64, num_classes=num_classes)),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=300), rcnn=dict(max_per_img=50)),
    # Few objects per image: fewer proposals and RoI samples than COCO's settings cost less and lose nothing.
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200), rcnn=dict(sampler=dict(num=64))))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.8, 1.2), keep_ratio=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        eta_min_ratio=0.05,
        convert_to_iter_based=True)
]
optim_wrapper = dict(optimizer=dict(lr=0.001, weight_decay=0.05), clip_grad=dict(max_norm=10.0))
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=max_epochs))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)  # the same figures on every `make demo` (up to floating-point thread scheduling)
