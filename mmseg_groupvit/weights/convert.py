# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Key tables from the NVlabs and transformers GroupViT layouts to this
package's, which keeps the original's fused ``qkv`` projections (rules read
from transformers 4.37.2's ``convert_groupvit_nvlab_to_hf.py``)."""
import re
from typing import Dict, List, Tuple

import torch

from groupvit_common.errors import CheckpointError
from .check import listed

# (pattern, replacement) applied in order, first match wins.
_NV_STAGE = r'^img_encoder\.layers\.(\d+)\.'
_NV_BLOCK = r'^text_encoder\.transformer\.resblocks\.(\d+)\.'
_HF_STAGE = r'^vision_model\.encoder\.stages\.(\d+)\.'
_HF_BLOCK = r'^text_model\.encoder\.layers\.(\d+)\.'
_STAGE = r'image_encoder.stages.\1.'
_TEXT_BLOCK = r'text_encoder.blocks.\1.'


def _projector_rules(source: str, parts: Tuple[str, str, str],
                     tower: str) -> List[Tuple[str, str]]:
    """Rules for a projection head's hidden linear, batch norm and output."""
    return [(rf'^{source}\.{part}\.', f'{tower}_encoder.projector.{ours}.')
            for part, ours in zip(parts, ('linear1', 'bn', 'linear2'))]


_NV_PROJECTOR = (r'linear_hidden\.0', r'linear_hidden\.1', 'linear_out')
_HF_PROJECTOR = ('0', '1', '3')

# yapf: disable
NVLABS_RULES: List[Tuple[str, str]] = [
    (_NV_STAGE + r'downsample\.', _STAGE + 'grouping.'),
    (_NV_STAGE + r'group_projector\.0\.', _STAGE + 'group_projector.norm.'),
    (_NV_STAGE + r'group_projector\.1\.', _STAGE + 'group_projector.mlp.'),
    (_NV_STAGE, _STAGE),
    (r'^img_encoder\.', 'image_encoder.'),
    *_projector_rules('img_projector', _NV_PROJECTOR, 'image'),
    *_projector_rules('text_projector', _NV_PROJECTOR, 'text'),
    (_NV_BLOCK + r'attn\.in_proj_', _TEXT_BLOCK + 'attn.qkv.'),
    (_NV_BLOCK + r'attn\.out_proj\.', _TEXT_BLOCK + 'attn.proj.'),
    (_NV_BLOCK + r'ln_1\.', _TEXT_BLOCK + 'norm1.'),
    (_NV_BLOCK + r'ln_2\.', _TEXT_BLOCK + 'norm2.'),
    (_NV_BLOCK + r'mlp\.c_fc\.', _TEXT_BLOCK + 'mlp.fc1.'),
    (_NV_BLOCK + r'mlp\.c_proj\.', _TEXT_BLOCK + 'mlp.fc2.'),
    (r'^text_encoder\.ln_final\.', 'text_encoder.final_norm.'),
    (r'^text_encoder\.', 'text_encoder.'),
    (r'^logit_scale$', 'decode_head.logit_scale'),
    # Training only, kept so that pretraining can go on (check.TRAINING_KEYS)
    (r'^multi_label_logit_scale$', 'multi_label_logit_scale'),
]
# yapf: enable

# yapf: disable
HF_RULES: List[Tuple[str, str]] = [
    (r'^vision_model\.embeddings\.position_embeddings$',
     'image_encoder.pos_embed'),
    (r'^vision_model\.embeddings\.patch_embeddings\.projection\.',
     'image_encoder.patch_embed.proj.'),
    (r'^vision_model\.embeddings\.layernorm\.',
     'image_encoder.patch_embed.norm.'),
    (_HF_STAGE + r'layers\.(\d+)\.layer_norm(\d)\.',
     _STAGE + r'blocks.\2.norm\3.'),
    (_HF_STAGE + r'layers\.(\d+)\.self_attn\.qkv\.',
     _STAGE + r'blocks.\2.attn.qkv.'),
    (_HF_STAGE + r'layers\.(\d+)\.self_attn\.out_proj\.',
     _STAGE + r'blocks.\2.attn.proj.'),
    (_HF_STAGE + r'layers\.(\d+)\.mlp\.', _STAGE + r'blocks.\2.mlp.'),
    (_HF_STAGE + r'downsample\.pre_assign_attn\.attn\.out_proj\.',
     _STAGE + 'grouping.pre_assign_attn.attn.proj.'),
    (_HF_STAGE + r'downsample\.', _STAGE + 'grouping.'),
    (_HF_STAGE + r'group_projector\.0\.', _STAGE + 'group_projector.norm.'),
    (_HF_STAGE + r'group_projector\.1\.', _STAGE + 'group_projector.mlp.'),
    (_HF_STAGE + r'group_token$', _STAGE + 'group_token'),
    (r'^vision_model\.layernorm\.', 'image_encoder.norm.'),
    *_projector_rules('visual_projection', _HF_PROJECTOR, 'image'),
    (r'^text_model\.embeddings\.token_embedding\.',
     'text_encoder.token_embedding.'),
    (r'^text_model\.embeddings\.position_embedding\.weight$',
     'text_encoder.positional_embedding'),
    (_HF_BLOCK + r'layer_norm(\d)\.', _TEXT_BLOCK + r'norm\2.'),
    (_HF_BLOCK + r'self_attn\.qkv\.', _TEXT_BLOCK + 'attn.qkv.'),
    (_HF_BLOCK + r'self_attn\.out_proj\.', _TEXT_BLOCK + 'attn.proj.'),
    (_HF_BLOCK + r'mlp\.', _TEXT_BLOCK + 'mlp.'),
    (r'^text_model\.final_layer_norm\.', 'text_encoder.final_norm.'),
    *_projector_rules('text_projection', _HF_PROJECTOR, 'text'),
    (r'^logit_scale$', 'decode_head.logit_scale'),
]
# yapf: enable
# Buffers some transformers versions save that carry no weights.
HF_DROPPED = ('text_model.embeddings.position_ids', )

_HF_QKV = re.compile(r'^(.*)\.self_attn\.([qkv])_proj\.(weight|bias)$')


def _apply_rules(state: Dict[str, torch.Tensor], rules,
                 source: str) -> Dict[str, torch.Tensor]:
    compiled = [(re.compile(p), r) for p, r in rules]
    out, unknown = {}, []
    for key, value in state.items():
        for pattern, repl in compiled:
            if pattern.match(key):
                out[pattern.sub(repl, key)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f'{len(unknown)} key(s) of the {source} checkpoint have no place '
            f'in GroupViT: {listed(unknown)}. Is it a GroupViT checkpoint?')
    return out


def convert_nvlabs(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Convert the ``model`` state dict of an NVlabs checkpoint (1x1
    ``Conv1d`` projector kernels become linear weights)."""
    plain = {k.removeprefix('module.'): v for k, v in state.items()}
    if len(plain) < len(state):
        twice = sorted(k for k in plain
                       if k in state and f'module.{k}' in state)
        raise CheckpointError(
            f'the NVlabs checkpoint holds {listed(twice)} both with and '
            f'without DistributedDataParallel\'s "module." prefix: which of '
            f'each pair is the model is unknown. Save the state dict of the '
            f'unwrapped model (model.module.state_dict()).')
    state = plain
    out = _apply_rules(state, NVLABS_RULES, 'NVlabs')
    for key, value in out.items():
        if '.projector.linear' in key and value.dim() == 3:
            out[key] = value[..., 0]
    return out


def convert_hf(state: Dict[str, torch.Tensor],
               source: str = 'the checkpoint') -> Dict[str, torch.Tensor]:
    """Convert a transformers ``GroupViTModel`` state dict (of ``source``):
    split q/k/v projections are stacked into one ``qkv`` (rows q, k, v)."""
    fused, rest = {}, {}
    for key, value in state.items():
        match = _HF_QKV.match(key)
        if match and '.downsample.' not in key:
            prefix, which, kind = match.groups()
            fused.setdefault((prefix, kind), {})[which] = value
        elif key not in HF_DROPPED:
            rest[key] = value
    for (prefix, kind), parts in fused.items():
        if set(parts) != {'q', 'k', 'v'}:
            raise CheckpointError(
                f'{prefix}.self_attn is missing the '
                f'{sorted({"q", "k", "v"} - set(parts))} projection(s); the '
                f'checkpoint is incomplete.')
        shapes = [tuple(parts[w].shape) for w in 'qkv']
        if len({s[1:] for s in shapes}) > 1 or not all(shapes):
            raise CheckpointError(
                f'{source}: {prefix}.self_attn.[qkv]_proj.{kind} have the '
                f'shapes {shapes}, which cannot be stacked into one qkv '
                f'projection; the file is damaged.')
        rest[f'{prefix}.self_attn.qkv.{kind}'] = torch.cat(
            [parts['q'], parts['k'], parts['v']])
    return _apply_rules(rest, HF_RULES, 'transformers')
