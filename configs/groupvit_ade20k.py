# GroupViT zero-shot on ADE20K val, 150 classes.
_base_ = [
    './_base_/models/groupvit_gcc-yfcc.py', './_base_/datasets/ade20k.py',
    './_base_/default_runtime.py'
]

model = dict(
    text_encoder=dict(dataset_name='ade20k'), decode_head=dict(with_bg=False))
