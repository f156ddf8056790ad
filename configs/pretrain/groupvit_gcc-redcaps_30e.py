# GroupViT pretrained on GCC3M + GCC12M + RedCaps12M (NVlabs
# group_vit_gcc_redcap_30e.yml), 30 epochs at a total batch of 4096.
_base_ = ['./_base_/groupvit_pretrain.py']

train_dataloader = dict(dataset=dict(datasets={{_base_.gcc_redcaps}}))
