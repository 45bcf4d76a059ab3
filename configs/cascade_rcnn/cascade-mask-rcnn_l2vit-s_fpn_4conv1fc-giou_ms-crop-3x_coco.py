# Cascade Mask R-CNN + FPN + L2ViT-S on COCO 2017, 3x: the T recipe with drop path 0.2 (as for T) and layer-wise
# lr decay 0.92 for 24 blocks (see the T config).
_base_ = './cascade-mask-rcnn_l2vit-t_fpn_4conv1fc-giou_ms-crop-3x_coco.py'

pretrained = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
              'L2ViT-Small-checkpoint-best-ema.pth')
# Same stage widths as T (96-768), so the FPN is unchanged.
model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint=pretrained)))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.92))
