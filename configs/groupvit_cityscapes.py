# GroupViT zero-shot on Cityscapes val, 19 classes.
_base_ = [
    './_base_/models/groupvit_gcc-yfcc.py', './_base_/datasets/cityscapes.py',
    './_base_/default_runtime.py'
]

model = dict(
    text_encoder=dict(dataset_name='cityscapes'),
    decode_head=dict(with_bg=False))
