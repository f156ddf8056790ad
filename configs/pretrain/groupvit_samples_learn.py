# The smoke trial run longer, to see pretraining learn on this machine: 60
# epochs of the 39 shipped photos and their captions (240 steps of 8, about
# 10 minutes on 2 CPU cores), validated on the 25 VOC sample photos before
# training and every 10 epochs. docs/pretrain.md shows its curves. The
# validation photos are among the training photos: this shows that the
# model learns to segment what it was told about, not that it generalises.
_base_ = ['./groupvit_samples_smoke.py']

max_epochs = 60
param_scheduler = [
    dict(type='LinearLR', start_factor=4e-6 / 1.6e-3, by_epoch=True,
         begin=0, end=2, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=4e-5 / 1.6e-3,
         T_max=max_epochs - 2, by_epoch=True, begin=2, end=max_epochs,
         convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
val_dataloader = dict(dataset=dict(indices=None))
test_dataloader = val_dataloader
default_hooks = dict(
    logger=dict(interval=4),
    checkpoint=dict(interval=10, max_keep_ckpts=1))
custom_hooks = [
    dict(type='PretrainDataCheckHook'),
    dict(type='GroupViTArchHook'),
    dict(type='ValidateFirstHook'),
]
