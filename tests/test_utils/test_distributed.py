# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The CPU process group of ``--launcher pytorch``: created for the runner,
and torn down so that no gloo thread outlives the tool's work.

A one-process gloo group stands in for torchrun's: the threads and the
teardown are the same whatever the world size."""
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from torch.nn.parallel import DistributedDataParallel

from mmseg_groupvit.utils.distributed import (finish_distributed,
                                              init_cpu_distributed,
                                              init_cpu_training,
                                              replace_sync_bn)

GLOO_THREADS = ('pt_gloo_runloop', 'gloo_tcp_loop')


def gloo_threads():
    """Names of this process's gloo threads (Linux names its threads in
    /proc)."""
    names = []
    for task in os.listdir('/proc/self/task'):
        try:
            with open(f'/proc/self/task/{task}/comm') as f:
                name = f.read().strip()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        if name in GLOO_THREADS:
            names.append(name)
    return names


def threads_once_named(seconds=10.0):
    """:func:`gloo_threads` once every gloo thread has started and named
    itself (a thread sets its name after it starts, so right after the
    collective one may still be unnamed), or as found after ``seconds``."""
    deadline = time.monotonic() + seconds
    while set(gloo_threads()) != set(GLOO_THREADS) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    return sorted(set(gloo_threads()))


@pytest.fixture
def torchrun_env(monkeypatch):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    for key, value in dict(
            MASTER_ADDR='127.0.0.1',
            MASTER_PORT=str(port),
            RANK='0',
            LOCAL_RANK='0',
            WORLD_SIZE='1').items():
        monkeypatch.setenv(key, value)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.mark.skipif(
    not os.path.isdir('/proc/self/task') or torch.cuda.is_available(),
    reason='needs Linux thread names and a machine without CUDA')
@pytest.mark.slow
def test_finish_joins_the_gloo_threads_a_runner_still_holds(torchrun_env):
    """mmengine's runner keeps its DDP wrapper, and with it the gloo backend,
    in reference cycles: destroying the group alone leaves the backend's
    threads running into interpreter finalization, where they can abort
    the process (``terminate called without an active exception``)."""
    cfg = Config(dict(launcher='pytorch'))
    init_cpu_distributed(cfg)
    assert dist.is_initialized() and dist.get_backend() == 'gloo'
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.device_ids is None

    # Like the runner: the wrapped model in a reference cycle, and a
    # collective on a tensor that Python drops right after.
    runner = dict(model=DistributedDataParallel(torch.nn.Linear(4, 2)))
    runner['self'] = runner
    dist.broadcast(torch.arange(4.), src=0)
    dist.barrier()
    # The check below is not vacuous: the threads exist.
    assert threads_once_named() == sorted(GLOO_THREADS)
    del runner

    finish_distributed()
    assert not dist.is_initialized()
    assert gloo_threads() == []


def test_no_group_without_the_pytorch_launcher():
    cfg = Config(dict(launcher='none'))
    init_cpu_distributed(cfg)
    assert not dist.is_initialized()
    assert 'model_wrapper_cfg' not in cfg
    finish_distributed()  # nothing to tear down


def test_sync_bn_is_replaced_everywhere_in_a_config():
    cfg = dict(
        backbone=dict(norm_cfg=dict(type='SyncBN')),
        heads=[
            dict(norm_cfg=dict(type='SyncBN')),
            dict(norm_cfg=dict(type='GN'))
        ])
    assert replace_sync_bn(cfg) == 2
    assert cfg['backbone']['norm_cfg']['type'] == 'BN'
    assert [h['norm_cfg']['type'] for h in cfg['heads']] == ['BN', 'GN']


@pytest.mark.skipif(
    torch.cuda.is_available(), reason='the CPU path only runs without CUDA')
@pytest.mark.parametrize('wrapper',
                         ['default', 'none', 'own', 'torch', 'fsdp'])
def test_cpu_training_builds_bn_and_ddp_without_device_ids(
        torchrun_env, wrapper):
    cfg = Config(
        dict(
            launcher='pytorch',
            find_unused_parameters=True,
            model=dict(norm_cfg=dict(type='SyncBN'))))
    if wrapper == 'none':
        cfg.model_wrapper_cfg = None
    elif wrapper == 'own':
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=[0],
            broadcast_buffers=True)
    elif wrapper == 'torch':
        cfg.model_wrapper_cfg = dict(type='DistributedDataParallel')
    elif wrapper == 'fsdp':
        # FSDP takes no device_ids (it was given device_ids=None: TypeError).
        cfg.model_wrapper_cfg = dict(
            type='MMFullyShardedDataParallel', use_orig_params=True)
    try:
        init_cpu_training(cfg)
        assert dist.is_initialized() and cfg.env_cfg.dist_cfg.backend == \
            'gloo'
        assert cfg.model.norm_cfg.type == 'BN'
        # mmengine's own default wrapper (Runner.wrap_model), on CPU.
        default = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=True,
            device_ids=None)
        expected = dict(
            default=default,
            none=default,
            own=dict(
                type='MMDistributedDataParallel',
                device_ids=None,
                broadcast_buffers=True),
            torch=dict(type='DistributedDataParallel', device_ids=None),
            fsdp=dict(type='MMFullyShardedDataParallel',
                      use_orig_params=True))[wrapper]
        assert cfg.model_wrapper_cfg == expected
    finally:
        finish_distributed()


def test_no_training_group_without_the_pytorch_launcher():
    cfg = Config(dict(launcher='none', model=dict(type='SyncBN')))
    init_cpu_training(cfg)
    assert not dist.is_initialized()
    assert cfg.model.type == 'SyncBN' and 'model_wrapper_cfg' not in cfg
