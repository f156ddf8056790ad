# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The NVlabs key conversion without the reference fixture.

A transformers ``GroupViTModel`` of the small test architecture gives the names
and shapes of every tensor; each element gets its own integer value. The same
tensors are laid out the NVlabs way by the inverse of the key table of
transformers' ``convert_groupvit_nvlab_to_hf.py``, written out here
independently of :mod:`mmseg_groupvit.weights.convert`. Converting the NVlabs
dict must put every tensor exactly where converting the transformers dict puts
it (the transformers path is pinned numerically against transformers itself in
``tests/test_models/test_parity_transformers.py``), and the result must be the
model's state dict, key for key and shape for shape.
"""
import re

import pytest
import torch

from mmseg_groupvit.weights.convert import convert_hf, convert_nvlabs
from tests.conftest import SMALL_ARCH, build_small_segmentor

transformers = pytest.importorskip('transformers')

VISION, TEXT = SMALL_ARCH['image_encoder'], SMALL_ARCH['text_encoder']
HF_CONFIG = dict(
    vision_config=dict(
        hidden_size=VISION['hidden_size'],
        intermediate_size=VISION['intermediate_size'],
        depths=VISION['depths'],
        num_hidden_layers=sum(VISION['depths']),
        num_group_tokens=VISION['num_group_tokens'],
        # transformers wants one entry per stage; the last is unused.
        num_output_groups=VISION['num_output_groups'] +
        VISION['num_output_groups'][-1:],
        num_attention_heads=VISION['num_attention_heads']),
    text_config=dict(
        hidden_size=TEXT['hidden_size'],
        intermediate_size=TEXT['intermediate_size'],
        num_hidden_layers=TEXT['num_hidden_layers'],
        num_attention_heads=TEXT['num_attention_heads']),
    projection_dim=VISION['projection_dim'],
    projection_intermediate_dim=VISION['projection_intermediate_dim'])

# transformers key -> NVlabs key (first match wins), the inverse of
# transformers' convert_groupvit_nvlab_to_hf.py.
_STAGE = r'^vision_model\.encoder\.stages\.(\d+)\.'
_TEXT = r'^text_model\.encoder\.layers\.(\d+)\.'
HF_TO_NVLABS = [
    (r'^vision_model\.embeddings\.position_embeddings$',
     'img_encoder.pos_embed'),
    (r'^vision_model\.embeddings\.patch_embeddings\.projection\.',
     'img_encoder.patch_embed.proj.'),
    (r'^vision_model\.embeddings\.layernorm\.',
     'img_encoder.patch_embed.norm.'),
    (_STAGE + r'group_token$', r'img_encoder.layers.\1.group_token'),
    (_STAGE + r'layers\.(\d+)\.layer_norm(\d)\.',
     r'img_encoder.layers.\1.blocks.\2.norm\3.'),
    (_STAGE + r'layers\.(\d+)\.self_attn\.out_proj\.',
     r'img_encoder.layers.\1.blocks.\2.attn.proj.'),
    (_STAGE + r'layers\.(\d+)\.mlp\.',
     r'img_encoder.layers.\1.blocks.\2.mlp.'),
    (_STAGE + r'downsample\.pre_assign_attn\.attn\.out_proj\.',
     r'img_encoder.layers.\1.downsample.pre_assign_attn.attn.proj.'),
    (_STAGE + r'downsample\.', r'img_encoder.layers.\1.downsample.'),
    (_STAGE + r'group_projector\.', r'img_encoder.layers.\1.group_projector.'),
    (r'^vision_model\.layernorm\.', 'img_encoder.norm.'),
    (r'^text_model\.embeddings\.token_embedding\.',
     'text_encoder.token_embedding.'),
    (r'^text_model\.embeddings\.position_embedding\.weight$',
     'text_encoder.positional_embedding'),
    (_TEXT + r'self_attn\.out_proj\.',
     r'text_encoder.transformer.resblocks.\1.attn.out_proj.'),
    (_TEXT + r'layer_norm(\d)\.',
     r'text_encoder.transformer.resblocks.\1.ln_\2.'),
    (_TEXT + r'mlp\.fc1\.',
     r'text_encoder.transformer.resblocks.\1.mlp.c_fc.'),
    (_TEXT + r'mlp\.fc2\.',
     r'text_encoder.transformer.resblocks.\1.mlp.c_proj.'),
    (r'^text_model\.final_layer_norm\.', 'text_encoder.ln_final.'),
    (r'^visual_projection\.0\.', 'img_projector.linear_hidden.0.'),
    (r'^visual_projection\.1\.', 'img_projector.linear_hidden.1.'),
    (r'^visual_projection\.3\.', 'img_projector.linear_out.'),
    (r'^text_projection\.0\.', 'text_projector.linear_hidden.0.'),
    (r'^text_projection\.1\.', 'text_projector.linear_hidden.1.'),
    (r'^text_projection\.3\.', 'text_projector.linear_out.'),
    (r'^logit_scale$', 'logit_scale'),
]
# Attention projections NVlabs keeps fused (rows q, k, v); the grouping
# blocks' attention keeps them apart in both layouts.
_SPLIT_QKV = re.compile(r'^(.*)\.self_attn\.([qkv])_proj\.(weight|bias)$')


def distinct_values(state):
    """Every element of every tensor a different integer (exact in float32
    below 2**24), so a tensor in the wrong place, transposed or mixed up
    with another of the same shape cannot compare equal."""
    out, start = {}, 1
    for key, value in state.items():
        n = value.numel()
        values = torch.randperm(n) + start
        out[key] = values.reshape(value.shape).to(value.dtype)
        start += n
    assert start < 2**24
    return out


def hf_to_nvlabs(hf_state):
    """Lay a transformers state dict out as an NVlabs ``model`` dict, by
    the table above."""
    nv, qkv = {}, {}
    for key, value in hf_state.items():
        split = _SPLIT_QKV.match(key)
        if split and '.downsample.' not in key:
            qkv.setdefault((split[1], split[3]), {})[split[2]] = value
            continue
        for pattern, repl in HF_TO_NVLABS:
            if re.match(pattern, key):
                nv[re.sub(pattern, repl, key)] = value
                break
        else:
            raise AssertionError(f'no NVlabs key for {key}')
    for (prefix, kind), parts in qkv.items():
        fused = torch.cat([parts['q'], parts['k'], parts['v']])
        match = re.match(_TEXT, prefix + '.')
        if match:
            name = 'in_proj_weight' if kind == 'weight' else 'in_proj_bias'
            nv[f'text_encoder.transformer.resblocks.{match[1]}.attn.'
               f'{name}'] = fused
        else:
            stage, block = re.match(_STAGE + r'layers\.(\d+)\.$',
                                    prefix + '.').groups()
            nv[f'img_encoder.layers.{stage}.blocks.{block}.attn.qkv.'
               f'{kind}'] = fused
    # The projectors are 1x1 Conv1d in NVlabs.
    for key in list(nv):
        if re.match(r'^(img|text)_projector\.linear_(hidden\.0|out)\.weight$',
                    key):
            nv[key] = nv[key][..., None]
    nv['multi_label_logit_scale'] = torch.tensor(-1.)  # training only
    return nv


@pytest.fixture(scope='module')
def layouts():
    torch.manual_seed(0)
    hf = transformers.GroupViTModel(transformers.GroupViTConfig(**HF_CONFIG))
    hf_state = distinct_values(hf.state_dict())
    return hf_state, hf_to_nvlabs(hf_state)


def test_nvlabs_tensors_land_where_transformers_puts_them(layouts):
    hf_state, nv_state = layouts
    # Not vacuous: the NVlabs dict has the NVlabs layout and size.
    assert any(k.endswith('.attn.qkv.weight') for k in nv_state)
    assert nv_state['img_projector.linear_hidden.0.weight'].dim() == 3
    assert len(nv_state) == len(hf_state) - 4 * (sum(VISION['depths']) +
                                                 TEXT['num_hidden_layers']) + 1

    from_nvlabs = convert_nvlabs(nv_state)
    from_hf = convert_hf(hf_state)
    # The training-only temperature is kept (transformers has none).
    assert from_nvlabs.pop('multi_label_logit_scale') == -1.
    assert sorted(from_nvlabs) == sorted(from_hf)
    wrong = [
        key for key in from_nvlabs
        if not torch.equal(from_nvlabs[key], from_hf[key])
    ]
    assert not wrong, f'{len(wrong)} tensor(s) misplaced: {wrong[:5]}'


def test_converted_nvlabs_dict_is_the_models_state_dict(layouts):
    converted = convert_nvlabs(layouts[1])
    del converted['multi_label_logit_scale']  # training only
    expected = {
        key: tuple(value.shape)
        for key, value in build_small_segmentor().state_dict().items()
    }
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
