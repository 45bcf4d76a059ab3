# L²ViT-Small, ImageNet-1K at 224²: the tiny recipe with 18 blocks in stage 3.
# Evaluate the released weights:
#   python tools/test.py configs/imagenet/l2vit-s_in1k.py \
#       https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/L2ViT-Small-checkpoint-best-ema.pth
_base_ = ['./l2vit-t_in1k.py']

# Drop path: the authors state 0.3 for base only; small takes the same 0.3 (our choice).
model = dict(backbone=dict(arch='small', drop_path_rate=0.3))
