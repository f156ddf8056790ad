# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""transformers' ``GroupViTModel`` with a segmentor's weights (the
converter's key tables read backwards, the fused ``qkv`` split, the
position table resized to the window's grid), and what the benchmark tools
share: the machine, the model and dataset, a swappable ``encode_decode``."""
import contextlib
import functools
import os
import os.path as osp
import platform
import re
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from mmseg_groupvit.weights import infer_arch
from mmseg_groupvit.weights.convert import HF_DROPPED, HF_RULES

_QKV = re.compile(r'^(.*)\.self_attn\.([qkv])_proj\.(weight|bias)$')
_RULES = [(re.compile(p), r) for p, r in HF_RULES]


def _our_key(hf_key: str) -> str:
    for pattern, repl in _RULES:
        if pattern.match(hf_key):
            return pattern.sub(repl, hf_key)
    raise KeyError(f'transformers key {hf_key} has no GroupViT counterpart')


def hf_config(model: nn.Module, image_size: int, cfg_model=None):
    """A ``transformers.GroupViTConfig`` for a built segmentor: shapes
    from the weights, head counts from the modules, activation and
    LayerNorm epsilon from ``cfg_model`` when it sets them."""
    from transformers import GroupViTConfig
    image_encoder, text_encoder = model.image_encoder, model.text_encoder
    arch = infer_arch(model.state_dict())
    vision = dict(
        arch['image_encoder'],
        num_attention_heads=image_encoder.stages[0].blocks[0].attn.num_heads)
    text = dict(
        arch['text_encoder'],
        num_attention_heads=text_encoder.blocks[0].attn.num_heads)
    projection = dict(
        projection_dim=vision.pop('projection_dim'),
        projection_intermediate_dim=vision.pop('projection_intermediate_dim'))
    for part in (text, ):
        part.pop('projection_dim', None)
        part.pop('projection_intermediate_dim', None)
    # transformers reads num_output_groups[i - 1] for every stage.
    groups = list(vision['num_output_groups'])
    vision['num_output_groups'] = groups + groups[-1:] * (
        len(vision['depths']) - len(groups))
    vision['num_hidden_layers'] = sum(vision['depths'])
    vision['image_size'] = image_size
    for part, key in ((vision, 'image_encoder'), (text, 'text_encoder')):
        section = (cfg_model or {}).get(key, {})
        for field in ('hidden_act', 'layer_norm_eps'):
            if field in section:
                part[field] = section[field]
    return GroupViTConfig(vision_config=vision, text_config=text, **projection)


def hf_state_dict(model: nn.Module, hf_keys,
                  grid: Tuple[int, int]) -> Dict[str, torch.Tensor]:
    """Our weights under transformers' keys ``hf_keys``, the position
    table resized to the patch ``grid``."""
    state = model.state_dict()
    out = {}
    for key in hf_keys:
        if key in HF_DROPPED:
            continue
        match = _QKV.match(key)
        if match and '.downsample.' not in key:
            prefix, which, kind = match.groups()
            fused = state[_our_key(f'{prefix}.self_attn.qkv.{kind}')]
            out[key] = fused.chunk(3)['qkv'.index(which)]
        elif key == 'vision_model.embeddings.position_embeddings':
            with torch.no_grad():
                out[key] = model.image_encoder.interpolate_pos_embed(
                    grid).detach().clone()
        else:
            out[key] = state[_our_key(key)]
    return out


def build_reference(model: nn.Module,
                    window: Tuple[int, int],
                    cfg_model: Optional[dict] = None) -> nn.Module:
    """transformers' ``GroupViTModel`` with ``model``'s weights, for square
    windows of side ``window[0]``, in eval mode.

    Raises:
        ValueError: for a non-square window (transformers' forward accepts
            only its square ``image_size``).
    """
    import transformers
    if window[0] != window[1]:
        raise ValueError(
            f'transformers\' GroupViTModel only runs square inputs of its '
            f'image_size; the window is {window[0]}x{window[1]}. Pass a '
            f'square --shape.')
    config = hf_config(model, window[0], cfg_model)
    hf = transformers.GroupViTModel(config).eval()
    patch = model.image_encoder.patch_size
    state = hf_state_dict(model,
                          hf.state_dict().keys(),
                          (window[0] // patch, window[1] // patch))
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in HF_DROPPED]
    if missing or unexpected:
        raise RuntimeError(f'weights do not map onto transformers\' model: '
                           f'missing {missing[:5]}, unexpected '
                           f'{unexpected[:5]}')
    return hf


def randomise_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial random values for every tensor of a segmentor, so that
    groupings are not degenerate and nothing agrees by accident."""
    gen = torch.Generator().manual_seed(seed)

    def normal(t, std, mean=0.):
        return torch.randn(t.shape, generator=gen) * std + mean

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('logit_scale'):
                continue
            leaf = name.rsplit('.', 1)[-1]
            if param.dim() >= 2 and 'group_token' not in name and \
                    'pos' not in name:
                param.copy_(normal(param, 0.02))
            elif 'group_token' in name or 'pos' in name:
                param.copy_(normal(param, 0.2))
            elif leaf == 'bias':
                param.copy_(normal(param, 0.02))
            else:  # LayerNorm / BatchNorm scales
                param.copy_(normal(param, 0.1, 1.))
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.copy_(normal(module.running_mean, 0.2))
                module.running_var.copy_(
                    torch.rand(module.running_var.shape, generator=gen) + 0.5)
    return model


def machine(device: torch.device) -> Dict[str, object]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((line.split(':', 1)[1].strip()
                        for line in f if line.startswith('model name')), cpu)
    except OSError:
        pass
    try:
        import transformers
        version = transformers.__version__
    except ImportError:
        version = None
    info = dict(
        cpu=cpu,
        cpu_count=os.cpu_count(),
        threads=torch.get_num_threads(),
        device=str(device),
        torch=torch.__version__,
        python=platform.python_version(),
        transformers=version)
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


@contextlib.contextmanager
def swapped_encode_decode(model, fn):
    """``fn(model, windows, metas)`` (dense window scores ``[N, C, h, w]``)
    as ``model.encode_decode`` and as the window scorer of ``model.predict``
    (``compact_scores``, every pixel its own group, so painting gives
    ``fn``'s values exactly) in the block."""

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
    """The config's model in eval mode: the checkpoint's weights
    (strictly), or random ones seeded with ``seed``."""
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS

    from mmseg_groupvit.models.config_arguments import check_model_arguments
    check_model_arguments(cfg.model)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    else:
        randomise_(model, seed)
    return model.to(device).eval()


def build_dataset(cfg, data_root: Optional[str]):
    """The config's test dataset (at ``data_root`` if given), or None when
    its folder is not there."""
    from mmengine.registry import DATASETS
    dataset_cfg = cfg.test_dataloader.dataset.copy()
    if data_root:
        dataset_cfg['data_root'] = data_root
    if not osp.isdir(dataset_cfg.get('data_root', '')):
        return None
    return DATASETS.build(dataset_cfg)


def image_steps(cfg):
    """The config's test pipeline without the annotations."""
    from mmengine.dataset import Compose
    return Compose([
        t for t in cfg.test_dataloader.dataset.pipeline
        if 'LoadAnnotations' not in t['type']
    ])
