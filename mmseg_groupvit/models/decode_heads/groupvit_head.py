# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViT's zero-shot head: the original's
``GroupViTSegInference.encode_decode`` as an mmseg decode head."""
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import Tensor, nn

from groupvit_common.checks import check_bg_thresh, check_positive_int
from groupvit_common.errors import CheckpointError
from ..config_arguments import builds
from ..layers import chain_assignments


def group_maps(soft_assigns: Sequence[Tensor], grid: Tuple[int, int],
               size: Tuple[int, int]) -> Tensor:
    """Soft pixel-to-final-group maps ``[B, S_last, H, W]``: the
    :func:`chain_assignments` on the patch ``grid`` ``(h, w)``, resized
    bilinearly to ``size`` ``(H, W)``."""
    chained = chain_assignments(soft_assigns)
    batch, _, groups = chained.shape
    # [B, h*w, G] -> [B, G, h, w]
    maps = chained.transpose(1, 2).reshape(batch, groups, *grid)
    return F.interpolate(
        maps, size=tuple(size), mode='bilinear', align_corners=False)


def check_finite_scores(scores: Tensor, maps: Tensor) -> None:
    """Raise :class:`CheckpointError` on NaN or Inf in the scores
    ``[B, G, K]`` or maps ``[B, G, H, W]`` (an argmax would hide them)."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return
    bad = []
    for name, t in (('group-class scores', scores), ('group maps', maps)):
        count = int((~torch.isfinite(t)).sum())
        if count:
            bad.append(f'{name} ({count} of {t.numel()})')
    if bad:
        raise CheckpointError(
            'The model computed NaN or Inf ' + ' and '.join(bad) +
            ', so its labels would be meaningless. Its weights or '
            'architecture settings are broken (overflowing weights, a '
            'negative variance, an eps setting); use another checkpoint or '
            'fix the setting.')


def paint_scores(pixel_group: Tensor, table: Tensor) -> Tensor:
    """Scores ``[B, C, H, W]``: every pixel of ``pixel_group`` ``[B, H,
    W]`` (int64) takes its group's row of ``table`` ``[B, G, C]``."""
    batch, channels = table.shape[0], table.shape[-1]
    # [B, C, G] gathered along G by [B, C, H*W] -> [B, C, H, W]
    index = pixel_group.reshape(batch, 1, -1).expand(-1, channels, -1)
    seg = table.transpose(1, 2).gather(2, index)
    return seg.view(batch, channels, *pixel_group.shape[-2:])


@MODELS.register_module()
class GroupViTHead(BaseDecodeHead):
    """Assign GroupViT's final groups to classes.

    Every pixel takes the score row ``P [B, G, K]`` of its final group:
    group-class softmax gated to the image's top-k classes, times the
    ungated softmax. With ``with_bg``, channel 0 is 1 where a pixel's best
    score is below ``min(bg_thresh, max P)``.

    Args:
        num_classes (int): ``K + 1`` with background, ``K`` without.
        with_bg (bool): Prepend the background channel.
        bg_thresh (float): Background threshold in [0, 1].
        topk (int): Classes kept by the image-level gate.
        logit_scale_init (float): Initial log temperature (``ln(1/0.07)``).
        logit_scale_max (float): Clamp of ``exp(logit_scale)``.
        **kwargs: Passed to :class:`BaseDecodeHead` (``in_channels`` and
            ``channels`` are unused).
    """

    def __init__(self,
                 num_classes: int,
                 with_bg: bool = True,
                 bg_thresh: float = 0.95,
                 topk: int = 5,
                 logit_scale_init: float = 2.6592,
                 logit_scale_max: Optional[float] = 100.,
                 in_channels: int = 1,
                 channels: int = 1,
                 init_cfg: Optional[dict] = None,
                 **kwargs):
        check_positive_int(
            num_classes, 'model.decode_head.num_classes',
            'output classes: the vocabulary size, plus 1 '
            'with background')
        check_positive_int(topk, 'model.decode_head.topk',
                           'classes kept by the image-level gate')
        bg_thresh = check_bg_thresh(bg_thresh, 'model.decode_head.bg_thresh')
        # BaseDecodeHead always builds a loss; this head never uses it.
        kwargs.setdefault('loss_decode',
                          dict(type='CrossEntropyLoss', avg_non_ignore=True))
        super().__init__(
            in_channels=in_channels,
            channels=channels,
            num_classes=num_classes,
            init_cfg=init_cfg,
            **kwargs)
        del self.conv_seg
        self.with_bg = with_bg
        self.bg_thresh = bg_thresh
        self.topk = topk
        self.logit_scale_max = logit_scale_max
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))

    def init_weights(self):
        """Only ``init_cfg``: ``logit_scale`` is set in ``__init__``."""
        if self.init_cfg is not None and self.init_cfg.get('type') != 'Normal':
            super().init_weights()

    @property
    def temperature(self) -> Tensor:
        """``exp(logit_scale)``, clamped to ``logit_scale_max``."""
        scale = self.logit_scale.exp()
        if self.logit_scale_max is not None:
            scale = scale.clamp(max=self.logit_scale_max)
        return scale

    def group_class_scores(self, group_embeds: Tensor, image_embeds: Tensor,
                           class_embeds: Tensor) -> Tensor:
        """``P`` ``[B, G, K]`` of ``group_embeds`` ``[B, G, D]``,
        ``image_embeds`` ``[B, D]`` and normalised ``class_embeds``
        ``[K, D]``."""
        scale = self.temperature
        group_logits = F.normalize(group_embeds, dim=-1) @ class_embeds.t()
        group_logits = group_logits * scale
        ungated = group_logits.softmax(dim=-1)
        image_probs = (F.normalize(image_embeds, dim=-1) @ class_embeds.t() *
                       scale).softmax(dim=-1)
        # ``topk`` padding entries below every probability keep ``k = topk``
        # valid (and exportable) for any vocabulary size.
        padded = F.pad(image_probs, (0, self.topk), value=-1.)
        index = padded.topk(self.topk, dim=-1).indices
        # 1, not True: traceable by torch.jit.
        keep = torch.zeros_like(padded, dtype=torch.bool)
        keep.scatter_(-1, index, 1)
        keep = keep[:, :class_embeds.shape[0]]
        gated = group_logits.masked_fill(~keep[:, None], float('-inf'))
        return gated.softmax(dim=-1) * ungated

    def assign(self,
               inputs: list,
               bg_thresh: Optional[float] = None) -> Tuple[Tensor, Tensor]:
        """Compact :meth:`forward`: ``pixel_group`` ``[B, H, W]`` (int64)
        and ``table`` ``[B, G, num_classes]`` for :func:`paint_scores`."""
        images, feats, class_embeds = inputs
        class_embeds = class_embeds.to(feats['group_embeds'].dtype)
        scores = self.group_class_scores(feats['group_embeds'],
                                         feats['image_embeds'], class_embeds)
        maps = group_maps(feats['soft_assigns'], feats['grid'],
                          images.shape[-2:])
        # [B, H, W]; channels-last: the same argmax, much faster on CPU.
        pixel_group = maps.permute(0, 2, 3, 1).contiguous().argmax(dim=-1)
        check_finite_scores(scores, maps)
        if not self.with_bg:
            return pixel_group, scores
        thresh = self.bg_thresh if bg_thresh is None else bg_thresh
        # min(bg_thresh, max P): at least one group stays foreground.
        thresh = scores.flatten(1).max(dim=1).values.clamp(max=thresh)
        background = scores.max(dim=-1).values < thresh[:, None]
        table = torch.cat([background[..., None].to(scores.dtype), scores],
                          dim=-1)
        return pixel_group, table

    def forward(self,
                inputs: list,
                bg_thresh: Optional[float] = None) -> Tensor:
        """Class scores ``[B, num_classes, H, W]`` of ``inputs``: images
        ``[B, 3, H, W]``, the :class:`GroupViT` output dict and class
        embeddings ``[K, D]``; ``bg_thresh`` overrides ``self.bg_thresh``."""
        return paint_scores(*self.assign(inputs, bg_thresh))

    def predict(self, inputs: list, batch_img_metas: List[dict],
                test_cfg: Optional[dict]) -> Tensor:
        """:meth:`forward` (with ``test_cfg.bg_thresh``) resized to the
        metas' size: ``[B, num_classes, H, W]``."""
        seg_logits = self.forward(inputs, (test_cfg or {}).get('bg_thresh'))
        return self.predict_by_feat(seg_logits, batch_img_metas)

    def predict_by_feat(self, seg_logits: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        """Resize only when :meth:`target_size` differs."""
        size = self.target_size(batch_img_metas[0])
        if tuple(seg_logits.shape[-2:]) == size:
            return seg_logits
        return super().predict_by_feat(seg_logits, batch_img_metas)

    @staticmethod
    def target_size(meta: dict) -> Tuple[int, int]:
        """mmseg's target size: ``img_shape`` in slide mode (a
        ``torch.Size`` there), else the padded shape."""
        if isinstance(meta['img_shape'], torch.Size):
            size = meta['img_shape']
        else:
            size = meta.get('pad_shape', meta['img_shape'])
        return tuple(int(v) for v in size[:2])

    def loss(self, inputs, batch_data_samples, train_cfg) -> dict:
        raise NotImplementedError(
            'GroupViTHead is a zero-shot inference head and has no '
            'segmentation loss. To train on labels, pair the GroupViT '
            'backbone with an mmseg decode head (e.g. FCNHead).')


def head_with_bg(head: dict) -> Any:
    """A head config's ``with_bg`` (as given), else whether it is a
    :class:`GroupViTHead`."""
    if 'with_bg' in head:
        return head['with_bg']
    return builds(head, GroupViTHead)
