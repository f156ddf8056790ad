# The zero-shot GroupViT head and an mmseg head together: an FCNHead on the
# encoder's dense maps is trained on PASCAL VOC 2012 + SBD labels as an
# auxiliary head, and predictions still come from the zero-shot head (the
# paper's protocol: short side 448, 448x448 windows). The text encoder,
# projector and zero-shot head stay frozen. The whole published checkpoint
# (downloaded once, converted when loaded) goes through the segmentor's
# init_cfg (the FCN starts fresh).
_base_ = [
    '../_base_/models/groupvit_gcc-yfcc.py',
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    'mmseg::_base_/default_runtime.py', './_base_/schedules/adamw_20k.py'
]

crop_size = (512, 512)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='GroupViTAuxEncoderDecoder',
    data_preprocessor=dict(size=crop_size),
    init_cfg=dict(
        type='Pretrained',
        checkpoint='https://github.com/xvjiarui/GroupViT/releases/download/'
        'v1.0.0/group_vit_gcc_yfcc_30e-879422e0.pth'),
    image_encoder=dict(
        out_indices=(0, 1, 2), with_zero_shot=True, freeze_projector=True),
    text_encoder=dict(dataset_name='voc'),
    decode_head=dict(with_bg=True),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=[384, 384, 384],
        in_index=[0, 1, 2],
        input_transform='resize_concat',
        channels=384,
        num_convs=2,
        concat_input=True,
        dropout_ratio=0.1,
        num_classes=21,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    test_cfg=dict(bg_thresh=0.95))

# Zero-shot evaluation as in the paper: short side 448, no flip.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
