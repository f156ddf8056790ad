# GroupViT trained on GCC + RedCaps (NVlabs group_vit_gcc_redcap_30e-3dd09a76
# .pth or nvidia/groupvit-gcc-redcaps): same architecture as GCC + YFCC,
# other weights.
_base_ = ['./groupvit_gcc-yfcc.py']
