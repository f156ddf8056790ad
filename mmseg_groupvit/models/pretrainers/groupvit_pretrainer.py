# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViT pretraining on image-caption pairs: the zero-shot segmentor with
the original's ``MultiLabelContrastive`` losses (its checkpoints are
segmentor checkpoints)."""
import logging
import math
from typing import Dict, List, Optional

import torch
from mmengine.dist import all_reduce
from mmengine.logging import MessageHub, print_log
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import MODEL_WRAPPERS
from mmseg.registry import MODELS
from torch import Tensor, nn

from groupvit_common.checks import check_choice, is_int
from groupvit_common.errors import ConfigValueError, NonFiniteLossError
from ..segmentors import GroupViTEncoderDecoder
from .contrastive_losses import contrastive_loss, multi_label_loss


@MODELS.register_module()
class GroupViTPretrainer(GroupViTEncoderDecoder):
    """Train GroupViT on captioned images with the original's losses.

    Each data sample holds ``text_tokens`` ``[1 + K, 77]``: the caption,
    then ``K = multi_label`` noun prompts. Losses: ``loss_contrastive``
    (image-caption InfoNCE with the head's temperature) and, with ``K > 0``,
    ``loss_multi_label`` (each image against its own prompts). A loss or
    gradient that is not finite is never trained on: ``on_nonfinite``
    ``'stop'`` raises :class:`NonFiniteLossError`, ``'skip'`` drops the
    update and logs ``nonfinite_skips``.

    Args:
        multi_label (int): Prompts per caption ``K`` (0: none).
        share_temperature (bool): Use the contrastive temperature for the
            multi-label loss too.
        contrast_temperature (float): Initial temperature of both losses.
        on_nonfinite (str): ``'stop'`` or ``'skip'``.
        **kwargs: Passed to :class:`GroupViTEncoderDecoder` (a text encoder
            with ``frozen=False`` is trained).
    """

    def __init__(self,
                 image_encoder: dict,
                 text_encoder: dict,
                 decode_head: dict,
                 multi_label: int = 3,
                 share_temperature: bool = False,
                 multi_label_loss_weight: float = 1.0,
                 contrast_temperature: float = 0.07,
                 on_nonfinite: str = 'stop',
                 **kwargs):
        check_choice(on_nonfinite, 'model.on_nonfinite', ('stop', 'skip'))
        if not is_int(multi_label) or multi_label < 0:
            raise ConfigValueError(
                f'model.multi_label={multi_label!r} must be the number of '
                f'noun prompts per caption (0 for none).')
        init_scale = math.log(1 / contrast_temperature)
        decode_head = {'logit_scale_init': init_scale, **decode_head}
        super().__init__(image_encoder, text_encoder, decode_head, **kwargs)
        self.multi_label = multi_label
        self.share_temperature = share_temperature
        self.multi_label_loss_weight = multi_label_loss_weight
        self.on_nonfinite = on_nonfinite
        self.nonfinite_skips = 0
        if multi_label and not share_temperature:
            self.multi_label_logit_scale = nn.Parameter(
                torch.tensor(init_scale))

    def init_weights(self):
        """The encoders' init, then PyTorch's default for the projectors
        (unless ``init_cfg``), as the original."""
        super().init_weights()
        for encoder in (self.image_encoder, self.text_encoder):
            if encoder.init_cfg is None and encoder.projector is not None:
                for module in encoder.projector.children():
                    module.reset_parameters()

    def loss(self, inputs: Tensor, data_samples: List) -> Dict[str, Tensor]:
        """``loss_contrastive`` (and ``loss_multi_label``) of normalised
        images ``[B, 3, H, W]`` and samples with ``text_tokens``
        ``[1 + K, L]``."""
        tokens = torch.stack([s.text_tokens for s in data_samples])
        if tokens.dim() != 3 or tokens.shape[1] != 1 + self.multi_label:
            raise ConfigValueError(
                f'The text of a training batch has shape '
                f'{tuple(tokens.shape)}, but model.multi_label='
                f'{self.multi_label} needs [B, {1 + self.multi_label}, L] '
                f'(the caption and {self.multi_label} prompts): set the '
                f'same multi_label in the CaptionTokenize transform.')
        batch, rows = tokens.shape[:2]
        feats = self.image_encoder.forward_features(inputs)
        image_x = self.image_encoder.projector(feats['pooled'])
        # One batch of B * (1 + K) through the projector's BatchNorm.
        text_x = self.text_encoder.encode_tokens(tokens.flatten(0, 1))
        text_x = text_x.view(batch, rows, -1)
        losses = dict(
            loss_contrastive=contrastive_loss(image_x, text_x[:, 0],
                                              self.decode_head.temperature))
        if self.multi_label:
            if self.share_temperature:
                temperature = self.decode_head.temperature
            else:
                temperature = self.multi_label_logit_scale.exp().clamp(max=100)
            losses['loss_multi_label'] = multi_label_loss(
                image_x, text_x[:, 1:],
                temperature) * self.multi_label_loss_weight
        return losses

    def train_step(self,
                   data,
                   optim_wrapper: OptimWrapper,
                   wrapper: Optional[nn.Module] = None) -> dict:
        """mmengine's ``train_step``, checking the losses before backward and
        the gradients before the step; ``wrapper``: the DDP wrapper."""
        runner_model = self if wrapper is None else wrapper
        with optim_wrapper.optim_context(runner_model):
            data = self.data_preprocessor(data, True)
            losses = runner_model._run_forward(data, mode='loss')
        loss, log_vars = self.parse_losses(losses)
        bad = _agreed([
            name for name, value in losses.items()
            if not bool(torch.isfinite(value.detach()).all())
        ])
        if not bad:
            optim_wrapper.backward(optim_wrapper.scale_loss(loss))
            if optim_wrapper.should_update():
                if not isinstance(optim_wrapper, AmpOptimWrapper):
                    bad = _nonfinite_grads(self)
                if not bad:
                    optim_wrapper.step()
                optim_wrapper.zero_grad()
        if bad:
            self._handle_nonfinite(bad)
            optim_wrapper.zero_grad()
        if self.on_nonfinite == 'skip':
            log_vars['nonfinite_skips'] = torch.tensor(
                float(self.nonfinite_skips))
        return log_vars

    def _handle_nonfinite(self, bad: List[str]) -> None:
        step = MessageHub.get_current_instance().get_info('iter', -1) + 1
        what = ', '.join(bad[:4]) + ' ...' * (len(bad) > 4)
        if self.on_nonfinite == 'stop':
            raise NonFiniteLossError(
                f'training step {step}: {what} not finite; the update was '
                f'not applied and the run stopped (model.on_nonfinite='
                f'\'stop\'). Lower the learning rate, check the data of this '
                f'step, or set model.on_nonfinite=\'skip\' to skip such '
                f'steps.')
        self.nonfinite_skips += 1
        print_log(
            f'training step {step}: {what} not finite; step skipped '
            f'({self.nonfinite_skips} skipped so far).',
            logger='current',
            level=logging.WARNING)


def _nonfinite_grads(model: nn.Module) -> List[str]:
    grads = [(n, p.grad) for n, p in model.named_parameters()
             if p.grad is not None]
    if not grads:
        return []
    finite = torch.stack([torch.isfinite(g).all() for _, g in grads]).tolist()
    return [
        f'the gradient of {n}' for (n, _), ok in zip(grads, finite) if not ok
    ]


def _agreed(bad: List[str]) -> List[str]:
    """``bad`` made the same on every process, so all stop or skip together."""
    flag = torch.tensor([float(bool(bad))])
    all_reduce(flag)  # on the backend's device; nothing in one process
    if flag.item() and not bad:
        return ['a loss term of another process']
    return bad


@MODEL_WRAPPERS.register_module()
class PretrainerDistributedDataParallel(MMDistributedDataParallel):
    """DDP handing ``train_step`` to :class:`GroupViTPretrainer`."""

    def train_step(self, data, optim_wrapper):
        return self.module.train_step(data, optim_wrapper, wrapper=self)
