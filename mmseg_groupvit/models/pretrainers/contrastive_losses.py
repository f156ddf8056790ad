# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViT's pretraining losses (the original's ``MultiLabelContrastive``),
each process's rows scored against all processes' features gathered with a
differentiable all-gather."""
from typing import Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def world() -> Tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_rows(x: Tensor) -> Tensor:
    """All processes' ``x`` ``[N, ...]`` in rank order,
    ``[world_size * N, ...]``, differentiable."""
    if world()[1] == 1:
        return x
    from torch.distributed.nn.functional import all_gather
    return torch.cat(all_gather(x.contiguous()), dim=0)


def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """timm's ``SoftTargetCrossEntropy``."""
    return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()


def contrastive_loss(image_x: Tensor, text_x: Tensor,
                     temperature: Tensor) -> Tensor:
    """Symmetric InfoNCE of projected image and caption features
    ``[B, D]`` over the gathered batch."""
    rank, _ = world()
    image_x = F.normalize(image_x, dim=-1)
    text_x = F.normalize(text_x, dim=-1)
    labels = torch.arange(
        image_x.shape[0], device=image_x.device) + image_x.shape[0] * rank
    logits_per_image = image_x @ gather_rows(text_x).t() * temperature
    logits_per_text = text_x @ gather_rows(image_x).t() * temperature
    return 0.5 * (
        F.cross_entropy(logits_per_image, labels) +
        F.cross_entropy(logits_per_text, labels))


def multi_label_loss(image_x: Tensor, prompt_x: Tensor,
                     temperature: Tensor) -> Tensor:
    """Soft cross-entropy of each image ``[B, D]`` against its own ``K``
    prompts ``[B, K, D]`` (targets ``1/K``) and of each prompt against its
    image, both directions averaged, over the gathered batch."""
    rank, world_size = world()
    batch, num_prompts = prompt_x.shape[:2]
    image_x = F.normalize(image_x, dim=-1)
    prompt_x = F.normalize(prompt_x, dim=-1).flatten(0, 1)
    logits_per_image = image_x @ gather_rows(prompt_x).t() * temperature
    logits_per_prompt = prompt_x @ gather_rows(image_x).t() * temperature
    # [B, W*B*K]: 1/K on this image's own prompts.
    own = torch.eye(batch, dtype=image_x.dtype, device=image_x.device)
    target_image = image_x.new_zeros(batch, world_size, batch, num_prompts)
    target_image[:, rank] = own[:, :, None] / num_prompts
    # [B*K, W*B]: 1 on the prompt's own image.
    target_prompt = torch.zeros_like(target_image).permute(0, 3, 1, 2)
    target_prompt[:, :, rank] = own[:, None, :]
    return 0.5 * (
        soft_cross_entropy(logits_per_image, target_image.flatten(1)) +
        soft_cross_entropy(logits_per_prompt,
                           target_prompt.flatten(0, 1).flatten(1)))
