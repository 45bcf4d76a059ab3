# DINO 5-scale + L2ViT-T on COCO 2017, 12 epochs: the 4-scale config with five feature levels, set as mmdet's
# dino-5scale_swin-l_8xb2-12e_coco.py sets them: the ChannelMapper takes stages 0-3 (strides 4-32) and adds one level
# (stride 64); the encoder's and decoder's deformable attention sample all five.
_base_ = './dino-4scale_l2vit-t_8xb2-12e_coco.py'

num_levels = 5
model = dict(
    num_feature_levels=num_levels,
    backbone=dict(out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[96, 192, 384, 768], num_outs=num_levels),
    encoder=dict(layer_cfg=dict(self_attn_cfg=dict(num_levels=num_levels))),
    decoder=dict(layer_cfg=dict(cross_attn_cfg=dict(num_levels=num_levels))))
