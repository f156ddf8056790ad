# GroupViT pretrained on GCC3M + GCC12M + RedCaps12M (NVlabs
# group_vit_gcc_redcap_30e.yml), 30 epochs at a total batch of 4096.
_base_ = ['./_base_/groupvit_pretrain.py']

datasets = {{_base_.datasets}}
train_dataloader = dict(
    dataset=dict(datasets=[
        datasets['gcc3m'], datasets['gcc12m'], datasets['redcap12m']
    ]))
