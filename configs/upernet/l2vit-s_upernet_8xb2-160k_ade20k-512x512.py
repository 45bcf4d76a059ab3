# UperNet + L2ViT-S on ADE20K, the authors' 160k recipe (drop path 0.3, as for T).
_base_ = './l2vit-t_upernet_8xb2-160k_ade20k-512x512.py'

checkpoint_file = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
                   'L2ViT-Small-checkpoint-best-ema.pth')
# Same stage widths as T (96-768), so the heads are unchanged.
model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint=checkpoint_file)))
