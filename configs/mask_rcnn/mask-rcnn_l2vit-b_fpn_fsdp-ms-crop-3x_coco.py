# The Mask R-CNN + L2ViT-B 3x recipe, trained with parameters, gradients and optimizer states sharded across the
# GPUs (FSDP) instead of replicated (DDP): for larger batches or images than fit one GPU with DDP.
_base_ = ['./mask-rcnn_l2vit-b_fpn_ms-crop-3x_coco.py', '../_strategies/fsdp.py']
