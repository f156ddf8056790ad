# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""A GroupViT checkpoint's architecture (the encoders' constructor
arguments) from its tensor shapes or config, and each field's rule."""
import inspect
import math
import re
from collections.abc import Sequence
from numbers import Real
from typing import Dict, List, Optional

import torch

from groupvit_common.checks import is_int
from groupvit_common.errors import CheckpointError, shown

PARTS = ('image_encoder', 'text_encoder')
_COMMON = ('hidden_size', 'intermediate_size', 'num_attention_heads',
           'hidden_act', 'layer_norm_eps', 'dropout', 'attention_dropout',
           'projection_dim', 'projection_intermediate_dim')
#: The constructor arguments that make an encoder's architecture.
FIELDS = dict(
    image_encoder=_COMMON +
    ('depths', 'num_group_tokens', 'num_output_groups', 'image_size',
     'patch_size', 'num_channels', 'assign_eps', 'assign_mlp_ratio'),
    text_encoder=_COMMON + ('vocab_size', 'num_hidden_layers',
                            'max_position_embeddings', 'eos_token_id'))
HEADS = 'num_attention_heads'  # the one field no tensor shape tells


def _real(low, high=math.inf, low_open=True):
    return lambda v: (
        isinstance(v, Real) and not isinstance(v, bool) and
        (low < v if low_open else low <= v) and v < high)


def _ints(low=1):
    return lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(
        is_int(n) and n >= low for n in v)


_RULES = dict(
    depths=(_ints(), 'a list of positive integers'),
    num_group_tokens=(_ints(0), 'a list of integers >= 0'),
    num_output_groups=(_ints(), 'a list of positive integers'),
    eos_token_id=(lambda v: is_int(v) and v >= 0, 'an integer >= 0'),
    layer_norm_eps=(_real(0, 1), 'a small positive number, e.g. 1e-05'),
    dropout=(_real(0, 1, False), 'a number in [0, 1)'),
    attention_dropout=(_real(0, 1, False), 'a number in [0, 1)'),
    assign_eps=(_real(0), 'a positive number (the released models use 1.0)'),
    assign_mlp_ratio=(lambda v: isinstance(v, (list, tuple)) and len(v) == 2
                      and all(map(_real(0), v)), 'two positive numbers'))


def check_arch(arch, source: str) -> None:
    """Raise :class:`CheckpointError` naming ``source`` for what of ``arch``
    (``{part: {field: value}}``, maybe from a file) no model can be built
    with."""
    from ..models.layers.fast_linear import ACTIVATIONS
    if not isinstance(arch, dict):
        raise CheckpointError(
            f'{source}: the architecture is a {type(arch).__name__}, not a '
            f'dict of {list(PARTS)}; the file is damaged.')
    for part, values in arch.items():
        fields = FIELDS.get(part) if isinstance(part, str) else None
        if fields is None or not isinstance(values, dict):
            raise CheckpointError(
                f'{source}: {shown(part)} is not an architecture part (a '
                f'dict of fields); the known ones are {list(PARTS)}.')
        unknown = [k for k in values if k not in fields]
        if unknown:
            raise CheckpointError(
                f'{source}: {part}: unknown architecture field(s) '
                f'[{", ".join(sorted(map(shown, unknown[:5])))}]; the known '
                f'ones are {sorted(fields)}.')
        for key, value in values.items():
            check, rule = _RULES.get(
                key, (lambda v: is_int(v) and v > 0, 'a positive integer'))
            if key == 'hidden_act':
                check = (lambda v: isinstance(v, str) and v in ACTIVATIONS)
                rule = f'one of {sorted(ACTIVATIONS)}'
            elif key == HEADS:
                width = values.get('hidden_size')
                check = (lambda v: is_int(v) and v > 0 and not (is_int(
                    width) and width > 0 and width % v))
                rule = (f'a positive integer dividing {part}.hidden_size '
                        f'({width})')
            if not check(value):
                raise CheckpointError(f'{source}: {part}.{key}={shown(value)}'
                                      f' cannot work: it must be {rule}.')


def _plain(value, name: str):
    """A sequence (a trusted file's ``ListConfig``) as a list; a number,
    string or None as it is; else ``TypeError``."""
    if value is None or isinstance(value, (str, Real)):
        return value
    if isinstance(value, Sequence):
        return list(value)
    raise TypeError(f'{name} is a {type(value).__name__}, not a list or a '
                    f'number')


def released_arch() -> dict:
    """The constructors' defaults, which are the released models'."""
    from mmseg.registry import MODELS
    arch = {}
    for part, name in zip(PARTS, ('GroupViT', 'GroupViTTextEncoder')):
        params = inspect.signature(MODELS.get(name)).parameters
        arch[part] = {k: params[k].default for k in FIELDS[part]}
    return canonical(arch)


def canonical(arch: dict, fill: Optional[dict] = None) -> dict:
    """``arch`` (plus the fields of ``fill`` it lacks) in one form: lists,
    ``num_output_groups`` cut to the grouping stages, sorted fields."""
    out = {}
    for part in sorted(arch):
        values = dict((fill or {}).get(part, {}), **arch[part])
        values = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in values.items()
        }
        if isinstance(values.get('num_output_groups'), list):
            groups = sum(1 for n in values.get('num_group_tokens', []) if n)
            values['num_output_groups'] = values['num_output_groups'][:groups]
        out[part] = {k: values[k] for k in sorted(values)}
    return out


def arch_diff(expected: dict,
              actual: dict,
              ignore=(),
              says=('expected', 'got')) -> List[str]:
    """``"part.field: expected X, got Y"`` (``says``: the two words) for
    the fields both set differently, each side :func:`canonical` filled
    with the other's fields."""
    lines = []
    for part in sorted(set(expected) | set(actual)):
        one, other = expected.get(part, {}), actual.get(part, {})
        exp = canonical({part: one}, {part: other})[part]
        act = canonical({part: other}, {part: one})[part]
        lines += [
            f'{part}.{k}: {says[0]} {shown(exp[k])}, {says[1]} '
            f'{shown(act[k])}' for k in sorted(set(one) & set(other))
            if exp[k] != act[k] and f'{part}.{k}' not in ignore
        ]
    return lines


def _count(state: Dict[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state for m in [regex.match(k)] if m})


def infer_arch(state: Dict[str, torch.Tensor]) -> dict:
    """The fields (not the head counts) the tensor shapes of a state dict
    in this package's keys tell; ``KeyError`` for a missing tensor."""
    arch = {}
    img, txt = ({
        k[len(part) + 1:]: v.shape
        for k, v in state.items() if k.startswith(part + '.')
    } for part in PARTS)
    if img:
        hidden = img['pos_embed'][-1]
        patch = img['patch_embed.proj.weight'][-1]
        stages = range(_count(img, r'stages\.(\d+)\.'))
        arch['image_encoder'] = dict(
            hidden_size=hidden,
            intermediate_size=img['stages.0.blocks.0.mlp.fc1.weight'][0],
            depths=[
                _count(img, rf'stages\.{i}\.blocks\.(\d+)\.') for i in stages
            ],
            num_group_tokens=[
                img.get(f'stages.{i}.group_token', [0, 0])[1] for i in stages
            ],
            num_output_groups=[
                img[f'stages.{i}.grouping.mlp_inter.fc2.weight'][0]
                for i in stages
                if f'stages.{i}.grouping.mlp_inter.fc2.weight' in img
            ],
            image_size=math.isqrt(img['pos_embed'][1]) * patch,
            patch_size=patch,
            num_channels=img['patch_embed.proj.weight'][1])
        if hidden and 'stages.0.grouping.mlp_inter.fc1.weight' in img:
            ratios = [
                img[f'stages.0.grouping.mlp_{name}.fc1.weight'][0] / hidden
                for name in ('inter', 'channels')
            ]
            arch['image_encoder']['assign_mlp_ratio'] = [
                int(r) if r == int(r) else r for r in ratios
            ]
        if 'projector.linear1.weight' in img:
            arch['image_encoder'].update(
                projection_dim=img['projector.linear2.weight'][0],
                projection_intermediate_dim=img['projector.linear1.weight'][0])
    if txt:
        arch['text_encoder'] = dict(
            vocab_size=txt['token_embedding.weight'][0],
            hidden_size=txt['token_embedding.weight'][1],
            intermediate_size=txt['blocks.0.mlp.fc1.weight'][0],
            num_hidden_layers=_count(txt, r'blocks\.(\d+)\.'),
            max_position_embeddings=txt['positional_embedding'][0],
            projection_dim=txt['projector.linear2.weight'][0],
            projection_intermediate_dim=txt['projector.linear1.weight'][0])
    return arch


def arch_from_hf_config(config: dict) -> dict:
    """The fields a transformers ``GroupViTConfig`` dict sets."""
    shared = {k: v for k, v in config.items() if k.startswith('projection_')}
    arch = {}
    for part, name in zip(PARTS, ('vision_config', 'text_config')):
        section = config.get(name) or {}
        if not isinstance(section, dict):
            raise TypeError(f'"{name}" is a {type(section).__name__}, not '
                            f'an object of fields')
        section = dict(section, **shared)
        arch[part] = {k: section[k] for k in FIELDS[part] if k in section}
    return arch


# Our field names -> the NVlabs config's.
_NV_IMAGE = (('hidden_size', 'embed_dim'), ('depths', 'depths'),
             ('num_group_tokens', 'num_group_tokens'), ('num_output_groups',
                                                        'num_output_groups'),
             ('image_size', 'img_size'), ('patch_size', 'patch_size'),
             ('num_channels', 'in_chans'))
_NV_TEXT = (('hidden_size', 'width'), ('num_hidden_layers', 'layers'),
            ('max_position_embeddings', 'context_length'), ('vocab_size',
                                                            'vocab_size'))


def arch_from_nvlabs_config(config) -> Optional[dict]:
    """The fields an NVlabs config (or its ``model`` section) sets; None
    without an ``img_encoder``."""
    model = config.get('model', config) if hasattr(config, 'get') else None
    if not hasattr(model, 'get') or 'img_encoder' not in model:
        return None
    img, txt = model['img_encoder'], model.get('text_encoder', {})
    if not (hasattr(img, 'get') and hasattr(txt, 'get')):
        raise TypeError('img_encoder or text_encoder is not a section')
    heads = _plain(img.get('num_heads', []), 'img_encoder.num_heads')
    if not (isinstance(heads, list) and all(map(is_int, heads))):
        raise TypeError(f'img_encoder.num_heads={shown(heads)} is not a list '
                        f'of integers')
    if len(set(heads)) > 1:
        raise ValueError(f'Stages with different head counts {heads} are '
                         f'not supported.')
    image = {
        ours: _plain(img[theirs], f'img_encoder.{theirs}')
        for ours, theirs in _NV_IMAGE if theirs in img
    }
    if heads:
        image[HEADS] = heads[0]
    if 'embed_dim' in img and 'mlp_ratio' in img:
        dim, ratio = img['embed_dim'], img['mlp_ratio']
        if not (_real(0, 2**31)(dim) and _real(0, 2**31)(ratio)):
            raise ValueError(f'img_encoder.embed_dim={shown(dim)} and '
                             f'mlp_ratio={shown(ratio)} must be positive '
                             f'numbers')
        image['intermediate_size'] = int(dim * ratio)
    text = {ours: txt[theirs] for ours, theirs in _NV_TEXT if theirs in txt}
    if 'output_dim' in model:
        image['projection_dim'] = text['projection_dim'] = model['output_dim']
    return dict(image_encoder=image, text_encoder=text)
