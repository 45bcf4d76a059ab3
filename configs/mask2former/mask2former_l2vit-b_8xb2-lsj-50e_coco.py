# Mask2Former + L2ViT-B, instance segmentation on COCO 2017: the T config with the B backbone and its stage widths.
_base_ = './mask2former_l2vit-t_8xb2-lsj-50e_coco.py'

pretrained = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
              'L2ViT-Base-checkpoint-best-ema.pth')
model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint=pretrained)),
    panoptic_head=dict(in_channels=[128, 256, 512, 1024]))
