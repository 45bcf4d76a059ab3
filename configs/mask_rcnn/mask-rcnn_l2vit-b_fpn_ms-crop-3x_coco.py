# Mask R-CNN + FPN + L2ViT-B on COCO 2017, the authors' 3x recipe (drop path 0.3 for B).
_base_ = './mask-rcnn_l2vit-t_fpn_ms-crop-3x_coco.py'

pretrained = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
              'L2ViT-Base-checkpoint-best-ema.pth')
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.3, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
