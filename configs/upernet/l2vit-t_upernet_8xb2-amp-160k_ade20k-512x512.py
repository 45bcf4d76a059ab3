# The UperNet + L2ViT-T ADE20K recipe with automatic mixed precision (needs a CUDA GPU). The authors trained in fp32;
# AMP saves memory and time, and its results may differ slightly from theirs.
_base_ = './l2vit-t_upernet_8xb2-160k_ade20k-512x512.py'

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
