# L2ViT for mmdet's Mask2Former (instance and panoptic): the backbone, and the Swin recipe's optimizer rules restated
# for L2ViT's parameter names, with our hooks (../../_base_/l2vit_hooks.py). It defines only names that mmdet's
# bases lack, so that a root config inherits it beside mmdet's own config and uses them:
# model.backbone={{_base_.l2vit_backbone}} and optim_wrapper.paramwise_cfg.custom_keys={{_base_.l2vit_custom_keys}}.
_base_ = ['../../_base_/l2vit_hooks.py']

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

# The Swin recipe's rules: the backbone at 0.1x lr; no weight decay on its norms (the stem's BatchNorms, the
# downsampling and output LayerNorms, each block's LayerNorms and LCM BatchNorm), on the attention temperature
# (L2ViT's only embedding-like parameter; it has no position embeddings) and on the head's query and level
# embeddings. Swin's keys (patch_embed, blocks.N.norm, relative_position_bias_table) match nothing in L2ViT, and
# mmengine's custom keys take precedence over norm_decay_mult, so every norm is named.
l2vit_norm_multi = dict(lr_mult=0.1, decay_mult=0.0)
l2vit_custom_keys = {
    '_delete_': True,  # replaces the Swin keys
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'backbone.downsample_layers.0.proj.proj.1': l2vit_norm_multi,  # the stem's BatchNorms
    'backbone.downsample_layers.0.proj.proj.4': l2vit_norm_multi,
    'backbone.norm': l2vit_norm_multi,  # the output norms norm0-norm3
    'query_embed': dict(lr_mult=1.0, decay_mult=0.0),
    'query_feat': dict(lr_mult=1.0, decay_mult=0.0),
    'level_embed': dict(lr_mult=1.0, decay_mult=0.0),
}
l2vit_custom_keys.update({f'backbone.downsample_layers.{stage}.norm': l2vit_norm_multi for stage in range(4)})
# Per block: norm1-norm3, the LCM BatchNorm and the temperature, for the deepest arch (S and B: 2, 2, 18, 2 blocks;
# the keys of blocks that T lacks match nothing).
l2vit_custom_keys.update({
    f'backbone.stages.{stage}.{block}.{name}': l2vit_norm_multi
    for stage, num_blocks in enumerate([2, 2, 18, 2]) for block in range(num_blocks)
    for name in ('norm', 'local_mp.bn', 'attn.temperature')
})
