# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The gloo process group of ``--launcher pytorch`` on CPU-only machines
(mmengine's ``init_dist`` needs CUDA), torn down before the interpreter
exits: a gloo thread alive into finalization aborts the process."""
import atexit
import gc
import logging

import torch
import torch.distributed as dist
from mmengine.logging import print_log
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

from ..models.config_arguments import builds
from .config_file import find_dicts


def init_cpu_distributed(cfg) -> bool:
    """Create the gloo process group for ``--launcher pytorch`` without
    CUDA, and set ``cfg`` to gloo and mmengine's DDP (``broadcast_buffers``
    off, the config's ``find_unused_parameters``), a DDP wrapper without
    device ids, in place; whether it did."""
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return False
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    # atexit handlers run before finalization starts; registered once.
    atexit.unregister(release_group)
    atexit.register(release_group)
    cfg.merge_from_dict({'env_cfg.dist_cfg.backend': 'gloo'})
    # mmengine's default wrapper; the device_ids=[LOCAL_RANK] mmengine gives
    # a DistributedDataParallel wrapper is refused for a CPU model. Other
    # wrappers (FSDP, the user's own) get none and take none: left alone.
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if builds({
            'type': 'MMDistributedDataParallel',
            **wrapper
    }, DistributedDataParallel, MODEL_WRAPPERS):
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True


def replace_sync_bn(cfg) -> int:
    """Turn every ``type='SyncBN'`` in ``cfg`` into ``'BN'`` in place;
    return how many."""
    count = 0
    for _, layer in find_dicts(cfg, lambda d: d.get('type') == 'SyncBN'):
        layer['type'] = 'BN'
        count += 1
    return count


def init_cpu_training(cfg) -> None:
    """:func:`init_cpu_distributed` for ``tools/train.py``, with SyncBN
    built as BN (with a warning)."""
    if not init_cpu_distributed(cfg):
        return
    # The runner's sync_bn would convert every BatchNorm after building.
    if replace_sync_bn(cfg.model) + bool(cfg.pop('sync_bn', None)):
        print_log(
            'No GPU: SyncBN layers are built as BN (batch statistics per '
            'process).',
            logger='current',
            level=logging.WARNING)


def release_group() -> None:
    """Destroy the default process group (if any) and collect the objects
    that hold its backend (no collective: safe after an error)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    gc.collect()


def finish_distributed() -> None:
    """Wait for every process, then tear the process group down."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        release_group()
