# GroupViT zero-shot on Cityscapes val, 19 classes.
_base_ = [
    './_base_/models/groupvit_gcc-yfcc.py', './_base_/datasets/cityscapes.py',
    './_base_/default_runtime.py'
]

model = dict(
    text_encoder=dict(dataset_name='cityscapes'),
    decode_head=dict(with_bg=False))
# The published GCC+YFCC weights, downloaded once into torch hub's cache and
# verified (docs/weights.md); tools/test.py's CHECKPOINT replaces them.
load_from = ('https://github.com/xvjiarui/GroupViT/releases/download/v1.0.0/'
             'group_vit_gcc_yfcc_30e-879422e0.pth')
