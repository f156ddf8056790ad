# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Segmentor wiring for GroupViT on top of mmseg's
``MultimodalEncoderDecoder``."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg.models.segmentors import MultimodalEncoderDecoder
from mmseg.registry import MODELS
from ...weights import check_state_dict


@MODELS.register_module()
class GroupViTEncoderDecoder(MultimodalEncoderDecoder):
    """GroupViT segmentor: mmseg's ``MultimodalEncoderDecoder`` with the
    defaults and the few fixes GroupViT needs.

    ::

        predict(inputs, data_samples)
         └─ inference ─ slide_inference / whole_inference
             └─ encode_decode(window)
                 ├─ text_encoder()           -> class embeds [K, D] (cached)
                 ├─ image_encoder(window)    -> GroupViT feats (dict)
                 └─ decode_head.predict([window, feats, class embeds],
                                        metas, test_cfg)
                                            -> [B, num_classes, h, w]
         └─ postprocess_result -> resize to the original size, argmax

    Differences from the parent:

    - ``asymetric_input`` defaults to False (GroupViT sees the window at its
      own resolution);
    - ``_forward`` (``mode='tensor'``) runs the whole zero-shot path, since
      the head needs the images and class embeddings, not just the backbone
      output (the parent calls ``decode_head.forward(x)``);
    - :meth:`contrastive` gives image and text embeddings,
      ``logits_per_image`` / ``logits_per_text`` and the symmetric
      contrastive loss, as transformers' ``GroupViTModel`` does.

    Args:
        image_encoder (dict): :class:`GroupViT` config.
        text_encoder (dict): :class:`GroupViTTextEncoder` config.
        decode_head (dict): :class:`GroupViTHead` config (or another head).
        asymetric_input (bool): See the parent. Defaults to False.
        **kwargs: Passed to ``MultimodalEncoderDecoder``.
    """

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 decode_head: dict,
                 asymetric_input: bool = False,
                 **kwargs):
        super().__init__(
            image_encoder=image_encoder,
            text_encoder=text_encoder,
            decode_head=decode_head,
            asymetric_input=asymetric_input,
            **kwargs)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Refuse checkpoints whose keys or shapes differ from the model.

        mmengine loads checkpoints non-strictly and only logs mismatches,
        which would leave random weights in place silently. The root call
        sees the whole state dict, so the check is done once, here, and
        names the differing architecture fields.
        """
        if prefix == '':
            check_state_dict(self, state_dict)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _forward(self, inputs: Tensor, data_samples=None) -> Tensor:
        """Zero-shot scores at input resolution ``[B, num_classes, H, W]``
        (no post-processing)."""
        batch_img_metas = [
            dict(img_shape=inputs.shape[2:], pad_shape=inputs.shape[2:])
        ] * inputs.shape[0]
        return self.encode_decode(inputs, batch_img_metas)

    def set_vocabulary(self,
                       vocabulary,
                       templates: Optional[Union[str, Sequence[str]]] = None
                       ) -> None:
        """Change the classes of a built model without rebuilding it.

        Updates the text encoder (its cache is dropped) and the head's class
        count (plus background when the head has one).

        Args:
            vocabulary: Names, synonym lists or a vocabulary file; see
                :class:`GroupViTTextEncoder`.
            templates: Template set name or list; unchanged when None.
        """
        self.text_encoder.set_vocabulary(vocabulary, templates)
        num_classes = len(self.text_encoder.classes) + int(
            getattr(self.decode_head, 'with_bg', False))
        self.decode_head.num_classes = num_classes
        self.decode_head.out_channels = num_classes
        self.num_classes = self.out_channels = num_classes

    def contrastive(self,
                    images: Tensor,
                    texts: Union[List[str], Tensor],
                    return_loss: bool = True) -> dict:
        """Image-text matching as in CLIP / transformers' ``GroupViTModel``.

        The temperature is ``exp(logit_scale)`` without the clamp of the
        segmentation head, as in transformers (the original clamps it to 100
        in its training loss).

        Args:
            images (Tensor): Normalised images ``[B_img, 3, H, W]``.
            texts (list[str] | Tensor): Raw strings (no template) or token
                ids ``[B_txt, L]``.
            return_loss (bool): Add the symmetric cross-entropy loss (needs
                ``B_img == B_txt``, pairs on the diagonal).

        Returns:
            dict: ``image_embeds`` ``[B_img, D]`` and ``text_embeds``
            ``[B_txt, D]`` (normalised), ``logits_per_image``
            ``[B_img, B_txt]``, ``logits_per_text`` ``[B_txt, B_img]`` and
            ``loss``.
        """
        feats = self.image_encoder(images)
        if isinstance(texts, Tensor):
            text_embeds = self.text_encoder.encode_tokens(texts)
        else:
            text_embeds = self.text_encoder.encode_text(list(texts))
        image_embeds = F.normalize(feats['image_embeds'], dim=-1)
        text_embeds = F.normalize(text_embeds, dim=-1)
        logits_per_text = text_embeds @ image_embeds.t() * \
            self.decode_head.logit_scale.exp()
        out = dict(
            image_embeds=image_embeds,
            text_embeds=text_embeds,
            logits_per_image=logits_per_text.t(),
            logits_per_text=logits_per_text)
        if return_loss:
            target = torch.arange(len(logits_per_text), device=images.device)
            out['loss'] = (F.cross_entropy(logits_per_text, target) +
                           F.cross_entropy(logits_per_text.t(), target)) / 2
        return out
