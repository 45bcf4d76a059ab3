# The 3x Mask R-CNN + L2ViT-T recipe with automatic mixed precision (needs a CUDA GPU). The authors trained in fp32;
# AMP saves memory and time, and its results may differ slightly from theirs.
_base_ = './mask-rcnn_l2vit-t_fpn_ms-crop-3x_coco.py'

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
