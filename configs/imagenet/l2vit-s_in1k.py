# L²ViT-Small, ImageNet-1K at 224²: the tiny recipe with 18 blocks in stage 3.
# Evaluate: python tools/test.py configs/imagenet/l2vit-s_in1k.py checkpoints/l2vit-s_in1k.pth
_base_ = ['./l2vit-t_in1k.py']

# Drop path: the authors state 0.3 for base only; small takes the same 0.3 (our choice).
model = dict(backbone=dict(arch='small', drop_path_rate=0.3))
