# GroupViT zero-shot on PASCAL VOC 2012 val without background (VOC20):
# background pixels are ignored; every pixel gets one of the 20 classes.
_base_ = [
    './_base_/models/groupvit_gcc-yfcc.py',
    './_base_/datasets/pascal_voc20.py', './_base_/default_runtime.py'
]

model = dict(
    text_encoder=dict(dataset_name='voc20'), decode_head=dict(with_bg=False))
