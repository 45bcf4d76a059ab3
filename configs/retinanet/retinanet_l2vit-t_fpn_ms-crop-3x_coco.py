# RetinaNet + FPN + L2ViT-T on COCO 2017, the authors' 3x recipe: the 1x recipe (same augmentation, AdamW 1e-4,
# 500-iteration warm-up) trained for 36 epochs, lr x0.1 after epochs 27 and 33, with more drop path (0.2).
_base_ = './retinanet_l2vit-t_fpn_1x_coco.py'

model = dict(backbone=dict(drop_path_rate=0.2))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1)
]
