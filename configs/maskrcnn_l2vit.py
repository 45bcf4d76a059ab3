# The entry point: Mask R-CNN + FPN + L2ViT-T, COCO 2017 instance segmentation, the authors' 1x recipe.
#   python tools/train.py configs/maskrcnn_l2vit.py
# Needs data/coco/ (annotations/instances_{train,val}2017.json, train2017/, val2017/); the authors' ImageNet weights
# are downloaded from their release on first use. The other sizes and schedules live in configs/mask_rcnn/.
_base_ = './mask_rcnn/mask-rcnn_l2vit-t_fpn_1x_coco.py'
