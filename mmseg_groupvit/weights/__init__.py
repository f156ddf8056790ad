# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Reading published GroupViT checkpoints and converting them to this
package's keys."""
from .arch import DEFAULT_ARCH, arch_diff, infer_arch
from .check import check_state_dict
from .checkpoint_loader import load_from_local, trust_checkpoint
from .convert import convert_hf, convert_nvlabs, convert_state_dict
from .io import CheckpointError, load_source_checkpoint, read_safetensors

__all__ = [
    'DEFAULT_ARCH', 'arch_diff', 'infer_arch', 'convert_hf', 'convert_nvlabs',
    'convert_state_dict', 'CheckpointError', 'load_source_checkpoint',
    'read_safetensors', 'check_state_dict', 'load_from_local',
    'trust_checkpoint'
]
