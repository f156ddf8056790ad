# GroupViT pretraining from image-caption pairs, the paper's recipe (NVlabs
# configs/default.yml + group_vit_gcc_yfcc_30e.yml), validated by VOC
# zero-shot mIoU (and ImageNet top-1 when its data is there) every epoch.
# See docs/pretrain.md.
_base_ = [
    '../../_base_/models/groupvit_gcc-yfcc.py',
    '../../_base_/datasets/pascal_voc12.py', '../../_base_/default_runtime.py'
]
custom_imports = dict(
    imports=[
        'mmseg_groupvit', 'mmseg_groupvit.datasets.pretraining.augmentation',
        'mmseg_groupvit.engine'
    ],
    allow_failed_imports=False)

# Its checkpoints are evaluated by tools/test.py configs/groupvit_voc.py.
model = dict(
    type='GroupViTPretrainer',
    data_preprocessor=dict(size=(224, 224)),
    image_encoder=dict(drop_path_rate=0.1, gumbel=True, gumbel_tau=1.0),
    text_encoder=dict(frozen=False, dataset_name='voc'),
    decode_head=dict(with_bg=True),
    multi_label=3,
    contrast_temperature=0.07,
    on_nonfinite='skip',
    test_cfg=dict(bg_thresh=0.95))
# As the original's convert_sync_batchnorm (BN on CPU-only machines).
sync_bn = 'torch'
model_wrapper_cfg = dict(
    type='PretrainerDistributedDataParallel',
    broadcast_buffers=False,
    find_unused_parameters=False)

# timm's DeiT augmentation, from mmpretrain (no colour jitter with
# RandAugment, as timm).
bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
multi_label = 3
train_transforms = [
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.08, 1.0),
        interpolation='bilinear',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(
            pad_val=[round(x) for x in bgr_mean], interpolation='bilinear')),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std),
    dict(
        type='CaptionTokenize',
        multi_label=multi_label,
        templates='full',
        tagger='nltk'),
    dict(type='PackCaptionInputs'),
]
local_data = 'local_data'
datasets = dict(
    gcc3m=dict(
        path=f'{local_data}/gcc3m_shards',
        prefix='gcc-train-{000000..00436}.tar',
        length=2891445),
    gcc12m=dict(
        path=f'{local_data}/gcc12m_shards',
        prefix='gcc-conceptual-12m-{000000..001943}.tar',
        length=11156203),
    yfcc14m=dict(
        path=f'{local_data}/yfcc14m_shards',
        prefix='yfcc14m-{000000..001888}.tar',
        length=14615499),
    redcap12m=dict(
        path=f'{local_data}/redcap12m_shards',
        prefix='redcap12m-{000000..001211}.tar',
        length=11866987))
gcc_yfcc = [datasets['gcc3m'], datasets['gcc12m'], datasets['yfcc14m']]
gcc_redcaps = [datasets['gcc3m'], datasets['gcc12m'], datasets['redcap12m']]
train_dataloader = dict(
    batch_size=256,
    num_workers=6,
    persistent_workers=True,
    pin_memory=True,
    sampler=None,
    dataset=dict(
        type='CaptionShards',
        datasets=gcc_yfcc,
        shuffle_buffer=10000,
        pipeline=train_transforms))
val_dataloader = {{_base_.test_dataloader}}
val_evaluator = dict(type='CheckedIoUMetric', iou_metrics=['mIoU'])
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# Schedule.
max_epochs = 30
warmup_epochs = 2
base_lr = 1.6e-3
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW',
        lr=base_lr,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.05),
    # No decay on 1-D tensors only, as the original.
    paramwise_cfg=dict(flat_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=4e-6 / base_lr,
        end_factor=1.0,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min_ratio=4e-5 / base_lr,
        T_max=max_epochs - warmup_epochs,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
# The lr scales with the total batch (the paper's: 256 x 16 GPUs).
auto_scale_lr = dict(enable=True, base_batch_size=4096)
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
# ImageNet zero-shot top-1/top-5 too (imagenet/...) when data_root exists.
val_cfg = dict(
    type='ZeroShotValLoop',
    classification=dict(
        config='{{fileDirname}}/../../classification/groupvit_imagenet.py',
        data_root='data/imagenet'))
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=True,
        interval=1,
        save_best='mIoU',
        rule='greater',
        max_keep_ckpts=3))
custom_hooks = [
    dict(type='PretrainDataCheckHook'),
    dict(type='GroupViTArchHook'),
]
load_from = None
randomness = dict(seed=0, diff_rank_seed=True)
