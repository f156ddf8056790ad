# Copyright (c) mmseg-groupvit contributors. All rights reserved.
from .contrastive_losses import contrastive_loss, multi_label_loss
from .groupvit_pretrainer import (GroupViTPretrainer,
                                  PretrainerDistributedDataParallel)

__all__ = [
    'GroupViTPretrainer', 'PretrainerDistributedDataParallel',
    'contrastive_loss', 'multi_label_loss'
]
