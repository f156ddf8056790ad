# GroupViT zero-shot ImageNet-1k classification (val, 50 000 images), the
# original protocol: short side 256 (bilinear, PIL as torchvision), center
# crop 224, ImageNet mean/std; the 7 'subset' templates and the original's
# 1000 class names; the projected pooled image feature; plain cosine.
# The paper: top-1 43.7 (GCC + YFCC), 51.6 (GCC + RedCaps): same config,
# the other converted checkpoint.
_base_ = ['../_base_/default_runtime.py']

custom_imports = dict(imports=['mmseg_groupvit'], allow_failed_imports=False)

model = dict(
    type='GroupViTClassifier',
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    image_encoder=dict(type='GroupViT'),
    text_encoder=dict(
        type='GroupViTTextEncoder',
        dataset_name='imagenet',
        templates='subset'))

test_pipeline = [
    # mmcv's LoadImageFromFile (same pixels) that names a bad image file.
    dict(type='RobustLoadImageFromFile', imdecode_backend='pillow'),
    dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs')
]
# Either ImageNet layout: data/imagenet/val/<wnid>/*.JPEG (as below), or
# an annotation file: data_prefix='val', ann_file='meta/val.txt' with
# "ILSVRC2012_val_00000001.JPEG 65" lines.
test_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ImageNet',
        data_root='data/imagenet',
        data_prefix='val',
        ann_file='',
        pipeline=test_pipeline))
test_evaluator = dict(type='Accuracy', topk=(1, 5))
# One log line per 50 batches.
default_hooks = dict(logger=dict(interval=50))
