# Mask2Former + L2ViT-S on ADE20K, 512x512, 160k: the T recipe (drop path 0.3, as mmseg's Swin-S config).
_base_ = './mask2former_l2vit-t_8xb2-160k_ade20k-512x512.py'

checkpoint_file = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
                   'L2ViT-Small-checkpoint-best-ema.pth')
# Same stage widths as T (96-768), so the head is unchanged.
model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint=checkpoint_file)))
