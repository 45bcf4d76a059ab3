# Mask R-CNN + FPN + L2ViT-S on COCO 2017, the authors' 3x recipe (drop path 0.2, as for T).
_base_ = './mask-rcnn_l2vit-t_fpn_ms-crop-3x_coco.py'

pretrained = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
              'L2ViT-Small-checkpoint-best-ema.pth')
# Same stage widths as T (96-768), so the FPN is unchanged.
model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint=pretrained)))
