# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Safe reading of GroupViT checkpoints in their published forms.

Nothing here unpickles arbitrary objects: ``.pth`` / ``.bin`` files are read
with ``torch.load(weights_only=True)``, which only rebuilds tensors and plain
containers, plus :func:`safe_globals` allowed for that one call (never
process-wide): the OmegaConf config of the released NVlabs checkpoints, whose
few classes are mapped to inert placeholders (:class:`InertConfigNode`) that
only store their state and are turned into plain dicts and lists (no
OmegaConf code runs, and ``omegaconf`` need not be installed), and mmengine's
training state (:mod:`.training_state`). ``.safetensors`` files hold no code
at all. Any other class is refused with an explanation naming it, unless the
caller trusts the file (only for files from a source you trust: full
unpickling can run code).
"""
import hashlib
import io
import json
import os.path as osp
import re
from collections import defaultdict
from typing import Dict, Optional, Tuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors_file

from groupvit_common.errors import CheckpointError
from .training_state import restore_numpy, training_state_globals

HF_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
# Key prefixes of this package's checkpoints (tools/convert_weights.py).
MMSEG_PREFIXES = ('image_encoder.', 'text_encoder.', 'decode_head.')


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


def safe_globals() -> list:
    """Everything besides tensors and plain containers that the safe loader
    rebuilds: the NVlabs release's OmegaConf config (inert placeholders) and
    mmengine's training state (see :mod:`.training_state`). None of it can
    run code chosen by a file.
    """
    return NVLABS_SAFE_GLOBALS + training_state_globals()


def torch_load(path: str,
               trust_pickle: bool = False,
               trusted_sha256: Optional[str] = None):
    """``torch.load`` on CPU of tensors, containers and :func:`safe_globals`
    only, unless ``trust_pickle``.

    The extra globals are allowed for this call only (torch's
    ``safe_globals`` context), never process-wide.

    Args:
        path (str): A ``.pth`` / ``.bin`` file.
        trust_pickle (bool): Unpickle fully: only for a file from a source
            the user trusts, since unpickling can run code.
        trusted_sha256 (str, optional): Unpickle fully if the file's bytes
            still have this SHA-256 (the file the user trusted); they are
            read once, so the file cannot change between check and load.

    Returns:
        The loaded object, with OmegaConf configs as plain dicts and numpy
        objects restored.

    Raises:
        CheckpointError: Missing, empty, damaged, refused or non-checkpoint
            files, naming the file, what it holds and the fix.
    """
    if osp.exists(path) and not osp.isfile(path):
        raise CheckpointError(
            f'{path} is not a regular file; give a checkpoint file (or a '
            f'transformers folder).')
    if not osp.isfile(path):
        raise CheckpointError(
            f'Checkpoint not found: {path}. Check the path, or download the '
            f'GroupViT weights (see README, "Checkpoints").')
    if osp.getsize(path) == 0:
        raise CheckpointError(f'Checkpoint {path} is empty (0 bytes); the '
                              f'download probably failed. Download it again.')
    try:
        if trusted_sha256 is not None:
            with open(path, 'rb') as f:
                data = f.read()
            if hashlib.sha256(data).hexdigest() != trusted_sha256:
                raise CheckpointError(
                    f'{path} changed after it was trusted (--trust-pickle); '
                    f'it is not unpickled. Trust the new file explicitly if '
                    f'you mean to.')
            return torch.load(
                io.BytesIO(data), map_location='cpu', weights_only=False)
        if trust_pickle:
            return torch.load(path, map_location='cpu', weights_only=False)
        with torch.serialization.safe_globals(safe_globals()):
            state = torch.load(path, map_location='cpu', weights_only=True)
        state = restore_numpy(state)
        if isinstance(state, dict) and 'config' in state:
            state['config'] = to_plain(state['config'])
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError(
            f'{path} was refused: its objects nest too deeply to be a '
            f'checkpoint. The file is damaged or crafted.') from None
    except Exception as e:  # torch raises many types for damaged files
        raise CheckpointError(_load_failure(path, e)) from None
    return state


def _load_failure(path: str, error: Exception) -> str:
    """Say why ``torch.load`` failed, from the error and the file's first
    bytes, without repeating torch's advice to unpickle fully."""
    kind = sniff_file(path)
    if kind is not None:
        return (f'{path} is {kind}, not a PyTorch checkpoint. Give a GroupViT '
                f'checkpoint (.pth), a transformers folder or a .safetensors '
                f'file.')
    refused = refused_global(error)
    if refused:
        return (f'{path} was refused: it holds {refused}, which the safe '
                f'loader does not rebuild (it reads tensors, plain '
                f'containers, the NVlabs OmegaConf config and mmengine '
                f'training state). Loading it fully could run code hidden in '
                f'the file; if you trust its source, convert it once with '
                f'`tools/convert_weights.py --trust-pickle {path} OUT.pth` '
                f'(or pass --trust-pickle to tools/test.py).')
    return (f'{path} is not a readable PyTorch checkpoint '
            f'({_first_line(error)}); it is probably truncated or corrupt. '
            f'Download it again.')


# First bytes of files that are often given by mistake.
_MAGIC = ((b'\xff\xd8\xff', 'a JPEG image'), (b'\x89PNG', 'a PNG image'),
          (b'GIF8', 'a GIF image'), (b'%PDF', 'a PDF document'),
          (b'\x1f\x8b', 'a gzip archive'), (b'BZh', 'a bzip2 archive'))


def sniff_file(path: str) -> Optional[str]:
    """What a file that ``torch.load`` cannot read is, when it is clearly
    not a checkpoint: an image, an archive, a safetensors file or text.

    Returns:
        str | None: E.g. ``'a JPEG image'``; None for a file that looks like
        a (possibly damaged) PyTorch checkpoint or unknown binary data.
    """
    with open(path, 'rb') as f:
        head = f.read(4096)
    if head.startswith(b'PK\x03\x04') or head[:1] == b'\x80':
        return None  # torch's zip format, or a legacy pickle
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) > 8 and head[8:10] == b'{"':
        return ('a safetensors file (name it *.safetensors, or give its '
                'transformers folder)')
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        return 'unrecognised binary data'
    if all(c.isprintable() or c in '\n\r\t' for c in text):
        first = text.strip().splitlines()[0][:40] if text.strip() else ''
        return f'a text file (it starts with {first!r})'
    return None


# How torch's weights-only unpickler (and .training_state) name what they
# refuse; each pattern captures the name.
_REFUSALS = (r'unsupported GLOBAL (\S+) whose module',
             r'Unsupported global: GLOBAL (.+?)(?: was not an allowed|$)',
             r'reduce for unrecognized function (.+)$',
             r'classes allowlisted via `add_safe_globals` but got (.+)$',
             r'types allowlisted via `add_safe_globals`, but got (.+)$')


def refused_global(error: Exception) -> Optional[str]:
    """The class or function named in a refusal of the safe unpickler, or
    None when the error is not a refusal."""
    for pattern in _REFUSALS:
        match = re.search(pattern, str(error), re.MULTILINE)
        if match:
            return f'the class or function {match.group(1).strip()}'
    return None


def _first_line(e: Exception) -> str:
    """The first sentence of an error's message."""
    text = str(e).strip().splitlines()
    return text[0].split('. ')[0].rstrip('.') if text else type(e).__name__


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
