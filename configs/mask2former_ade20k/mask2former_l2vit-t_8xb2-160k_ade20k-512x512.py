# Mask2Former + L2ViT-T on ADE20K (semantic), 512x512 crops, 160k iterations: mmseg's own Mask2Former ADE20K recipe
# (its R-50 512x512 config: heads, pipeline, AdamW 1e-4 with weight decay 0.05, gradient clipping 0.01, poly decay)
# with the optimizer settings of mmseg's Swin Mask2Former configs (backbone lr x0.1, no weight decay on the
# backbone's norms and on the head's query/level embeddings), restated for L2ViT's parameter names. The Mask2Former
# head is built from mmdet's components: mmdet must be installed (pip install "mmdet>=3.3.0,<3.4").
# - num_classes: the base sets it in two places; change both, e.g. for 20 classes:
#     model = dict(decode_head=dict(num_classes=20, loss_cls=dict(class_weight=[1.0] * 20 + [0.1])))
# - crop_size: a child's `crop_size = (h, w)` does not reach the base's data preprocessor or RandomCrop (mmengine
#   evaluates the base once); restate both: model.data_preprocessor.size and the train pipeline's RandomCrop.
_base_ = ['mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py', '../_base_/l2vit_hooks.py']
# mmdet's heads (the base's import) and L2ViT (ours).
custom_imports = dict(imports=['mmdet.models', 'mmseg_l2vit'], allow_failed_imports=False)
# Our hooks: see ../_base_/l2vit_hooks.py.
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))

checkpoint_file = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
                   'L2ViT-Tiny-checkpoint-best-ema.pth')
depths = [2, 2, 6, 2]  # L2ViT-T's blocks per stage, for the no-decay keys below
model = dict(
    backbone=dict(
        _delete_=True,
        type='L2ViT',
        arch='tiny',
        drop_path_rate=0.3,  # as mmseg's Swin-T Mask2Former config
        out_indices=(0, 1, 2, 3),
        # SyncBN for the stem and LCM BatchNorms: synchronised under distributed training, plain BN otherwise.
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file, prefix='backbone.')),
    decode_head=dict(in_channels=[96, 192, 384, 768]))

# The Swin configs' optimizer: backbone lr x0.1; no weight decay on its norms (mmengine's norm_decay_mult does not
# reach parameters that a custom key matches, and 'backbone' matches them all, so each is named): the stem's
# BatchNorms and the downsampling LayerNorms, the blocks' LayerNorms (norm1-norm3), the LCM BatchNorms, the output
# norms (norm0-norm3), and the linear attention's temperature. The base's keys (query_embed, query_feat,
# level_embed: no decay) are kept.
backbone_no_decay = dict(lr_mult=0.1, decay_mult=0.0)
custom_keys = {
    'backbone.norm': backbone_no_decay,
    'attn.temperature': backbone_no_decay,
    'local_mp.bn': backbone_no_decay,
    'backbone.downsample_layers.0.proj.proj.1.': backbone_no_decay,
    'backbone.downsample_layers.0.proj.proj.4.': backbone_no_decay,
}
custom_keys.update({f'backbone.downsample_layers.{stage}.norm': backbone_no_decay for stage in range(4)})
custom_keys.update({
    f'backbone.stages.{stage}.{block}.norm': backbone_no_decay
    for stage, num_blocks in enumerate(depths) for block in range(num_blocks)
})
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=custom_keys))
