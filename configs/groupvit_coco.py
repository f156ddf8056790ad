# GroupViT zero-shot on COCO-Object val2017: 81 classes with background, the
# paper's protocol (mIoU 24.3 with GCC+YFCC).
_base_ = [
    './_base_/models/groupvit_gcc-yfcc.py', './_base_/datasets/coco_object.py',
    './_base_/default_runtime.py'
]

model = dict(
    text_encoder=dict(dataset_name='coco_object'),
    decode_head=dict(with_bg=True),
    test_cfg=dict(bg_thresh=0.95))
