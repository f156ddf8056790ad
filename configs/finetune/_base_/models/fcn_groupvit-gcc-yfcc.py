# GroupViT image encoder (GCC + YFCC) under mmseg's FCNHead for supervised
# fine-tuning. The FCN reads the three dense maps of the encoder (stage 1
# patch tokens, stages 2 and 3 group tokens spread back to the patches, all
# at 1/16), concatenated. Pretrained weights: the published NVlabs release
# (downloaded once, verified and converted when loaded), into the backbone
# through init_cfg.
custom_imports = dict(imports=['mmseg_groupvit'], allow_failed_imports=False)

pretrained = ('https://github.com/xvjiarui/GroupViT/releases/download/v1.0.0/'
              'group_vit_gcc_yfcc_30e-879422e0.pth')
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # ImageNet statistics, RGB, as GroupViT was trained.
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512),
    # Whole-image testing: pad to a multiple of the patch size.
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
    decode_head=dict(
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
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
