# L2ViT's parameters for the recipes that train the backbone at 0.1x lr with no weight decay on norms and embeddings
# (mmdet's and mmseg's Swin configs for DINO and Mask2Former). Inherit it beside the library's base, then:
#   optim_wrapper = dict(paramwise_cfg=dict(custom_keys={{_base_.l2vit_custom_keys}}))
# Swin's keys (patch_embed, blocks.N.norm, relative_position_bias_table) match nothing in L2ViT, and mmengine's
# norm_decay_mult does not reach parameters a custom key matches ('backbone' matches them all), so every norm is
# named: the stem's BatchNorms, the downsampling and output LayerNorms, each block's LayerNorms (norm1-norm3) and LCM
# BatchNorm, and the linear attention's temperature (L2ViT has no position embeddings). Keys are substrings of
# parameter names, the longest that matches wins; the block keys cover the deepest arch (S and B: 2, 2, 18, 2
# blocks), and those of blocks a smaller arch lacks match nothing.
l2vit_no_decay = dict(lr_mult=0.1, decay_mult=0.0)
l2vit_custom_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'backbone.norm': l2vit_no_decay,  # the output norms norm0-norm3
    'backbone.downsample_layers.0.proj.proj.1': l2vit_no_decay,  # the stem's two BatchNorms
    'backbone.downsample_layers.0.proj.proj.4': l2vit_no_decay,
    'local_mp.bn': l2vit_no_decay,  # the LCM BatchNorms
    'attn.temperature': l2vit_no_decay,
}
l2vit_custom_keys.update({f'backbone.downsample_layers.{i}.norm': l2vit_no_decay for i in range(4)})
l2vit_custom_keys.update({f'backbone.stages.{i}.{j}.norm': l2vit_no_decay
                          for i, depth in enumerate((2, 2, 18, 2)) for j in range(depth)})
