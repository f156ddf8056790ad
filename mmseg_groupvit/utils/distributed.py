# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The gloo process group of ``--launcher pytorch`` on CPU-only machines:
created before the Runner, torn down before the interpreter exits.

mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` and fails
without a GPU, so the tools create the group themselves
(:func:`init_cpu_distributed`; :func:`init_cpu_training` for training).

Tearing it down takes more than ``destroy_process_group``: that call only
drops torch's own registry of groups, while the runner's
``DistributedDataParallel`` wrapper (kept alive by the runner's reference
cycles) still holds the gloo backend, and with it the backend's worker
threads. Left alone, those threads live on into interpreter finalization,
where a gloo thread that touches Python (releasing the last reference to a
tensor a collective used) is killed by the interpreter inside a C++
destructor, and the process aborts after its work is done with
``terminate called without an active exception``. :func:`release_group`
therefore collects the garbage that still holds the backend, which runs its
destructor and joins its threads while the interpreter is fully alive.
"""
import atexit
import gc
import logging

import torch
import torch.distributed as dist
from mmengine.logging import print_log

_release_registered = False


def init_cpu_distributed(cfg) -> None:
    """Create the gloo process group for ``--launcher pytorch`` without
    CUDA, before the Runner tries (and fails) to set a CUDA device.

    The group is also released at interpreter exit (:func:`release_group`),
    so a process that stops early (an ``error:`` line, Ctrl-C) does not
    abort while exiting either.

    Args:
        cfg (mmengine.Config): The tool's config, with ``launcher`` set.
            Updated in place: gloo as the mmengine dist backend, and a
            ``model_wrapper_cfg`` without device ids.
    """
    global _release_registered
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    if not _release_registered:
        # atexit handlers run before finalization starts.
        atexit.register(release_group)
        _release_registered = True
    # ConfigDict.setdefault stores a copy of the default: read back.
    cfg.setdefault('env_cfg', {})
    cfg.env_cfg.setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    # mmengine's default wrapper passes device_ids=[LOCAL_RANK], which
    # DistributedDataParallel refuses for a CPU model.
    cfg.setdefault('model_wrapper_cfg',
                   dict(type='MMDistributedDataParallel', device_ids=None))


def replace_sync_bn(cfg) -> int:
    """Turn every ``type='SyncBN'`` in ``cfg`` into ``'BN'`` in place.

    Returns:
        int: How many were replaced.
    """
    count = 0
    if isinstance(cfg, dict):
        if cfg.get('type') == 'SyncBN':
            cfg['type'] = 'BN'
            count += 1
        for value in cfg.values():
            count += replace_sync_bn(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            count += replace_sync_bn(value)
    return count


def init_cpu_training(cfg) -> None:
    """:func:`init_cpu_distributed` for ``tools/train.py``: also build
    SyncBN layers as BN (SyncBN needs GPUs; batch statistics are then per
    process, and a warning says so) and wrap the model in DDP without
    device ids.

    Args:
        cfg (mmengine.Config): The training config, with ``launcher`` set.
            Updated in place.
    """
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    init_cpu_distributed(cfg)
    # The runner's sync_bn would convert every BatchNorm after building.
    if replace_sync_bn(cfg.model) + bool(cfg.pop('sync_bn', None)):
        print_log(
            'No GPU: SyncBN layers are built as BN (batch statistics per '
            'process).',
            logger='current',
            level=logging.WARNING)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    # DDP takes no device ids for CPU modules.
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def release_group() -> None:
    """Destroy the default process group (if any) and free the objects that
    still hold its backend, so that its threads are joined now.

    No collective is run: this is safe after an error on one process only.
    Objects still referenced by the caller (a runner in a local variable)
    keep the backend alive; it is then released at interpreter exit.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    gc.collect()


def finish_distributed() -> None:
    """Wait for every process, then tear the process group down (see
    :func:`release_group`). Does nothing without a process group."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        release_group()
