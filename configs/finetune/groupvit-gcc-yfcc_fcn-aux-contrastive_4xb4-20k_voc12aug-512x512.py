# EXPERIMENTAL: the FCN-auxiliary setup plus GroupViT's multi-label
# image-text contrastive loss, with the prompts of the classes present in
# each crop as the texts (VOC has no captions). It trains the projector too
# (the text encoder stays frozen). The weight is not tuned.
_base_ = ['./groupvit-gcc-yfcc_fcn-aux_4xb4-20k_voc12aug-512x512.py']

model = dict(
    contrastive_loss_weight=0.1, image_encoder=dict(freeze_projector=False))
