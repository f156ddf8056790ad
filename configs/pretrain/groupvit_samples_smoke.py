# A CPU trial of pretraining on the photos shipped in samples/ and their
# captions (samples/captions.jsonl): a small GroupViT from random weights,
# batches of 8, validated by zero-shot mIoU on 10 VOC sample photos (and
# ImageNet top-1 on 10 photos of data/imagenet, if there). It
# checks that pretraining runs on your machine in about a minute; it learns
# little. Run from the repository root:
#   python tools/train.py configs/pretrain/groupvit_samples_smoke.py
# The noun prompts come from the tagger that needs no download (nltk's
# needs its data: see docs/pretrain.md).
_base_ = ['./_base_/groupvit_pretrain.py']

# The small architecture of the reference fixture (a few MB of weights).
model = dict(
    image_encoder=dict(
        hidden_size=128,
        intermediate_size=512,
        depths=[2, 1, 1],
        num_group_tokens=[16, 4, 0],
        num_output_groups=[16, 4],
        num_attention_heads=4,
        projection_dim=64,
        projection_intermediate_dim=1024),
    text_encoder=dict(
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=1,
        projection_dim=64,
        projection_intermediate_dim=1024),
    on_nonfinite='stop',
    test_cfg=dict(mode='slide', crop_size=(224, 224), stride=(224, 224)))
sync_bn = None

# The base's augmentation after loading the image; nouns by the tagger
# that needs no download.
train_pipeline = [dict(type='RobustLoadImageFromFile')] + \
    _base_.train_transforms[:4] + [
        dict(type='CaptionTokenize', multi_label=3, tagger='rules'),
        dict(type='PackCaptionInputs'),
    ]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    drop_last=True,
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='CaptionAnnotationDataset',
        data_root='samples',
        ann_file='captions.jsonl',
        pipeline=train_pipeline))
val_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CheckedResize', scale=(2048, 224), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root='samples/voc2012_sample/VOCdevkit/VOC2012',
        indices=10,
        pipeline=val_pipeline))
test_dataloader = val_dataloader
# With data/imagenet present, ImageNet zero-shot top-1 on its first 10
# images too (otherwise the log says it is skipped).
val_cfg = dict(
    classification=dict(
        dataloader=dict(
            batch_size=10,
            num_workers=0,
            persistent_workers=False,
            dataset=dict(indices=10))))

max_epochs = 8
# The base's optimizer in full precision.
optim_wrapper = dict(
    type='OptimWrapper',
    _delete_=True,
    optimizer=_base_.optim_wrapper.optimizer,
    paramwise_cfg=_base_.optim_wrapper.paramwise_cfg,
    clip_grad=_base_.optim_wrapper.clip_grad)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=4e-6 / 1.6e-3,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min_ratio=4e-5 / 1.6e-3,
        T_max=7,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True)
]
# The paper's lr at its batch of 4096 would be scaled to 3e-6 here: keep it.
auto_scale_lr = dict(enable=False)
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=4, save_best=None, max_keep_ckpts=2))
randomness = dict(seed=0)
