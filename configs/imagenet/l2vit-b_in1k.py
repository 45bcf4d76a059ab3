# L²ViT-Base, ImageNet-1K at 224²: the tiny recipe with wider stages (128-1024) and 18 blocks in stage 3.
# Evaluate the released weights:
#   python tools/test.py configs/imagenet/l2vit-b_in1k.py \
#       https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/L2ViT-Base-checkpoint-best-ema.pth
_base_ = ['./l2vit-t_in1k.py']

# Drop path 0.3 for base is the authors' value.
model = dict(backbone=dict(arch='base', drop_path_rate=0.3), head=dict(in_channels=1024))
