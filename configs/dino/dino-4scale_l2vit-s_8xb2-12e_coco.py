# DINO 4-scale + L2ViT-S on COCO 2017, 12 epochs (drop path 0.1, as for T).
_base_ = './dino-4scale_l2vit-t_8xb2-12e_coco.py'

pretrained = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
              'L2ViT-Small-checkpoint-best-ema.pth')
# Same stage widths as T (96-768), so the neck is unchanged.
model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint=pretrained)))
