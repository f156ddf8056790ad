# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Reading published GroupViT checkpoints and converting them to this
package's keys.

Importing it registers the safe checkpoint loader with mmengine
(:mod:`.checkpoint_loader`).
"""
from .arch import infer_arch
from .check import check_state_dict
from .checkpoint_loader import trust_checkpoint
from .io import load_source_checkpoint, read_safetensors
from .sources import resolve_load_from

__all__ = [
    'infer_arch', 'load_source_checkpoint', 'read_safetensors',
    'check_state_dict', 'trust_checkpoint', 'resolve_load_from'
]
