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
# The published GCC+YFCC weights, downloaded once into torch hub's cache and
# verified (docs/weights.md); tools/test.py's CHECKPOINT replaces them.
load_from = ('https://github.com/xvjiarui/GroupViT/releases/download/v1.0.0/'
             'group_vit_gcc_yfcc_30e-879422e0.pth')
