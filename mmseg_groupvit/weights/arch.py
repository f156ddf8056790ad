# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Architecture of a GroupViT state dict (in this package's keys), read off
its tensor shapes."""
import math
import numbers
import re
from typing import Dict, List, Optional

import torch

# Constructor arguments of GroupViT / GroupViTTextEncoder for the released
# models (transformers' GroupViTConfig defaults).
DEFAULT_ARCH = dict(
    image_encoder=dict(
        hidden_size=384,
        intermediate_size=1536,
        depths=[6, 3, 3],
        num_group_tokens=[64, 8, 0],
        num_output_groups=[64, 8, 8],
        num_attention_heads=6,
        image_size=224,
        patch_size=16,
        num_channels=3,
        assign_mlp_ratio=[0.5, 4],
        projection_dim=256,
        projection_intermediate_dim=4096),
    text_encoder=dict(
        vocab_size=49408,
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=12,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=256,
        projection_intermediate_dim=4096))

# Fields the tensor shapes cannot tell, at the released models' values (the
# transformers defaults, which are also the constructors' defaults).
UNSHAPED_DEFAULTS = dict(
    image_encoder=dict(
        hidden_act='gelu',
        layer_norm_eps=1e-5,
        dropout=0.0,
        attention_dropout=0.0,
        assign_eps=1.0),
    text_encoder=dict(
        hidden_act='quick_gelu',
        layer_norm_eps=1e-5,
        dropout=0.0,
        attention_dropout=0.0,
        eos_token_id=49407))

# transformers ``hidden_act`` names the layers implement.
ACTIVATIONS = ('gelu', 'gelu_new', 'gelu_pytorch_tanh', 'quick_gelu', 'relu',
               'silu')


def canonical_arch(arch: dict) -> dict:
    """The architecture with every field the shapes cannot tell filled in
    (:data:`UNSHAPED_DEFAULTS`), ``num_output_groups`` cut to the stages
    that group (transformers writes an unused last entry) and fields in
    sorted order: equal models give equal dicts, whichever layout they
    came from."""
    out = {}
    for part in sorted(arch):
        values = dict(UNSHAPED_DEFAULTS.get(part, {}), **arch[part])
        if 'num_output_groups' in values:
            groups = sum(1 for n in values.get('num_group_tokens', []) if n)
            values['num_output_groups'] = list(
                values['num_output_groups'])[:groups]
        out[part] = {k: values[k] for k in sorted(values)}
    return out


def check_arch(arch: dict) -> None:
    """Raise ``ValueError`` for fields no model can be built with: an
    unknown part or field, head counts that are not positive integers
    dividing ``hidden_size``, an unknown ``hidden_act``, a ``layer_norm_eps``
    outside (0, 1), an ``assign_eps`` that is not a positive number.

    Args:
        arch (dict): ``{'image_encoder': {...}, 'text_encoder': {...}}``.
    """
    for part, values in sorted(arch.items()):
        known = set(DEFAULT_ARCH.get(part, {})) | set(
            UNSHAPED_DEFAULTS.get(part, {}))
        unknown = sorted(set(values) - known) if known else [part]
        if unknown:
            raise ValueError(
                f'{part}: unknown architecture field(s) {unknown}; the known '
                f'ones are {sorted(known) or list(DEFAULT_ARCH)}.')
        width = values.get('hidden_size')
        if 'num_attention_heads' in values:
            heads = values['num_attention_heads']
            if (isinstance(heads, bool) or not isinstance(heads, int)
                    or heads < 1
                    or (isinstance(width, int) and width % heads)):
                raise ValueError(
                    f'{part}.num_attention_heads={heads!r} cannot work: it '
                    f'must be a positive integer dividing {part}.hidden_size '
                    f'({width}).')
        if 'hidden_act' in values and values['hidden_act'] not in ACTIVATIONS:
            raise ValueError(
                f'{part}.hidden_act={values["hidden_act"]!r} is not '
                f'supported; expected one of {list(ACTIVATIONS)}.')
        for key, upper, kind in (('layer_norm_eps', 1, 'a small positive '
                                  'number, e.g. 1e-05'),
                                 ('assign_eps', math.inf, 'a positive number '
                                  '(the released models use 1.0)')):
            eps = values.get(key, 1e-5)
            if (isinstance(eps, bool) or not isinstance(eps, numbers.Real)
                    or not 0 < eps < upper):
                raise ValueError(f'{part}.{key}={eps!r} cannot work: it must '
                                 f'be {kind}.')


def _count(state: Dict[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state for m in [regex.match(k)] if m})


def _ratio(value: int, base: int) -> float:
    ratio = value / base
    return int(ratio) if ratio == int(ratio) else ratio


def infer_arch(state: Dict[str, torch.Tensor],
               vision_heads: Optional[int] = None,
               text_heads: Optional[int] = None) -> dict:
    """Infer the constructor arguments from tensor shapes.

    Attention head counts leave no trace in the shapes: pass them when
    known (from a config); otherwise the vision tower is assumed to use
    64-channel heads (6 for the released width 384) and the text tower
    ``width // 64`` heads, the original ``TextTransformer``'s rule.

    Args:
        state (dict[str, Tensor]): State dict with ``image_encoder.`` and
            ``text_encoder.`` keys.
        vision_heads (int, optional): Vision heads.
        text_heads (int, optional): Text heads.

    Returns:
        dict: ``{'image_encoder': {...}, 'text_encoder': {...}}``.
    """
    img = {
        k[len('image_encoder.'):]: v
        for k, v in state.items() if k.startswith('image_encoder.')
    }
    txt = {
        k[len('text_encoder.'):]: v
        for k, v in state.items() if k.startswith('text_encoder.')
    }
    arch = {}
    if img:
        hidden = img['pos_embed'].shape[-1]
        patch = img['patch_embed.proj.weight'].shape[-1]
        num_stages = _count(img, r'stages\.(\d+)\.')
        depths, group_tokens, output_groups = [], [], []
        for i in range(num_stages):
            depths.append(_count(img, rf'stages\.{i}\.blocks\.(\d+)\.'))
            token = img.get(f'stages.{i}.group_token')
            group_tokens.append(0 if token is None else token.shape[1])
            fc2 = img.get(f'stages.{i}.grouping.mlp_inter.fc2.weight')
            if fc2 is not None:
                output_groups.append(fc2.shape[0])
        ratio = [0.5, 4]
        if 'stages.0.grouping.mlp_inter.fc1.weight' in img:
            ratio = [
                _ratio(img['stages.0.grouping.mlp_inter.fc1.weight'].shape[0],
                       hidden),
                _ratio(
                    img['stages.0.grouping.mlp_channels.fc1.weight'].shape[0],
                    hidden)
            ]
        arch['image_encoder'] = dict(
            hidden_size=hidden,
            intermediate_size=img['stages.0.blocks.0.mlp.fc1.weight'].shape[0],
            depths=depths,
            num_group_tokens=group_tokens,
            num_output_groups=output_groups,
            num_attention_heads=vision_heads
            if vision_heads is not None else max(hidden // 64, 1),
            image_size=int(math.isqrt(img['pos_embed'].shape[1])) * patch,
            patch_size=patch,
            num_channels=img['patch_embed.proj.weight'].shape[1],
            assign_mlp_ratio=ratio)
        if 'projector.linear1.weight' in img:
            arch['image_encoder'].update(
                projection_dim=img['projector.linear2.weight'].shape[0],
                projection_intermediate_dim=img['projector.linear1.weight'].
                shape[0])
    if txt:
        width = txt['token_embedding.weight'].shape[1]
        arch['text_encoder'] = dict(
            vocab_size=txt['token_embedding.weight'].shape[0],
            hidden_size=width,
            intermediate_size=txt['blocks.0.mlp.fc1.weight'].shape[0],
            num_hidden_layers=_count(txt, r'blocks\.(\d+)\.'),
            num_attention_heads=text_heads if text_heads is not None else max(
                width // 64, 1),
            max_position_embeddings=txt['positional_embedding'].shape[0],
            projection_dim=txt['projector.linear2.weight'].shape[0],
            projection_intermediate_dim=txt['projector.linear1.weight'].
            shape[0])
    return arch


def arch_diff(expected: dict, actual: dict,
              ignore: List[str] = ()) -> List[str]:
    """Fields that differ between two architecture dicts.

    ``num_output_groups`` is compared only over the stages that group.

    Returns:
        list[str]: ``"part.field: expected X, got Y"`` lines.
    """
    lines = []
    for part in sorted(set(expected) | set(actual)):
        exp, act = expected.get(part, {}), actual.get(part, {})
        for key in sorted(set(exp) & set(act)):
            if f'{part}.{key}' in ignore:
                continue
            a, b = exp[key], act[key]
            a = list(a) if isinstance(a, tuple) else a
            b = list(b) if isinstance(b, tuple) else b
            if key == 'num_output_groups':
                groups = sum(1 for n in exp.get('num_group_tokens', []) if n)
                a, b = list(a)[:groups], list(b)[:groups]
            if a != b:
                lines.append(f'{part}.{key}: expected {a!r}, got {b!r}')
    return lines
