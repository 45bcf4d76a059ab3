# L2ViT for mmdet's Mask2Former (instance and panoptic): the backbone, and the Swin recipe's optimizer rules restated
# for L2ViT's parameter names, with our hooks (../../_base_/l2vit_hooks.py). It defines only names that mmdet's
# bases lack, so that a root config inherits it beside mmdet's own config and uses them:
# model.backbone={{_base_.l2vit_backbone}} and optim_wrapper.paramwise_cfg.custom_keys={{_base_.l2vit_custom_keys}}.
_base_ = ['../../_base_/l2vit_hooks.py', '../../_base_/l2vit_no_decay.py']

# The authors' released ImageNet weights (downloaded once into the torch hub cache; a local file works too).
l2vit_pretrained = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
                    'L2ViT-Tiny-checkpoint-best-ema.pth')
l2vit_backbone = dict(
    _delete_=True,  # replaces the Swin backbone
    type='L2ViT',
    # arch='tiny' written out as a dict, so that a child's arch merges with it, whole or in part (arch=dict(depths=..)):
    # over the string 'tiny', mmengine refuses a dict ("cannot inherit from base") unless it carries _delete_=True.
    # S and B name theirs (arch='small' / 'base': a string replaces the dict).
    arch=dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24]),
    drop_path_rate=0.3,  # as mmdet's Swin-T Mask2Former
    out_indices=(0, 1, 2, 3),
    # SyncBN for the stem and LCM BatchNorms: synchronised under distributed training, plain BN otherwise.
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    init_cfg=dict(type='Pretrained', checkpoint=l2vit_pretrained, prefix='backbone.'))
