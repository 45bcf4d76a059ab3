# Mask2Former + L2ViT-T on ADE20K (semantic), 512x512 crops, 160k iterations: mmseg's own Mask2Former ADE20K recipe
# (its R-50 512x512 config: heads, pipeline, AdamW 1e-4 with weight decay 0.05, gradient clipping 0.01, poly decay)
# with the optimizer settings of mmseg's Swin Mask2Former configs (backbone lr x0.1, no weight decay on the
# backbone's norms and on the head's query/level embeddings), restated for L2ViT's parameter names. The Mask2Former
# head is built from mmdet's components: mmdet must be installed (pip install "mmdet>=3.3.0,<3.4").
# - num_classes: the base sets it in two places; change both, e.g. for 20 classes:
#     model = dict(decode_head=dict(num_classes=20, loss_cls=dict(class_weight=[1.0] * 20 + [0.1])))
# - crop_size: a child's `crop_size = (h, w)` does not reach the base's data preprocessor or RandomCrop (mmengine
#   evaluates the base once); restate both: model.data_preprocessor.size and the train pipeline's RandomCrop.
_base_ = [
    'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py', '../_base_/l2vit_hooks.py',
    '../_base_/l2vit_no_decay.py'
]
# mmdet's heads (the base's import) and L2ViT (ours).
custom_imports = dict(imports=['mmdet.models', 'mmseg_l2vit'], allow_failed_imports=False)
# Our hooks: see ../_base_/l2vit_hooks.py.
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))

checkpoint_file = ('https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'
                   'L2ViT-Tiny-checkpoint-best-ema.pth')
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

# The Swin configs' optimizer: backbone lr x0.1, no weight decay on its norms and the attention temperature, for
# L2ViT's names (../_base_/l2vit_no_decay.py); the base's keys (query_embed, query_feat, level_embed: no decay) stay.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={{_base_.l2vit_custom_keys}}))
