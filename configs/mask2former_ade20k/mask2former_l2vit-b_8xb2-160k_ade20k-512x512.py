# Mask2Former + L2ViT-B on ADE20K, 512x512, 160k: the T recipe (drop path 0.3, as mmseg's Swin-B configs).
_base_ = './mask2former_l2vit-t_8xb2-160k_ade20k-512x512.py'

checkpoint_file = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
                   'L2ViT-Base-checkpoint-best-ema.pth')
model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]))
