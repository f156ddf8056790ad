# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""What the benchmark tools (``tools/analysis_tools/benchmark.py`` and
``gpu_report.py``) share: the machine a measurement ran on, the model and
dataset they measure, and swappable window scores."""
import contextlib
import functools
import os
import os.path as osp
import platform
from typing import Dict, Optional

import torch

from .hf_reference import randomise_

__all__ = ['machine', 'swapped_encode_decode', 'build_model', 'build_dataset']


def machine(device: torch.device) -> Dict[str, object]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    info = dict(
        cpu=cpu,
        cpu_count=os.cpu_count(),
        threads=torch.get_num_threads(),
        device=str(device),
        torch=torch.__version__,
        python=platform.python_version())
    try:
        import transformers
        info['transformers'] = transformers.__version__
    except ImportError:
        info['transformers'] = None
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


@contextlib.contextmanager
def swapped_encode_decode(model, fn):
    """Run ``fn(model, windows, metas)`` (dense window scores ``[N, C, h,
    w]``) as ``model.encode_decode`` and as the window scorer of
    ``model.predict`` (``compact_scores``, every pixel its own group, so
    painting gives ``fn``'s values exactly) inside the ``with`` block."""

    def compact_scores(windows, class_embeds):
        metas = [
            dict(img_shape=windows.shape[2:], pad_shape=windows.shape[2:])
        ] * len(windows)
        scores = fn(model, windows, metas)
        batch, _, height, width = scores.shape
        pixel_group = torch.arange(height * width, device=scores.device)
        pixel_group = pixel_group.view(1, height, width).expand(batch, -1, -1)
        return pixel_group, scores.flatten(2).transpose(1, 2)

    model.encode_decode = functools.partial(fn, model)
    model.compact_scores = compact_scores
    try:
        yield
    finally:
        del model.encode_decode, model.compact_scores


def build_model(cfg, checkpoint: Optional[str], device, seed: int):
    """The config's model in eval mode on ``device``: the checkpoint's
    weights (strictly), or random weights seeded with ``seed``."""
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS

    from ..models.config_arguments import check_model_arguments
    check_model_arguments(cfg.model)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    else:
        randomise_(model, seed)
    return model.to(device).eval()


def build_dataset(cfg, data_root: Optional[str]):
    """The config's test dataset (optionally at another root), or None
    when its files are not there."""
    from mmengine.registry import DATASETS
    dataset_cfg = cfg.test_dataloader.dataset.copy()
    if data_root:
        dataset_cfg['data_root'] = data_root
    root = dataset_cfg.get('data_root', '')
    if not osp.isdir(root):
        return None
    return DATASETS.build(dataset_cfg)
