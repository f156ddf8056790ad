# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The two exportable halves of a GroupViT segmentor.

``ImageSide`` maps one batch of windows (normalised pixels) and the class
embeddings to the window scores; ``TextSide`` maps token ids to projected
text features. Both run the segmentor's own modules, so the exported graphs
compute what :class:`GroupViTEncoderDecoder` computes; the only difference
is that ``TextSide`` encodes every position it is given (the segmentor
crops to the longest prompt first, which is exact under the causal mask;
the runner crops the same way before calling the graph).
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.decode_heads.groupvit_head import chain_assignments, paint_scores

#: Names of the graphs' inputs and outputs, read by the runner.
IMAGE_INPUTS = ('pixels', 'class_embeds', 'bg_thresh')
IMAGE_OUTPUTS = ('scores', 'group_embeds', 'pixel_group', 'assignments')
TEXT_INPUTS = ('tokens', )
TEXT_OUTPUTS = ('text_features', )


class ImageSide(nn.Module):
    """Windows and class embeddings to window scores.

    Args:
        segmentor: A :class:`GroupViTEncoderDecoder` with a
            :class:`GroupViTHead`, in eval mode.

    Inputs of ``forward``:
        pixels ``[B, 3, H, W]`` (normalised, RGB; ``H, W`` the window),
        class_embeds ``[K, D]`` (L2-normalised), bg_thresh ``[]`` (float).

    Outputs:
        scores ``[B, K (+1), H, W]`` (the head's window scores, background
        channel first when the head has one), group_embeds ``[B, G, D]``
        (projected final group tokens), pixel_group ``[B, H, W]`` (int64,
        the final group of every pixel) and assignments ``[B, h*w, G]``
        (patch-to-final-group soft assignment, chained over the stages).
    """

    def __init__(self, segmentor):
        super().__init__()
        self.image_encoder = segmentor.image_encoder
        self.head = segmentor.decode_head

    def forward(self, pixels: Tensor, class_embeds: Tensor, bg_thresh: Tensor):
        feats = self.image_encoder(pixels)
        pixel_group, table = self.head.assign([pixels, feats, class_embeds],
                                              bg_thresh=bg_thresh)
        scores = paint_scores(pixel_group, table)
        return (scores, feats['group_embeds'], pixel_group,
                chain_assignments(feats['soft_assigns']))


class TextSide(nn.Module):
    """Token ids to projected (not normalised) text features.

    Args:
        text_encoder: A :class:`GroupViTTextEncoder`.

    Inputs of ``forward``:
        tokens ``[N, L]`` int64, ``L <= context_length``, each row ending
        with the end-of-text id (the largest id) and zero-padded.

    Outputs:
        text_features ``[N, D]``, what ``encode_tokens`` returns.
    """

    def __init__(self, text_encoder):
        super().__init__()
        self.encoder = text_encoder

    def forward(self, tokens: Tensor) -> Tensor:
        enc = self.encoder
        eot = tokens.argmax(dim=-1)
        x = enc.token_embedding(tokens)
        x = x + enc.positional_embedding[:tokens.shape[1]]
        for block in enc.blocks:
            x = block(x, is_causal=True)
        x = enc.final_norm(x)
        # One-hot selection of the end-of-text position (a gather with
        # data-dependent row indices exports less portably).
        select = F.one_hot(eot, tokens.shape[1]).to(x.dtype)
        x = torch.einsum('nl,nlc->nc', select, x)
        return enc.projector(x)
