# GroupViT zero-shot on PASCAL VOC 2012 val without background (VOC20):
# background pixels are ignored; every pixel gets one of the 20 classes.
_base_ = [
    './_base_/models/groupvit_gcc-yfcc.py',
    './_base_/datasets/pascal_voc20.py', './_base_/default_runtime.py'
]

model = dict(
    text_encoder=dict(dataset_name='voc20'), decode_head=dict(with_bg=False))
# The published GCC+YFCC weights, downloaded once into torch hub's cache and
# verified (docs/weights.md); tools/test.py's CHECKPOINT replaces them.
load_from = ('https://github.com/xvjiarui/GroupViT/releases/download/v1.0.0/'
             'group_vit_gcc_yfcc_30e-879422e0.pth')
