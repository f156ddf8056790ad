# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Reading published GroupViT checkpoints and converting them to this
package's keys."""
from .arch import DEFAULT_ARCH, arch_diff, infer_arch
from .check import check_state_dict
from .checkpoint_loader import load_from_local, trust_checkpoint
from .convert import convert_hf, convert_nvlabs, convert_state_dict
from .download import resolve_checkpoint
from .io import CheckpointError, load_source_checkpoint, read_safetensors
from .sources import apply_checkpoint_arch, resolve_load_from

__all__ = [
    'DEFAULT_ARCH', 'arch_diff', 'infer_arch', 'convert_hf', 'convert_nvlabs',
    'convert_state_dict', 'CheckpointError', 'load_source_checkpoint',
    'read_safetensors', 'check_state_dict', 'load_from_local',
    'trust_checkpoint', 'resolve_checkpoint', 'apply_checkpoint_arch',
    'resolve_load_from'
]
