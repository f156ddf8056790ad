# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""What the benchmark tools share: options, set-up, transformers'
``GroupViTModel`` with our weights, interleaved timing."""
import contextlib
import functools
import os
import os.path as osp
import platform
import time
from statistics import median
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmengine.registry import init_default_scope
from torch import nn

from groupvit_common.checks import check_zero_shot_segmentor
from groupvit_common.errors import (ConfigValueError, error_line,
                                    exit_on_user_error)
from groupvit_common.tool_options import check_device, check_paths
from mmseg_groupvit.utils.config_file import read_config
from mmseg_groupvit.weights.convert import HF_DROPPED, convert_hf

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DTYPES = dict(fp16=torch.float16, bf16=torch.bfloat16)


def setup(args) -> Tuple[object, torch.device]:
    """The checked config of ``args`` and the device."""
    checkpoint = getattr(args, 'checkpoint', None)
    if problem := check_paths(args.config, checkpoint, False, 'none',
                              '--checkpoint'):
        raise SystemExit(error_line(problem))
    device = getattr(args, 'device', 'cpu')
    options = dict(args.cfg_options or {})
    if getattr(args, 'window_batch', None):
        options['model.test_cfg.window_batch'] = args.window_batch
    with exit_on_user_error(ValueError):
        check_device(device)
        cfg = read_config(args.config, options)
        check_zero_shot_segmentor(cfg.model, args.config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return cfg, torch.device(device)


def window_shape(cfg) -> Tuple[int, int]:
    """The config's slide window, or 448x448 in whole mode."""
    test_cfg = cfg.model.get('test_cfg') or {}
    if test_cfg.get('mode') == 'slide' and 'crop_size' in test_cfg:
        return tuple(test_cfg['crop_size'])
    return (448, 448)


def hf_config(arch: dict, image_size: int):
    """A ``transformers.GroupViTConfig`` of an architecture's fields."""
    from transformers import GroupViTConfig
    keys = ('projection_dim', 'projection_intermediate_dim')
    vision = dict(arch['image_encoder'])
    projection = {k: vision.pop(k) for k in keys}
    text = {k: v for k, v in arch['text_encoder'].items() if k not in keys}
    # transformers reads num_output_groups[i - 1] for every stage.
    groups, depths = list(vision['num_output_groups']), vision['depths']
    vision.update(
        num_output_groups=groups + groups[-1:] * (len(depths) - len(groups)),
        num_hidden_layers=sum(depths),
        image_size=image_size)
    return GroupViTConfig(vision_config=vision, text_config=text, **projection)


def build_reference(model: nn.Module,
                    window: Tuple[int, int],
                    cfg_model: Optional[dict] = None) -> nn.Module:
    """transformers' ``GroupViTModel`` (eval) with ``model``'s weights for
    the square ``window`` (``ConfigValueError`` for another); ``cfg_model``'s
    activation and LayerNorm epsilon where it sets them."""
    from mmseg_groupvit.engine.hooks import model_arch
    try:
        import transformers
    except ImportError:
        raise SystemExit(
            error_line('the reference needs transformers (pip install '
                       '"transformers>=4.37")')) from None
    if window[0] != window[1]:
        raise ConfigValueError(
            f'transformers\' GroupViTModel only runs square windows; the '
            f'window is {window[0]}x{window[1]}. Set a square '
            f'model.test_cfg.crop_size (--cfg-options) or --shape.')
    arch = model_arch(model)
    for key, part in arch.items():
        section = (cfg_model or {}).get(key, {})
        part.update((f, section[f]) for f in ('hidden_act', 'layer_norm_eps')
                    if f in section)
    hf = transformers.GroupViTModel(hf_config(arch, window[0])).eval()
    # convert_hf of the keys' indices says where each key's tensor is.
    keys, ours, state = list(hf.state_dict()), model.state_dict(), {}
    where = convert_hf({k: torch.tensor([i]) for i, k in enumerate(keys)})
    for name, indices in where.items():
        parts = ours[name].chunk(3) if len(indices) == 3 else [ours[name]]
        state.update((keys[i], p) for i, p in zip(indices.tolist(), parts))
    patch = model.image_encoder.patch_size
    with torch.no_grad():
        state['vision_model.embeddings.position_embeddings'] = \
            model.image_encoder.interpolate_pos_embed(
                (window[0] // patch, window[1] // patch)).detach().clone()
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in HF_DROPPED]
    if missing or unexpected:
        raise RuntimeError(f'weights do not map onto transformers\' model: '
                           f'missing {missing[:5]}, unexpected '
                           f'{unexpected[:5]}')
    return hf


def build_model(cfg, checkpoint: Optional[str], device, seed: int):
    """The config's model (eval), the checkpoint's or seeded random weights."""
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
        return model.to(device).eval()
    # Random values large enough that groupings are not degenerate.
    gen = torch.Generator().manual_seed(seed)

    def normal(t, std, mean=0.):
        return torch.randn(t.shape, generator=gen) * std + mean

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('logit_scale'):
                continue
            if 'group_token' in name or 'pos' in name:
                param.copy_(normal(param, 0.2))
            elif param.dim() >= 2 or name.endswith('.bias'):
                param.copy_(normal(param, 0.02))
            else:  # LayerNorm / BatchNorm scales
                param.copy_(normal(param, 0.1, 1.))
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.copy_(normal(module.running_mean, 0.2))
                module.running_var.copy_(
                    torch.rand(module.running_var.shape, generator=gen) + 0.5)
    return model.to(device).eval()


def build_dataset(cfg, data_root: Optional[str]):
    """The config's test dataset (at ``data_root``); None without a folder."""
    from mmengine.registry import DATASETS
    dataset_cfg = cfg.test_dataloader.dataset.copy()
    if data_root:
        dataset_cfg['data_root'] = data_root
    if not osp.isdir(dataset_cfg.get('data_root', '')):
        return None
    return DATASETS.build(dataset_cfg)


@contextlib.contextmanager
def swapped_encode_decode(model, fn):
    """``fn(model, windows, metas)`` (scores ``[N, C, h, w]``) as
    ``model.encode_decode`` and, one group per pixel, as its
    ``compact_scores`` in the block (None: the model's own)."""
    if fn is None:
        yield
        return

    def compact_scores(windows, class_embeds):
        shape = windows.shape[2:]
        metas = [dict(img_shape=shape, pad_shape=shape)] * len(windows)
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


def machine(device: torch.device) -> Dict[str, object]:
    """What the numbers were measured on."""
    import transformers
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open('/proc/cpuinfo') as f:
        cpu = next((line.split(':', 1)[1].strip()
                    for line in f if line.startswith('model name')), cpu)
    info = dict(
        cpu=cpu,
        cpu_count=os.cpu_count(),
        threads=torch.get_num_threads(),
        device=str(device),
        torch=torch.__version__,
        python=platform.python_version(),
        transformers=transformers.__version__)
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def load_average() -> Optional[float]:
    with contextlib.suppress(OSError):
        return round(os.getloadavg()[0], 2)


def time_interleaved(fns: Dict[str, Callable],
                     repeat: int,
                     warmup: int,
                     device,
                     advance: Optional[Callable] = None,
                     loads: Optional[List[float]] = None) -> dict:
    """Best, median and every round's (``runs``) seconds of each function,
    all run once per round; each timed round's load average to ``loads``."""
    device, times = torch.device(device), {name: [] for name in fns}

    def clock():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        return time.perf_counter()

    for round_ in range(warmup + repeat):
        for name, fn in fns.items():
            start = clock()
            fn()
            if round_ >= warmup:
                times[name].append(clock() - start)
        load = load_average() if round_ >= warmup else None
        if loads is not None and load is not None:
            loads.append(load)
        if advance is not None:
            advance()
    return {
        name: dict(best=min(ts), median=median(ts), runs=ts)
        for name, ts in times.items()
    }


def share_equal(a: list, b: list) -> float:
    """The share of equal values of two lists of label arrays."""
    same = sum(int((x == y).sum()) for x, y in zip(a, b))
    return same / max(sum(x.size for x in a), 1)
