# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The DDP wrapper of :class:`GroupViTPretrainer`.

mmengine's ``MMDistributedDataParallel.train_step`` runs its own update and
never calls the model's ``train_step``; this wrapper hands the step to the
model, which checks losses and gradients before they are used, running
the forward pass through the wrapper so that DDP's gradient hooks fire.
"""
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class PretrainerDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` whose ``train_step`` is the wrapped
    :class:`GroupViTPretrainer`'s."""

    def train_step(self, data, optim_wrapper):
        return self.module.train_step(data, optim_wrapper, wrapper=self)
