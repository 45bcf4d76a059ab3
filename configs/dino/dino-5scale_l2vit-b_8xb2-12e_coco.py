# DINO 5-scale + L2ViT-B on COCO 2017, 12 epochs (drop path 0.2 for B).
_base_ = './dino-5scale_l2vit-t_8xb2-12e_coco.py'

pretrained = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
              'L2ViT-Base-checkpoint-best-ema.pth')
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.2, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
