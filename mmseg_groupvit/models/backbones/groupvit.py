# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""GroupViT image encoder (Xu et al., CVPR 2022), after the original and
transformers' ``modeling_groupvit.py``, whose argument names it follows."""
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmseg.registry import MODELS
from torch import nn

from groupvit_common.errors import CheckpointError, ImageSizeError
from ...weights.check import (check_values, compare_state_dicts,
                              describe_mismatch, passed)
from ..layers import (GroupingBlock, MixerMLP, ProjectionMLP, TransformerBlock,
                      chain_assignments)


def _check_weights_hook(module: nn.Module, state_dict: dict, prefix: str,
                        *args) -> None:
    """Refuse weights whose keys or shapes differ from the encoder, unless
    the model holding it checked them."""
    state = {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }
    if passed(state):
        return
    own = module.state_dict()
    missing, extra, reshaped = compare_state_dicts(own, state)
    if module.projector is None:
        extra = [k for k in extra if not k.startswith('projector.')]
    where = f' (prefix {prefix!r})' if prefix else ''
    if not (missing or extra or reshaped):
        check_values({k: state[k]
                      for k in own}, f'GroupViT weights{where}', own)
        return
    lines = [f'GroupViT weights{where} do not match the encoder:']
    if len(missing) == len(own):
        lines.append(
            f'none of its {len(own)} keys were found (the weights have '
            f'{sorted(state_dict)[:3]} ...). Load a checkpoint converted '
            f'by tools/convert_weights.py through the encoder\'s '
            f'init_cfg=dict(type=\'Pretrained\', checkpoint=..., '
            f'prefix=\'image_encoder.\').')
    else:
        lines += describe_mismatch(own, state, missing, extra, reshaped,
                                   'encoder')
        lines.append('Set the architecture fields (depths, num_group_tokens, '
                     'hidden_size, image_size, ...) to the checkpoint\'s: '
                     'tools/convert_weights.py writes them to DST.py for '
                     'non-default architectures.')
    raise CheckpointError('\n'.join(lines))


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding followed by LayerNorm."""

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int,
                 layer_norm_eps: float):
        super().__init__()
        self.proj = nn.Conv2d(
            in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims, eps=layer_norm_eps)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Images ``[B, C_in, H, W]`` to tokens ``[B, h*w, C]`` and the
        grid ``(h, w)``."""
        x = self.proj(x)
        return self.norm(x.flatten(2).transpose(1, 2)), tuple(x.shape[-2:])


class GroupingStage(nn.Module):
    """Transformer blocks over ``[tokens, group tokens]``, then a
    :class:`GroupingBlock` (none without group tokens); the previous stage's
    group tokens are projected and added to the learned ones. Arguments as
    :class:`GroupViT`'s, per stage."""

    def __init__(self, embed_dims: int, depth: int, num_heads: int,
                 mlp_dims: int, num_group_tokens: int, num_output_groups: int,
                 num_prev_group_tokens: int, grouping_cfg: dict, act: str,
                 layer_norm_eps: float, attn_drop: float,
                 drop_path: Sequence[float]):
        super().__init__()
        self.num_group_tokens = num_group_tokens
        self.blocks = nn.ModuleList([
            TransformerBlock(embed_dims, num_heads, mlp_dims, act,
                             layer_norm_eps, attn_drop, drop_path[i])
            for i in range(depth)
        ])
        self.group_token = self.grouping = self.group_projector = None
        if num_group_tokens > 0:
            self.group_token = nn.Parameter(
                torch.zeros(1, num_group_tokens, embed_dims))
            self.grouping = GroupingBlock(
                embed_dims,
                num_heads,
                num_group_tokens,
                num_output_groups,
                mlp_dims,
                act=act,
                layer_norm_eps=layer_norm_eps,
                attn_drop=attn_drop,
                **grouping_cfg)
        if num_group_tokens > 0 and num_prev_group_tokens > 0:
            self.group_projector = nn.Sequential(
                OrderedDict(
                    norm=nn.LayerNorm(embed_dims, eps=layer_norm_eps),
                    mlp=MixerMLP(num_prev_group_tokens, embed_dims // 2,
                                 num_group_tokens, act)))

    def forward(
        self, x: torch.Tensor, prev_group_tokens: Optional[torch.Tensor]
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor],
               torch.Tensor]:
        """
        Args:
            x (Tensor): Tokens ``[B, L, C]``.
            prev_group_tokens (Tensor | None): ``[B, S_prev, C]``.

        Returns:
            tuple: Output ``[B, S_out, C]`` (``x`` without grouping), group
            tokens ``[B, S, C]`` and soft assignment ``[B, S_out, L]`` (None
            without grouping), tokens after the blocks.
        """
        if self.group_token is None:
            for block in self.blocks:
                x = block(x)
            return x, None, None, x
        group_tokens = self.group_token.expand(x.shape[0], -1, -1)
        if self.group_projector is not None:
            group_tokens = group_tokens + self.group_projector(
                prev_group_tokens)
        num_tokens = x.shape[1]
        x = torch.cat([x, group_tokens], dim=1)
        for block in self.blocks:
            x = block(x)
        x, group_tokens = x[:, :num_tokens], x[:, num_tokens:]
        out, soft_assign = self.grouping(x, group_tokens)
        return out, group_tokens, soft_assign, x


@MODELS.register_module()
class GroupViT(BaseModule):
    """GroupViT image encoder (backbone).

    Grouping stages merge patch tokens into segments; the final segment
    tokens are normalised, averaged and (``with_projector``) projected into
    the joint image-text space. The architecture arguments are
    transformers' ``GroupViTVisionConfig`` fields, same defaults
    (``num_hidden_layers`` is ignored there too).

    Args:
        depths (Sequence[int]): Blocks per stage.
        num_group_tokens (Sequence[int]): Group tokens per stage (0 only in
            trailing stages).
        num_output_groups (Sequence[int]): Segments out of each grouping.
        drop_path_rate (float): Stochastic depth of the last block, rising
            linearly from 0.
        with_projector (bool): Build the projection head (``projection_*``).
        out_indices (int | Sequence[int], optional): Stages whose dense
            maps are returned (:meth:`forward_dense`).
        with_zero_shot (bool): With ``out_indices``, return the zero-shot
            dict with the maps under ``dense``.
        frozen_stages (int): Freeze the patch embedding and position table
            (``>= 0``) and the first ``frozen_stages`` stages (all: the final
            LayerNorm too); -1: none.
        freeze_group_tokens, freeze_projector, frozen (bool): Freeze the
            group tokens, the projection head, the whole encoder.
        init_cfg (dict | list[dict], optional): E.g. ``dict(type=
            'Pretrained', checkpoint=..., prefix='image_encoder.')``.

    Returns (forward): a dict of ``group_tokens`` ``[B, S, C]`` (final,
    normalised), ``pooled`` ``[B, C]``, ``soft_assigns`` (per grouping stage
    ``[B, S_i, S_{i-1}]``), ``grid`` ``(h, w)``, ``stage_tokens`` and, with
    the projector, ``group_embeds`` ``[B, S, D]`` and ``image_embeds``
    ``[B, D]``; with ``out_indices`` the tuple of :meth:`forward_dense`
    instead (under ``dense`` with ``with_zero_shot``).
    """

    def __init__(self,
                 hidden_size: int = 384,
                 intermediate_size: int = 1536,
                 depths: Sequence[int] = (6, 3, 3),
                 num_hidden_layers: Optional[int] = 12,
                 num_group_tokens: Sequence[int] = (64, 8, 0),
                 num_output_groups: Sequence[int] = (64, 8, 8),
                 num_attention_heads: int = 6,
                 image_size: int = 224,
                 patch_size: int = 16,
                 num_channels: int = 3,
                 hidden_act: str = 'gelu',
                 layer_norm_eps: float = 1e-5,
                 dropout: float = 0.0,
                 attention_dropout: float = 0.0,
                 assign_eps: float = 1.0,
                 assign_mlp_ratio: Sequence[float] = (0.5, 4),
                 gumbel: bool = True,
                 gumbel_tau: float = 1.0,
                 drop_path_rate: float = 0.0,
                 with_projector: bool = True,
                 projection_dim: int = 256,
                 projection_intermediate_dim: int = 4096,
                 out_indices: Optional[Union[int, Sequence[int]]] = None,
                 with_zero_shot: bool = False,
                 frozen_stages: int = -1,
                 freeze_group_tokens: bool = False,
                 freeze_projector: bool = False,
                 frozen: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        depths, num_group_tokens, num_output_groups = map(
            list, (depths, num_group_tokens, num_output_groups))
        if len(num_group_tokens) != len(depths):
            raise ValueError(
                f'num_group_tokens {num_group_tokens} needs one entry per '
                f'stage (depths {depths}).')
        if len(num_output_groups) < sum(1 for n in num_group_tokens if n):
            raise ValueError(
                f'num_output_groups {num_output_groups} needs an entry for '
                f'every stage with group tokens ({num_group_tokens}).')
        if 0 in num_group_tokens and any(
                n > 0 for n in num_group_tokens[num_group_tokens.index(0):]):
            raise ValueError(
                f'num_group_tokens {num_group_tokens}: only trailing stages '
                f'may have no group tokens.')
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.pos_grid = image_size // patch_size

        self.patch_embed = PatchEmbed(num_channels, hidden_size, patch_size,
                                      layer_norm_eps)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.pos_grid**2, hidden_size))
        self.pos_drop = nn.Dropout(dropout)
        grouping_cfg = dict(
            assign_mlp_ratio=tuple(assign_mlp_ratio),
            assign_eps=assign_eps,
            gumbel=gumbel,
            gumbel_tau=gumbel_tau)
        rates = torch.linspace(
            0, drop_path_rate, sum(depths), device='cpu').tolist()
        prev_tokens = [0] + num_group_tokens[:-1]
        self.stages = nn.ModuleList(
            GroupingStage(hidden_size, depth, num_attention_heads,
                          intermediate_size, num_group_tokens[i],
                          num_output_groups[i] if num_group_tokens[i] else 0,
                          prev_tokens[i], grouping_cfg, hidden_act,
                          layer_norm_eps, attention_dropout,
                          rates[sum(depths[:i]):sum(depths[:i + 1])])
            for i, depth in enumerate(depths))
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.projector = ProjectionMLP(
            hidden_size, projection_intermediate_dim,
            projection_dim) if with_projector else None
        self._pos_embed_cache = (None, None)  # (key, table) of one grid

        num_stages = len(depths)
        self.out_indices = out_indices
        if out_indices is not None:
            indices = (out_indices, ) if isinstance(
                out_indices, int) else tuple(out_indices)
            if not indices or any(
                    not isinstance(i, int) or not -num_stages <= i < num_stages
                    for i in indices):
                raise ValueError(
                    f'GroupViT: out_indices={out_indices!r} must be stage '
                    f'indices in [-{num_stages}, {num_stages - 1}] (this '
                    f'encoder has {num_stages} stages), e.g. '
                    f'out_indices=(0, 1, 2).')
            self.out_indices = tuple(i % num_stages for i in indices)
        if with_zero_shot and out_indices is None:
            raise ValueError(
                'GroupViT: with_zero_shot=True adds the dense maps to the '
                'zero-shot output, so it needs out_indices (e.g. '
                'out_indices=(0, 1, 2)).')
        self.with_zero_shot = with_zero_shot
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(
                f'GroupViT: frozen_stages={frozen_stages} must be between -1 '
                f'(nothing frozen) and {num_stages} (all stages).')
        self.frozen_stages = frozen_stages
        self.freeze_projector = freeze_projector
        self.frozen = frozen
        for module in self._frozen_modules():
            module.eval()
            module.requires_grad_(False)
        if frozen_stages >= 0:
            self.pos_embed.requires_grad_(False)
        if freeze_group_tokens:
            for stage in self.stages:
                if stage.group_token is not None:
                    stage.group_token.requires_grad_(False)
        self.register_load_state_dict_pre_hook(_check_weights_hook)

    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen:
            return [self]
        modules = []
        if self.frozen_stages >= 0:
            modules += [self.patch_embed, self.pos_drop]
        modules += list(self.stages[:max(self.frozen_stages, 0)])
        if self.frozen_stages == len(self.stages):
            modules.append(self.norm)
        if self.freeze_projector and self.projector is not None:
            modules.append(self.projector)
        return modules

    def train(self, mode: bool = True) -> 'GroupViT':
        super().train(mode)
        if mode:
            for module in self._frozen_modules():
                module.eval()
        return self

    def init_weights(self):
        """``init_cfg``'s weights, else truncated-normal (std 0.02)."""
        if self.init_cfg is not None:
            try:
                super().init_weights()
            except AssertionError as e:  # mmengine's prefix filter
                cfg = self.init_cfg if isinstance(self.init_cfg, dict) else {}
                raise CheckpointError(
                    f'{cfg.get("checkpoint")}: {e} (init_cfg prefix '
                    f'{cfg.get("prefix")!r}): it holds no GroupViT image '
                    f'encoder there (a fine-tuned model\'s checkpoint has it '
                    f'under "backbone."). Give converted GroupViT weights '
                    f'(tools/convert_weights.py), or load a fine-tuned '
                    f'model\'s checkpoint with load_from.') from None
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.LayerNorm, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        trunc_normal_(self.pos_embed, std=.02)
        for stage in self.stages:
            if stage.group_token is not None:
                trunc_normal_(stage.group_token, std=.02)

    def interpolate_pos_embed(self, grid: Tuple[int, int]) -> torch.Tensor:
        """Position embedding ``[1, h*w, C]`` for a ``(h, w)`` patch grid:
        the table resized bicubic to an explicit size (as the original and
        transformers 5.x), cached in eval mode without autograd."""
        if tuple(grid) == (self.pos_grid, self.pos_grid):
            return self.pos_embed
        cacheable = not (self.training or torch.is_grad_enabled())
        key = (tuple(grid), self.pos_embed.device, self.pos_embed.dtype,
               self.pos_embed._version)
        if cacheable and self._pos_embed_cache[0] == key:
            return self._pos_embed_cache[1]
        # [1, g*g, C] -> [1, C, g, g] -> [1, C, h, w] -> [1, h*w, C]
        table = self.pos_embed.reshape(1, self.pos_grid, self.pos_grid,
                                       -1).permute(0, 3, 1, 2)
        table = F.interpolate(
            table, size=tuple(grid), mode='bicubic', align_corners=False)
        table = table.flatten(2).transpose(1, 2)
        if cacheable:
            self._pos_embed_cache = (key, table)
        return table

    def check_channels(self, shape: tuple, gray: bool = False) -> None:
        """Refuse images ``[..., C, H, W]`` without ``num_channels``
        channels (or one, with ``gray``)."""
        channels = shape[-3]
        if channels != self.num_channels and not (gray and channels == 1):
            raise ValueError(
                f'GroupViT expects {self.num_channels}-channel images, got '
                f'{channels} channels (shape {tuple(shape)}, channels first). '
                f'Convert grayscale or RGBA images to RGB first, e.g. '
                f'array[..., :3] (mmseg\'s LoadImageFromFile does so with '
                f'color_type="color").')

    def forward_features(self, x: torch.Tensor) -> dict:
        """The encoder without the projection head."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(
                f'GroupViT expects images as a [B, C, H, W] tensor, got '
                f'{getattr(x, "shape", type(x))}.')
        self.check_channels(x.shape)
        if x.shape[2] < self.patch_size or x.shape[3] < self.patch_size:
            raise ImageSizeError(
                f'Image {tuple(x.shape[2:])} is smaller than one '
                f'{self.patch_size}x{self.patch_size} patch; resize it first.')
        x, grid = self.patch_embed(x)
        x = self.pos_drop(x + self.interpolate_pos_embed(grid))
        group_tokens = None
        soft_assigns, stage_tokens = [], []
        for stage in self.stages:
            x, group_tokens, soft_assign, tokens = stage(x, group_tokens)
            stage_tokens.append(tokens)
            if soft_assign is not None:
                soft_assigns.append(soft_assign)
        x = self.norm(x)
        return dict(
            group_tokens=x,
            pooled=x.mean(dim=1),
            soft_assigns=soft_assigns,
            grid=grid,
            stage_tokens=stage_tokens)

    def forward_head(self, feats: dict) -> dict:
        """Add ``group_embeds`` and ``image_embeds`` to ``feats``."""
        feats['group_embeds'] = self.projector(feats['group_tokens'])
        feats['image_embeds'] = self.projector(feats['pooled'])
        return feats

    def forward_dense(self, feats: dict) -> Tuple[torch.Tensor, ...]:
        """Pixel-aligned maps ``[B, C, h, w]`` per index of
        ``out_indices``: stage 1's patch tokens, a later stage's tokens
        spread back to the patches, ``(A_1^T @ ... @ A_i^T) @ tokens_i``."""
        grid, assigns = feats['grid'], feats['soft_assigns']
        maps = []
        for i in self.out_indices:
            if i == 0:
                tokens = feats['stage_tokens'][0]
            elif i == len(self.stages) - 1:
                tokens = chain_assignments(assigns) @ feats['group_tokens']
            else:
                tokens = chain_assignments(
                    assigns[:i]) @ feats['stage_tokens'][i]
            # [B, h*w, C] -> [B, C, h, w]
            maps.append(
                tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *grid))
        return tuple(maps)

    def forward(self,
                x: torch.Tensor) -> Union[dict, Tuple[torch.Tensor, ...]]:
        feats = self.forward_features(x)
        if self.out_indices is not None and not self.with_zero_shot:
            return self.forward_dense(feats)
        if self.projector is not None:
            feats = self.forward_head(feats)
        if self.out_indices is not None:
            feats['dense'] = self.forward_dense(feats)
        return feats
