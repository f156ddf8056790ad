# Supervised fine-tuning of GroupViT (GCC + YFCC) with mmseg's
# MultiLevelNeck + UPerHead (and an FCN auxiliary head) on PASCAL VOC 2012
# + SBD augmented labels, 4 GPUs x 4 images, 20k iterations.
_base_ = [
    './_base_/models/upernet_groupvit-gcc-yfcc_mln.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py', './_base_/schedules/adamw_20k.py'
]
