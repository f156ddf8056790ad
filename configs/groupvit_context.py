# GroupViT zero-shot on PASCAL Context val: 60 classes with background, the
# paper's protocol (mIoU 22.4 with GCC+YFCC).
_base_ = [
    './_base_/models/groupvit_gcc-yfcc.py',
    './_base_/datasets/pascal_context.py', './_base_/default_runtime.py'
]

model = dict(
    text_encoder=dict(dataset_name='context'),
    decode_head=dict(with_bg=True),
    test_cfg=dict(bg_thresh=0.35))
