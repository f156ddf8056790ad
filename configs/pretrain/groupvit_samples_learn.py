# The smoke trial run longer, to see pretraining learn on this machine: 100
# epochs of the 39 shipped photos and their captions (300 steps of 13),
# validated on the 25 VOC sample photos before training and every 20
# epochs; docs/pretrain.md shows its curves. On 39 photos the paper's
# augmentation (crops down to 8% of the photo, RandAugment, erasing) leaves
# too little to learn from in a few hundred steps, so this run crops
# mildly, and its learning rate is the paper's for a batch of 4096 divided
# by about 3, not by 315 as the linear rule would. The validation photos are
# among the training photos: this shows that the model learns to segment
# what it was told about, not that it generalises.
_base_ = ['./groupvit_samples_smoke.py']

# The smoke trial's pipeline without RandAugment and erasing, cropping
# mildly.
train_dataloader = dict(
    batch_size=13,
    dataset=dict(pipeline=[
        _base_.train_pipeline[0],
        dict(_base_.train_pipeline[1], crop_ratio_range=(0.35, 1.0)),
        _base_.train_pipeline[2],
        *_base_.train_pipeline[-2:],
    ]))
max_epochs = 100
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=4e-6 / 1.6e-3,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min_ratio=4e-5 / 1.6e-3,
        T_max=max_epochs - 5,
        by_epoch=True,
        begin=5,
        end=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=20)
val_dataloader = dict(dataset=dict(indices=None))
test_dataloader = val_dataloader
default_hooks = dict(
    logger=dict(interval=3), checkpoint=dict(interval=20, max_keep_ckpts=1))
custom_hooks = [
    dict(type='PretrainDataCheckHook'),
    dict(type='GroupViTArchHook'),
    dict(type='ValidateFirstHook'),
]
