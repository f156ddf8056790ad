# GroupViT zero-shot on PASCAL Context val without background (Context59).
_base_ = [
    './_base_/models/groupvit_gcc-yfcc.py',
    './_base_/datasets/pascal_context59.py', './_base_/default_runtime.py'
]

model = dict(
    text_encoder=dict(dataset_name='context59'),
    decode_head=dict(with_bg=False))
