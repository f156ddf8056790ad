# GroupViT zero-shot on COCO-Stuff-164k val2017, 171 classes.
_base_ = [
    './_base_/models/groupvit_gcc-yfcc.py',
    './_base_/datasets/coco_stuff171.py', './_base_/default_runtime.py'
]

model = dict(
    text_encoder=dict(dataset_name='coco_stuff'),
    decode_head=dict(with_bg=False))
