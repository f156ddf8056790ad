# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Zero-shot GroupViT with mmseg heads trained on its dense features."""
from typing import List, Union

import torch
import torch.nn.functional as F
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from torch import Tensor

from .groupvit_encoder_decoder import GroupViTEncoderDecoder

_AUX_PREFIX = 'auxiliary_head.'


def _keep_unloaded_aux_heads(module, incompatible_keys) -> None:
    """Do not report auxiliary-head keys when all are missing (a zero-shot
    checkpoint)."""
    missing = incompatible_keys.missing_keys
    # Parameters only: BatchNorm fills a missing num_batches_tracked itself.
    aux = [
        _AUX_PREFIX + k for k, _ in module.auxiliary_head.named_parameters()
    ]
    if aux and set(aux) <= set(missing):
        missing[:] = [k for k in missing if not k.startswith(_AUX_PREFIX)]


@MODELS.register_module()
class GroupViTAuxEncoderDecoder(GroupViTEncoderDecoder):
    """:class:`GroupViTEncoderDecoder` plus auxiliary mmseg heads on the
    backbone's dense maps.

    Prediction is the parent's zero-shot path; training fits the auxiliary
    heads and, through them, the image encoder (which needs ``out_indices``
    and ``with_zero_shot=True``); the zero-shot head stays frozen.

    Args:
        auxiliary_head (dict | list[dict]): mmseg decode head(s) reading
            the dense maps (``in_index`` counts within ``out_indices``).
        contrastive_loss_weight (float): Weight of the experimental
            contrastive loss of the image embedding and the labels' classes
            (0: off). Defaults to 0.
        **kwargs: Passed to :class:`GroupViTEncoderDecoder`.
    """

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 decode_head: dict,
                 auxiliary_head: Union[dict, List[dict]],
                 contrastive_loss_weight: float = 0.,
                 **kwargs):
        super().__init__(image_encoder, text_encoder, decode_head, **kwargs)
        if getattr(self.image_encoder, 'out_indices', None) is None or \
                not getattr(self.image_encoder, 'with_zero_shot', False):
            raise ValueError(
                'GroupViTAuxEncoderDecoder needs the dense maps and the '
                'zero-shot outputs: build the image encoder with '
                'out_indices=(0, 1, 2) and with_zero_shot=True.')
        if auxiliary_head is None:
            raise ValueError(
                'GroupViTAuxEncoderDecoder needs auxiliary_head (an mmseg '
                'decode head config, e.g. dict(type=\'FCNHead\', ...)); '
                'without one use GroupViTEncoderDecoder.')
        self._init_auxiliary_head(auxiliary_head)
        self.register_load_state_dict_post_hook(_keep_unloaded_aux_heads)
        self.contrastive_loss_weight = contrastive_loss_weight
        # The zero-shot head has no loss: nothing in it is trained.
        self.decode_head.requires_grad_(False)

    _init_auxiliary_head = EncoderDecoder._init_auxiliary_head
    _auxiliary_head_forward_train = \
        EncoderDecoder._auxiliary_head_forward_train

    def check_checkpoint(self, state_dict: dict) -> None:
        """Check strictly; without auxiliary-head weights, the zero-shot
        parts only."""
        own = self.state_dict()
        aux = {k: v for k, v in own.items() if k.startswith(_AUX_PREFIX)}
        if not any(k in state_dict for k in aux):
            state_dict = {**state_dict, **aux}
        super().check_checkpoint(state_dict)

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        """``aux.*`` (``aux_{i}.*`` for a list of heads) and
        ``loss_contrastive`` of images ``[B, 3, H, W]`` and their labels."""
        feats = self.image_encoder(inputs)
        losses = self._auxiliary_head_forward_train(feats['dense'],
                                                    data_samples)
        if self.contrastive_loss_weight > 0:
            losses.update(
                self._contrastive_loss(feats['image_embeds'], data_samples))
        return losses

    def _contrastive_loss(self, image_embeds: Tensor,
                          data_samples: list) -> dict:
        """Multi-label contrastive loss of ``s * norm(image_embeds) @
        class_embeds^T`` ``[B, K]``: the mean of the cross-entropies over
        classes and over images, uniform over the present ones."""
        class_embeds = self.text_encoder().to(image_embeds)
        logits = F.normalize(image_embeds, dim=-1) @ class_embeds.t()
        logits = logits * self.decode_head.temperature.detach()
        num_classes = class_embeds.shape[0]
        # Vocabulary class k is label k + 1 with background at 0, else k.
        offset = int(getattr(self.decode_head, 'with_bg', False))
        present = torch.zeros(len(data_samples), num_classes)
        for i, sample in enumerate(data_samples):
            labels = sample.gt_sem_seg.data.unique().cpu() - offset
            labels = labels[(labels >= 0) & (labels < num_classes)]
            present[i, labels] = 1
        present = present.to(logits)
        terms = []
        for dim in (1, 0):
            log_probs = logits.log_softmax(dim=dim)
            count = present.sum(dim=dim)
            keep = count > 0
            if keep.any():
                loss = -(present * log_probs).sum(dim=dim)[keep] / count[keep]
                terms.append(loss.mean())
        loss = sum(terms) / 2 if terms else logits.sum() * 0
        return dict(loss_contrastive=loss * self.contrastive_loss_weight)
