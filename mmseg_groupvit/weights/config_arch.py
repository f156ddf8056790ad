# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Architecture declared by a checkpoint's own config (transformers
``config.json`` or the NVlabs model section)."""
from typing import Optional

VISION_FIELDS = ('hidden_size', 'intermediate_size', 'depths',
                 'num_group_tokens', 'num_output_groups',
                 'num_attention_heads', 'image_size', 'patch_size',
                 'num_channels', 'hidden_act', 'layer_norm_eps', 'dropout',
                 'attention_dropout', 'assign_eps', 'assign_mlp_ratio')
TEXT_FIELDS = ('vocab_size', 'hidden_size', 'intermediate_size',
               'num_hidden_layers', 'num_attention_heads',
               'max_position_embeddings', 'hidden_act', 'layer_norm_eps',
               'dropout', 'attention_dropout', 'eos_token_id')


def arch_from_hf_config(config: dict) -> dict:
    """Constructor arguments from a transformers ``GroupViTConfig`` dict.

    Fields the file omits keep their transformers defaults (ours are the
    same), so they are left out here.
    """
    vision = config.get('vision_config') or {}
    text = config.get('text_config') or {}
    for name, section in (('vision_config', vision), ('text_config', text)):
        if not isinstance(section, dict):
            raise TypeError(f'"{name}" is a {type(section).__name__}, not '
                            f'an object of fields')
    projection = {
        k: config[k]
        for k in ('projection_dim', 'projection_intermediate_dim')
        if k in config
    }
    return dict(
        image_encoder=dict(
            {k: vision[k]
             for k in VISION_FIELDS if k in vision}, **projection),
        text_encoder=dict({k: text[k]
                           for k in TEXT_FIELDS if k in text}, **projection))


def arch_from_nvlabs_config(config) -> Optional[dict]:
    """Constructor arguments from an NVlabs config (the ``model`` section
    of ``configs/*.yml``, or a dict holding it under ``model``).

    Returns None when the config has no ``img_encoder`` section.
    """
    model = config.get('model', config) if hasattr(config, 'get') else None
    if model is None or 'img_encoder' not in model:
        return None
    img, txt = model['img_encoder'], model.get('text_encoder', {})
    heads = list(img.get('num_heads', []))
    if heads and len(set(heads)) != 1:
        raise ValueError(f'Stages with different head counts {heads} are '
                         f'not supported.')
    image = dict(
        hidden_size=img.get('embed_dim'),
        depths=list(img['depths']) if 'depths' in img else None,
        num_group_tokens=list(img['num_group_tokens'])
        if 'num_group_tokens' in img else None,
        num_output_groups=list(img['num_output_groups'])
        if 'num_output_groups' in img else None,
        num_attention_heads=heads[0] if heads else None,
        image_size=img.get('img_size'),
        patch_size=img.get('patch_size'),
        num_channels=img.get('in_chans'),
        projection_dim=model.get('output_dim'))
    if 'embed_dim' in img and 'mlp_ratio' in img:
        image['intermediate_size'] = int(img['embed_dim'] * img['mlp_ratio'])
    text = dict(
        hidden_size=txt.get('width'),
        num_hidden_layers=txt.get('layers'),
        max_position_embeddings=txt.get('context_length'),
        vocab_size=txt.get('vocab_size'),
        projection_dim=model.get('output_dim'))
    return dict(
        image_encoder={
            k: v
            for k, v in image.items() if v is not None
        },
        text_encoder={
            k: v
            for k, v in text.items() if v is not None
        })
