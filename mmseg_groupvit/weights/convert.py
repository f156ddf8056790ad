# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Key tables from the NVlabs and transformers GroupViT layouts to this
package's (``image_encoder.*``, ``text_encoder.*``, ``decode_head.*``).

The NVlabs -> transformers rules were read from transformers 4.37.2's
``convert_groupvit_nvlab_to_hf.py``; here both map onto our layout, which
keeps the original's fused ``qkv`` projections (transformers splits them).
"""
import re
from typing import Dict, List, Tuple

import torch

from .io import CheckpointError

# (pattern, replacement) applied in order, first match wins.
NVLABS_RULES: List[Tuple[str, str]] = [
    (r'^img_encoder\.layers\.(\d+)\.downsample\.', r'image_encoder.stages.\1.grouping.'),
    (r'^img_encoder\.layers\.(\d+)\.group_projector\.0\.', r'image_encoder.stages.\1.group_projector.norm.'),  # noqa: E501
    (r'^img_encoder\.layers\.(\d+)\.group_projector\.1\.', r'image_encoder.stages.\1.group_projector.mlp.'),  # noqa: E501
    (r'^img_encoder\.layers\.(\d+)\.', r'image_encoder.stages.\1.'),
    (r'^img_encoder\.', r'image_encoder.'),
    (r'^img_projector\.linear_hidden\.0\.', r'image_encoder.projector.linear1.'),  # noqa: E501
    (r'^img_projector\.linear_hidden\.1\.', r'image_encoder.projector.bn.'),
    (r'^img_projector\.linear_out\.', r'image_encoder.projector.linear2.'),
    (r'^text_projector\.linear_hidden\.0\.', r'text_encoder.projector.linear1.'),  # noqa: E501
    (r'^text_projector\.linear_hidden\.1\.', r'text_encoder.projector.bn.'),
    (r'^text_projector\.linear_out\.', r'text_encoder.projector.linear2.'),
    (r'^text_encoder\.transformer\.resblocks\.(\d+)\.attn\.in_proj_', r'text_encoder.blocks.\1.attn.qkv.'),  # noqa: E501
    (r'^text_encoder\.transformer\.resblocks\.(\d+)\.attn\.out_proj\.', r'text_encoder.blocks.\1.attn.proj.'),  # noqa: E501
    (r'^text_encoder\.transformer\.resblocks\.(\d+)\.ln_1\.', r'text_encoder.blocks.\1.norm1.'),  # noqa: E501
    (r'^text_encoder\.transformer\.resblocks\.(\d+)\.ln_2\.', r'text_encoder.blocks.\1.norm2.'),  # noqa: E501
    (r'^text_encoder\.transformer\.resblocks\.(\d+)\.mlp\.c_fc\.', r'text_encoder.blocks.\1.mlp.fc1.'),  # noqa: E501
    (r'^text_encoder\.transformer\.resblocks\.(\d+)\.mlp\.c_proj\.', r'text_encoder.blocks.\1.mlp.fc2.'),  # noqa: E501
    (r'^text_encoder\.ln_final\.', r'text_encoder.final_norm.'),
    (r'^text_encoder\.', r'text_encoder.'),
    (r'^logit_scale$', r'decode_head.logit_scale'),
]
# Training-only tensors of the original with no inference role.
NVLABS_DROPPED = ('multi_label_logit_scale', )

HF_RULES: List[Tuple[str, str]] = [
    (r'^vision_model\.embeddings\.position_embeddings$', r'image_encoder.pos_embed'),  # noqa: E501
    (r'^vision_model\.embeddings\.patch_embeddings\.projection\.', r'image_encoder.patch_embed.proj.'),  # noqa: E501
    (r'^vision_model\.embeddings\.layernorm\.', r'image_encoder.patch_embed.norm.'),  # noqa: E501
    (r'^vision_model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.layer_norm(\d)\.', r'image_encoder.stages.\1.blocks.\2.norm\3.'),  # noqa: E501
    (r'^vision_model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.self_attn\.qkv\.', r'image_encoder.stages.\1.blocks.\2.attn.qkv.'),  # noqa: E501
    (r'^vision_model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.self_attn\.out_proj\.', r'image_encoder.stages.\1.blocks.\2.attn.proj.'),  # noqa: E501
    (r'^vision_model\.encoder\.stages\.(\d+)\.layers\.(\d+)\.mlp\.', r'image_encoder.stages.\1.blocks.\2.mlp.'),  # noqa: E501
    (r'^vision_model\.encoder\.stages\.(\d+)\.downsample\.pre_assign_attn\.attn\.out_proj\.', r'image_encoder.stages.\1.grouping.pre_assign_attn.attn.proj.'),  # noqa: E501
    (r'^vision_model\.encoder\.stages\.(\d+)\.downsample\.', r'image_encoder.stages.\1.grouping.'),  # noqa: E501
    (r'^vision_model\.encoder\.stages\.(\d+)\.group_projector\.0\.', r'image_encoder.stages.\1.group_projector.norm.'),  # noqa: E501
    (r'^vision_model\.encoder\.stages\.(\d+)\.group_projector\.1\.', r'image_encoder.stages.\1.group_projector.mlp.'),  # noqa: E501
    (r'^vision_model\.encoder\.stages\.(\d+)\.group_token$', r'image_encoder.stages.\1.group_token'),  # noqa: E501
    (r'^vision_model\.layernorm\.', r'image_encoder.norm.'),
    (r'^visual_projection\.0\.', r'image_encoder.projector.linear1.'),
    (r'^visual_projection\.1\.', r'image_encoder.projector.bn.'),
    (r'^visual_projection\.3\.', r'image_encoder.projector.linear2.'),
    (r'^text_model\.embeddings\.token_embedding\.', r'text_encoder.token_embedding.'),  # noqa: E501
    (r'^text_model\.embeddings\.position_embedding\.weight$', r'text_encoder.positional_embedding'),  # noqa: E501
    (r'^text_model\.encoder\.layers\.(\d+)\.layer_norm(\d)\.', r'text_encoder.blocks.\1.norm\2.'),  # noqa: E501
    (r'^text_model\.encoder\.layers\.(\d+)\.self_attn\.qkv\.', r'text_encoder.blocks.\1.attn.qkv.'),  # noqa: E501
    (r'^text_model\.encoder\.layers\.(\d+)\.self_attn\.out_proj\.', r'text_encoder.blocks.\1.attn.proj.'),  # noqa: E501
    (r'^text_model\.encoder\.layers\.(\d+)\.mlp\.', r'text_encoder.blocks.\1.mlp.'),  # noqa: E501
    (r'^text_model\.final_layer_norm\.', r'text_encoder.final_norm.'),
    (r'^text_projection\.0\.', r'text_encoder.projector.linear1.'),
    (r'^text_projection\.1\.', r'text_encoder.projector.bn.'),
    (r'^text_projection\.3\.', r'text_encoder.projector.linear2.'),
    (r'^logit_scale$', r'decode_head.logit_scale'),
]
# Buffers some transformers versions save that carry no weights.
HF_DROPPED = ('text_model.embeddings.position_ids', )

_HF_QKV = re.compile(r'^(.*)\.self_attn\.([qkv])_proj\.(weight|bias)$')


def _apply_rules(state: Dict[str, torch.Tensor], rules, dropped,
                 source: str) -> Dict[str, torch.Tensor]:
    compiled = [(re.compile(p), r) for p, r in rules]
    out, unknown = {}, []
    for key, value in state.items():
        if key in dropped:
            continue
        for pattern, repl in compiled:
            if pattern.match(key):
                out[pattern.sub(repl, key)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f'{len(unknown)} key(s) of the {source} checkpoint have no place '
            f'in GroupViT: {unknown[:5]}{" ..." * (len(unknown) > 5)}. Is it '
            f'a GroupViT checkpoint?')
    return out


def convert_nvlabs(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Convert the ``model`` state dict of an NVlabs checkpoint.

    1x1 ``Conv1d`` projector kernels ``[out, in, 1]`` become linear weights.
    """
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    out = _apply_rules(state, NVLABS_RULES, NVLABS_DROPPED, 'NVlabs')
    for key, value in out.items():
        if '.projector.linear' in key and value.dim() == 3:
            out[key] = value[..., 0]
    return out


def convert_hf(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Convert a transformers ``GroupViTModel`` state dict: split q/k/v
    projections are stacked into one ``qkv`` (rows q, k, v)."""
    fused, rest = {}, {}
    for key, value in state.items():
        match = _HF_QKV.match(key)
        if match and '.downsample.' not in key:
            prefix, which, kind = match.groups()
            fused.setdefault((prefix, kind), {})[which] = value
        else:
            rest[key] = value
    for (prefix, kind), parts in fused.items():
        if set(parts) != {'q', 'k', 'v'}:
            raise CheckpointError(
                f'{prefix}.self_attn is missing the '
                f'{sorted({"q", "k", "v"} - set(parts))} projection(s); the '
                f'checkpoint is incomplete.')
        rest[f'{prefix}.self_attn.qkv.{kind}'] = torch.cat(
            [parts['q'], parts['k'], parts['v']])
    return _apply_rules(rest, HF_RULES, HF_DROPPED, 'transformers')


def convert_state_dict(layout: str,
                       state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Convert a state dict of the given layout (``nvlabs``, ``hf`` or
    ``mmseg``, which is returned as is)."""
    if layout == 'nvlabs':
        return convert_nvlabs(state)
    if layout == 'hf':
        return convert_hf(state)
    if layout == 'mmseg':
        return dict(state)
    raise ValueError(f'Unknown checkpoint layout {layout}.')
