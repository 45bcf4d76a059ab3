# Mask2Former + L2ViT-S, panoptic segmentation on COCO 2017: the T config with the S backbone (same stage widths; the
# optimizer keys already cover S's 18-block third stage).
_base_ = './mask2former_l2vit-t_8xb2-lsj-50e_coco-panoptic.py'

pretrained = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
              'L2ViT-Small-checkpoint-best-ema.pth')
model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint=pretrained)))
