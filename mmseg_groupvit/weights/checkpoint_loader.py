# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmengine's loader for local checkpoint files, made safe.

Every checkpoint that mmengine reads from disk goes through
``CheckpointLoader``: ``load_from``, ``--resume``, a backbone's
``init_cfg=dict(type='Pretrained', ...)``, ``mmseg.apis.init_model`` and
``MMSegInferencer``. Importing this module registers :func:`load_from_local`
for local paths in place of mmengine's own, which calls ``torch.load`` with
the process's allow-list. Ours reads tensors, plain containers, the NVlabs
OmegaConf config and mmengine's training state, allowed for that one call
(:func:`.io.torch_load`); a file that holds anything else is refused with its
name and the class, unless the user trusted that one file with
:func:`trust_checkpoint` (``--trust-pickle`` of the tools).

Published checkpoints load as they are: an NVlabs ``.pth``, a transformers
folder or weights file is converted to this package's keys when read
(:mod:`.sources`). ``http(s)://`` URLs (in place of mmengine's
``load_from_http``, which unpickles with the process's allow-list) and
``hf://owner/name`` hub ids are downloaded into their caches and verified
(:mod:`.download`), then read by the same loader.
"""
import os
import os.path as osp
from typing import Dict, Optional, Tuple

from mmengine.runner.checkpoint import CheckpointLoader

from .download import HUB_PREFIX, URL_PREFIXES, resolve_checkpoint, sha256
from .io import torch_load
from .sources import load_published, to_mmseg_checkpoint

# Trusted files: real path -> SHA-256 of the bytes the user trusted.
_TRUSTED: Dict[str, str] = {}
# The checkpoint last read by read_checkpoint (to learn its architecture),
# handed to the next load of the same unchanged file instead of reading and
# converting it again.
_READ_AHEAD: Dict[Tuple, dict] = {}


def _file_key(path: str) -> Optional[Tuple]:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return osp.realpath(path), stat.st_mtime_ns, stat.st_size


def trust_checkpoint(path: str) -> None:
    """Let :func:`load_from_local` unpickle this one file fully.

    Only for a file from a source the user trusts: unpickling can run code.
    The trust is for the file's contents now: a file replaced afterwards is
    not unpickled.

    Args:
        path (str): The checkpoint file.
    """
    path = osp.realpath(osp.expanduser(path))
    if osp.isfile(path):
        _TRUSTED[path] = sha256(path)


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None):
    """Load a local checkpoint safely (mmengine's local scheme).

    Args:
        filename (str): Local file path.
        map_location: Ignored; tensors are loaded on CPU and moved when they
            are copied into the model.

    Returns:
        dict: The checkpoint; a published one converted to this package's
        keys, with its architecture under ``meta['groupvit_arch']``.

    Raises:
        CheckpointError: Missing, damaged or refused files, named.
    """
    filename = osp.expanduser(filename)
    ahead = _READ_AHEAD.pop(_file_key(filename), None)
    if ahead is not None:
        return ahead
    trusted = _TRUSTED.get(osp.realpath(filename))
    if osp.isdir(filename) or filename.endswith('.safetensors'):
        return load_published(filename)
    return to_mmseg_checkpoint(
        torch_load(filename, trusted_sha256=trusted), filename)


@CheckpointLoader.register_scheme(
    prefixes=URL_PREFIXES + (HUB_PREFIX, ), force=True)
def load_from_remote(filename: str, map_location=None, model_dir=None):
    """Download (once, into the cache, verified) and load safely; the
    scheme of ``http(s)://`` URLs and ``hf://`` hub ids.

    Args:
        filename (str): URL or hub id.
        map_location: Ignored, as in :func:`load_from_local`.
        model_dir: Ignored; downloads go to torch hub's checkpoint folder.

    Returns:
        dict: The checkpoint, as :func:`load_from_local` returns it.
    """
    return load_from_local(resolve_checkpoint(filename))


def read_checkpoint(source: str) -> dict:
    """Read a checkpoint (path, folder, URL or hub id) through mmengine's
    loader, i.e. through the safe schemes of this module.

    The next load of the same unchanged local file gets this result
    without reading and converting it again (once).
    """
    checkpoint = CheckpointLoader.load_checkpoint(
        source, map_location='cpu', logger='silent')
    _READ_AHEAD.clear()
    key = _file_key(osp.expanduser(source))
    if key is not None and osp.isfile(key[0]):
        _READ_AHEAD[key] = checkpoint
    return checkpoint
