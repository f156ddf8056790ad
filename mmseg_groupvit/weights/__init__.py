# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Published GroupViT checkpoints: fetched, read safely (only through
:func:`.safe_load.read_file`), converted to this package's keys, checked
against the model. Importing it registers mmengine's loader."""
from .arch import infer_arch
from .check import check_state_dict
from .checkpoint_loader import fetch, resolve_load_from
from .convert_checkpoint import load_source_checkpoint
from .safe_load import read_file, trust_checkpoint

__all__ = [
    'infer_arch', 'check_state_dict', 'fetch', 'resolve_load_from',
    'load_source_checkpoint', 'read_file', 'trust_checkpoint'
]
