# A quick trial of fine-tuning on the VOC sample shipped in samples/: the
# FCN config, 4 iterations of 2 images (224x224 crops) on the sample's 25
# pairs, then a validation on 5 of them. It checks that training runs on
# your machine (seconds per iteration on a CPU with the released
# architecture); it trains nothing useful. Run from the repository root:
#   python tools/train.py configs/finetune/fcn_groupvit_voc-sample_smoke.py
# Without converted weights, start from random ones:
#   ... --cfg-options model.backbone.init_cfg=None
_base_ = ['./fcn_groupvit-gcc-yfcc_4xb4-20k_voc12aug-512x512.py']

data_root = 'samples/voc2012_sample/VOCdevkit/VOC2012'
crop_size = (224, 224)
voc_sample = dict(
    type='PascalVOCDataset',
    data_root=data_root,
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
    ann_file='ImageSets/Segmentation/val.txt')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(448, 224),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(448, 224), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(voc_sample, pipeline=train_pipeline))
val_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(voc_sample, indices=5, pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(data_preprocessor=dict(size=crop_size))

iters = 4
train_cfg = dict(max_iters=iters, val_interval=iters)
param_scheduler = [
    dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=iters)
]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=iters))
randomness = dict(seed=0)
