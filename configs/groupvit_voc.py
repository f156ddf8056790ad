# GroupViT zero-shot on PASCAL VOC 2012 val: 21 classes with background, the
# paper's protocol (VOC mIoU 52.3 with GCC+YFCC). Prompt names are the
# original's (table, plant, monitor); the dataset keeps mmseg's names.
_base_ = [
    './_base_/models/groupvit_gcc-yfcc.py',
    './_base_/datasets/pascal_voc12.py', './_base_/default_runtime.py'
]

model = dict(
    text_encoder=dict(dataset_name='voc'),
    decode_head=dict(with_bg=True),
    test_cfg=dict(bg_thresh=0.95))
