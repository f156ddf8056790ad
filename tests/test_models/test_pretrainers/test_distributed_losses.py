# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""The pretraining losses over 2 gloo processes equal one process on the
whole batch: each rank's half gives the same loss (averaged over ranks)
and DDP's averaged gradients equal the whole batch's. World size 2, so a
wrong label offset (``B * rank``) or target block shows."""
import os.path as osp
import socket
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

LOSSES = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))),
    'mmseg_groupvit', 'models', 'pretrainers', 'contrastive_losses.py')
BATCH, PROMPTS, DIMS = 6, 3, 8


def load_losses():
    """The loss module alone (it imports only torch), so that the spawned
    processes start fast."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('contrastive_losses', LOSSES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Towers(nn.Module):
    """Stand-ins for the encoders: linear maps to the joint space, and the
    two temperatures."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.image = nn.Linear(5, DIMS)
        self.text = nn.Linear(7, DIMS)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))
        self.multi_label_logit_scale = nn.Parameter(torch.tensor(1.5))

    def forward(self, images, texts):
        losses = load_losses()
        image_x = self.image(images)
        text_x = self.text(texts)
        return (losses.contrastive_loss(image_x, text_x[:, 0],
                                        self.logit_scale.exp()) +
                losses.multi_label_loss(image_x, text_x[:, 1:],
                                        self.multi_label_logit_scale.exp()))


def batch():
    gen = torch.Generator().manual_seed(1)
    return (torch.randn(BATCH, 5, generator=gen),
            torch.randn(BATCH, 1 + PROMPTS, 7, generator=gen))


def whole_batch():
    model = Towers()
    loss = model(*batch())
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters()}


def worker(rank, world_size, port, out):
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world_size)
    model = nn.parallel.DistributedDataParallel(Towers())
    images, texts = batch()
    half = slice(rank * BATCH // 2, (rank + 1) * BATCH // 2)
    loss = model(images[half], texts[half])
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    torch.save(
        dict(
            loss=mean_loss / world_size,
            grads={
                n: p.grad
                for n, p in model.module.named_parameters()
            }), osp.join(out, f'rank{rank}.pth'))
    # Both ranks done before either tears gloo down (a rank that closes its
    # connections while the other still uses them aborts, SIGABRT).
    dist.barrier()
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one_on_the_whole_batch():
    loss, grads = whole_batch()
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(worker, args=(2, free_port(), out), nprocs=2)
        ranks = [
            torch.load(osp.join(out, f'rank{r}.pth'), weights_only=True)
            for r in range(2)
        ]
    for result in ranks:
        assert torch.allclose(result['loss'], loss, rtol=1e-5, atol=0)
        for name, grad in grads.items():
            # Not vacuous: every parameter gets a gradient.
            assert grad.abs().max() > 0, name
            assert torch.allclose(
                result['grads'][name], grad, rtol=1e-5, atol=1e-7), name
