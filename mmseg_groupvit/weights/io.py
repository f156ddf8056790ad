# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Safe reading of GroupViT checkpoints in their published forms.

Nothing here unpickles arbitrary objects: ``.pth`` / ``.bin`` files are read
with ``torch.load(weights_only=True)``, which only rebuilds tensors and plain
containers, and ``.safetensors`` files hold no code at all. The released
NVlabs checkpoints also pickle an OmegaConf config object; loading such a file
is still read safely: the few OmegaConf classes such a file names are mapped,
for the unpickler, to inert placeholders (:class:`InertConfigNode`) that only
store their state, and the config is turned into plain dicts and lists. No
OmegaConf code runs, and ``omegaconf`` need not be installed. Any other class
is refused with an explanation unless the caller passes
``trust_pickle=True`` (only for files from a source you trust: full
unpickling can run code).
"""
import json
import os.path as osp
import pickle
import re
import zipfile
from collections import defaultdict
from typing import Dict, Optional, Tuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors_file

HF_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
# Key prefixes of this package's checkpoints (tools/convert_weights.py).
MMSEG_PREFIXES = ('image_encoder.', 'text_encoder.', 'decode_head.')


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the reason and the fix."""


class InertConfigNode:
    """Stands in for an OmegaConf object while unpickling: it runs no code
    and keeps the pickled state, which :func:`to_plain` reads."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__['pickled_state'] = state


# Globals pickled with an OmegaConf config (checked on a file saved with
# omegaconf 2.3), each mapped to an inert placeholder.
_OMEGACONF_NAMES = ('omegaconf.dictconfig.DictConfig',
                    'omegaconf.listconfig.ListConfig',
                    'omegaconf.nodes.AnyNode', 'omegaconf.base.Metadata',
                    'omegaconf.base.ContainerMetadata', 'typing.Any')
NVLABS_SAFE_GLOBALS = [
    (type(name.rsplit('.', 1)[1], (InertConfigNode, ), {}), name)
    for name in _OMEGACONF_NAMES
] + [dict, list, int, defaultdict]


def to_plain(obj):
    """Turn unpickled :class:`InertConfigNode` trees into dicts and lists."""
    if isinstance(obj, InertConfigNode):
        state = obj.__dict__.get('pickled_state') or {}
        if '_content' in state:
            return to_plain(state['_content'])
        return to_plain(state.get('_val'))
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def read_safetensors(path: str) -> Dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file with the ``safetensors`` package.

    Args:
        path (str): File path.

    Returns:
        dict[str, Tensor]: The tensors, on the CPU.

    Raises:
        CheckpointError: A missing or malformed file (a header that is not
            a JSON object of tensor entries, a missing or unknown dtype,
            negative, reversed or overlapping ``data_offsets``, a shape
            that does not fit its bytes, a truncated buffer), naming the
            file and the problem.
    """
    if not osp.isfile(path):
        raise CheckpointError(f'Checkpoint not found: {path}.')
    try:
        return load_safetensors_file(path, device='cpu')
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f'{path} is not a valid safetensors file ({_first_line(e)}); it '
            f'may be truncated or corrupt. Download it again.') from e


def torch_load(path: str, trust_pickle: bool = False):
    """``torch.load`` on CPU, tensors and containers only unless trusted.

    Raises:
        CheckpointError: Missing, truncated or refused files, with the fix.
    """
    if not osp.isfile(path):
        raise CheckpointError(
            f'Checkpoint not found: {path}. Check the path, or download the '
            f'GroupViT weights (see README, "Checkpoints").')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'Checkpoint {path} is empty (0 bytes); the '
                              f'download probably failed. Download it again.')
    try:
        if trust_pickle:
            return torch.load(path, map_location='cpu', weights_only=False)
        try:
            return torch.load(path, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError as e:
            if 'omegaconf' not in str(e):
                raise
            with torch.serialization.safe_globals(NVLABS_SAFE_GLOBALS):
                state = torch.load(path, map_location='cpu', weights_only=True)
            if isinstance(state, dict) and 'config' in state:
                state['config'] = to_plain(state['config'])
            return state
    except pickle.UnpicklingError as e:
        if 'weights_only' in str(e) or 'Unsupported global' in str(e):
            raise CheckpointError(
                f'{path} contains pickled Python objects besides tensors '
                f'that the safe loader does not know (it accepts the '
                f'OmegaConf config of the released NVlabs checkpoints): '
                f'{_refused_global(e)}. '
                f'If you trust the file\'s source, convert it with '
                f'--trust-pickle (tools/convert_weights.py), which unpickles '
                f'it fully; this can run code embedded in the file.') from e
        raise CheckpointError(
            f'{path} is not a readable PyTorch checkpoint '
            f'({_first_line(e)}); it may be truncated or of another '
            f'format.') from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(
            f'{path} is not a readable PyTorch checkpoint '
            f'({_first_line(e)}); it is probably truncated or corrupt. '
            f'Download it again.') from e


def _refused_global(e: Exception) -> str:
    match = re.search(r'Unsupported global: GLOBAL ([\w.]+)', str(e))
    return f'refused class {match.group(1)}' if match else _first_line(e)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def read_config_json(path: str) -> dict:
    """Read a JSON config (a transformers ``config.json``, an architecture
    file) that must hold one JSON object.

    Raises:
        CheckpointError: Unreadable JSON, or JSON that is not an object.
    """
    try:
        with open(path, encoding='utf-8') as f:
            config = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f'{path} is not a readable JSON file '
                              f'({_first_line(e)}).') from e
    if not isinstance(config, dict):
        raise CheckpointError(
            f'{path} holds a JSON {type(config).__name__}, not an object of '
            f'config fields: it is not a GroupViT config.')
    return config


def load_source_checkpoint(
        path: str,
        trust_pickle: bool = False) -> Tuple[str, dict, Optional[dict]]:
    """Read a published GroupViT checkpoint.

    Args:
        path (str): An NVlabs ``.pth`` file, a transformers folder (with
            ``config.json`` and ``model.safetensors`` or
            ``pytorch_model.bin``), or one of those weight files directly
            (its ``config.json`` is looked for beside it).
        trust_pickle (bool): Allow full unpickling. Defaults to False.

    Returns:
        tuple: ``(layout, state_dict, config)`` with ``layout`` in
        ``{'nvlabs', 'hf', 'mmseg'}``, the raw state dict, and the
        transformers ``config.json`` dict, the NVlabs ``config`` entry (if
        present) or None.
    """
    config = None
    if osp.isdir(path):
        files = [f for f in HF_WEIGHT_FILES if osp.isfile(osp.join(path, f))]
        if not files:
            raise CheckpointError(
                f'{path} is a folder without {" or ".join(HF_WEIGHT_FILES)}; '
                f'give a transformers GroupViT folder (save_pretrained) or '
                f'an NVlabs .pth file.')
        config_path = osp.join(path, 'config.json')
        path = osp.join(path, files[0])
    else:
        config_path = osp.join(osp.dirname(path), 'config.json')
    if path.endswith('.safetensors'):
        state = read_safetensors(path)
    else:
        state = torch_load(path, trust_pickle)
    if not isinstance(state, dict):
        raise CheckpointError(
            f'{path} holds a {type(state).__name__}, not a state dict; it is '
            f'not a GroupViT checkpoint.')
    if 'model' in state and isinstance(state['model'], dict):
        return 'nvlabs', state['model'], state.get('config')
    if 'state_dict' in state and isinstance(state['state_dict'], dict):
        keys = sorted(map(str, state['state_dict']))
        if not any(k.startswith(MMSEG_PREFIXES) for k in keys):
            raise CheckpointError(
                f'{path} holds the state_dict of another model (keys e.g. '
                f'{keys[:3]}), none of them under {list(MMSEG_PREFIXES)}: '
                f'it is not a GroupViT checkpoint. Give an NVlabs .pth, a '
                f'transformers GroupViT folder, or a checkpoint written by '
                f'tools/convert_weights.py.')
        return 'mmseg', state['state_dict'], state.get('meta')
    if any(str(k).startswith('vision_model.') for k in state):
        if osp.isfile(config_path):
            config = read_config_json(config_path)
        return 'hf', state, config
    if any(str(k).startswith('img_encoder.') for k in state):
        return 'nvlabs', state, None
    raise CheckpointError(
        f'{path} does not look like a GroupViT checkpoint: none of its '
        f'{len(state)} keys (e.g. {sorted(map(str, state))[:3]}) has the '
        f'NVlabs prefix "img_encoder." (under "model") or the transformers '
        f'prefix "vision_model.".')
