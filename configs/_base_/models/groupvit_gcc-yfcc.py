# GroupViT trained on GCC + YFCC (the paper's main model; NVlabs
# group_vit_gcc_yfcc_30e-879422e0.pth or nvidia/groupvit-gcc-yfcc), converted
# with tools/convert_weights.py (e.g. to checkpoints/groupvit_gcc-yfcc.pth).
custom_imports = dict(imports=['mmseg_groupvit'], allow_failed_imports=False)

data_preprocessor = dict(
    type='SegDataPreProcessor',
    # ImageNet statistics, RGB, as in the original evaluation.
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='GroupViTEncoderDecoder',
    data_preprocessor=data_preprocessor,
    image_encoder=dict(type='GroupViT'),
    text_encoder=dict(type='GroupViTTextEncoder', templates='simple'),
    decode_head=dict(type='GroupViTHead', with_bg=True),
    test_cfg=dict(
        mode='slide', crop_size=(448, 448), stride=(224, 224), bg_thresh=0.95))
