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
"""
import os.path as osp
from typing import Set

from mmengine.runner.checkpoint import CheckpointLoader

from .io import torch_load

_TRUSTED: Set[str] = set()


def trust_checkpoint(path: str) -> None:
    """Let :func:`load_from_local` unpickle this one file fully.

    Only for a file from a source the user trusts: unpickling can run code.

    Args:
        path (str): The checkpoint file.
    """
    _TRUSTED.add(osp.realpath(osp.expanduser(path)))


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None):
    """Load a local checkpoint safely (mmengine's local scheme).

    Args:
        filename (str): Local file path.
        map_location: Ignored; tensors are loaded on CPU and moved when they
            are copied into the model.

    Returns:
        dict: The checkpoint.

    Raises:
        CheckpointError: Missing, damaged or refused files, named.
    """
    filename = osp.expanduser(filename)
    return torch_load(
        filename, trust_pickle=osp.realpath(filename) in _TRUSTED)
