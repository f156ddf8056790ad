# Supervised fine-tuning of GroupViT (GCC + YFCC) with mmseg's FCNHead on
# PASCAL VOC 2012 + SBD augmented labels (mmseg's voc12aug layout), 4 GPUs x
# 4 images, 20k iterations.
_base_ = [
    './_base_/models/fcn_groupvit-gcc-yfcc.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py', './_base_/schedules/adamw_20k.py'
]
