# The Cascade Mask R-CNN + L2ViT-T 3x recipe with automatic mixed precision (needs a CUDA GPU), as mmdet's ConvNeXt
# recipe trains; the default config stays in fp32 like the authors' trainings.
_base_ = './cascade-mask-rcnn_l2vit-t_fpn_4conv1fc-giou_ms-crop-3x_coco.py'

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
