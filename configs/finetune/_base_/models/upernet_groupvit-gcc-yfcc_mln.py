# GroupViT image encoder (GCC + YFCC) with mmseg's MultiLevelNeck and
# UPerHead, as mmseg pairs plain ViTs with UPerNet. The three dense maps
# (all at 1/16) become a 1/4, 1/8, 1/16 pyramid; an FCN auxiliary head reads
# the last level. The encoder and its pretrained weights are the FCN base's.
_base_ = ['./fcn_groupvit-gcc-yfcc.py']

norm_cfg = _base_.norm_cfg
model = dict(
    neck=dict(
        type='MultiLevelNeck',
        in_channels=[384, 384, 384],
        out_channels=384,
        scales=[4, 2, 1]),
    decode_head=dict(
        _delete_=True,
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
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))
