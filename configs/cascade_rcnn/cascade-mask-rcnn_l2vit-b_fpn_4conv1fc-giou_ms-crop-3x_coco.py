# Cascade Mask R-CNN + FPN + L2ViT-B on COCO 2017, 3x: the T recipe with drop path 0.3 and layer-wise lr decay 0.92
# for 24 blocks (see the T config).
_base_ = './cascade-mask-rcnn_l2vit-t_fpn_4conv1fc-giou_ms-crop-3x_coco.py'

pretrained = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
              'L2ViT-Base-checkpoint-best-ema.pth')
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.3, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.92))
