# The paper's main model: GroupViT pretrained on GCC3M + GCC12M + YFCC14M
# (NVlabs group_vit_gcc_yfcc_30e.yml), 30 epochs at a total batch of 4096.
# 16 GPUs (2 nodes x 8), 256 images each; see docs/pretrain.md:
#   tools/dist_train.sh configs/pretrain/groupvit_gcc-yfcc_30e.py 8 ...
_base_ = ['./_base_/groupvit_pretrain.py']
