# GroupViT image encoder (GCC + YFCC) with mmseg's MultiLevelNeck and
# UPerHead, as mmseg pairs plain ViTs with UPerNet. The three dense maps
# (all at 1/16) become a 1/4, 1/8, 1/16 pyramid; an FCN auxiliary head reads
# the last level. Pretrained weights: the published NVlabs release
# (downloaded once, verified and converted when loaded), into the backbone
# through init_cfg.
custom_imports = dict(imports=['mmseg_groupvit'], allow_failed_imports=False)

pretrained = ('https://github.com/xvjiarui/GroupViT/releases/download/v1.0.0/'
              'group_vit_gcc_yfcc_30e-879422e0.pth')
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512),
    test_cfg=dict(size_divisor=16))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='GroupViT',
        out_indices=(0, 1, 2),
        with_projector=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained,
            prefix='image_encoder.')),
    neck=dict(
        type='MultiLevelNeck',
        in_channels=[384, 384, 384],
        out_channels=384,
        scales=[4, 2, 1]),
    decode_head=dict(
        type='UPerHead',
        in_channels=[384, 384, 384],
        in_index=[0, 1, 2],
        pool_scales=(1, 2, 3, 6),
        channels=384,
        dropout_ratio=0.1,
        num_classes=21,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=384,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=21,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
