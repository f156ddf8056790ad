# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""FLOPs and parameters of a GroupViT segmentor, for
``tools/analysis_tools/get_flops.py`` and ``benchmark.py``.

The count is mmengine's ``FlopAnalyzer`` (fvcore's rules: **one
multiply-add is one FLOP**), extended with a rule for
``scaled_dot_product_attention`` (``q @ k^T`` and ``attn @ v``), which it
would otherwise skip. :func:`segmentor_flops` counts one sliding window
through the segmentor's ``mode='tensor'`` path (image encoder, projection
and zero-shot head) with the class embeddings already cached, and the text
encoder apart, once per vocabulary.
"""
from collections import Counter
from typing import Any, Dict, List, Sequence, Tuple, Union

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape
from mmengine.config import Config
from torch import nn

__all__ = ['count_flops', 'segmentor_flops', 'window_shape', 'sdpa_flop_jit']


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FLOPs (multiply-adds) of ``aten::scaled_dot_product_attention``.

    ``q [..., Lq, D]``, ``k [..., Lk, D]``, ``v [..., Lk, Dv]``:
    ``q @ k^T`` costs ``prod(...) * Lq * Lk * D`` and ``attn @ v``
    ``prod(...) * Lq * Lk * Dv``; the softmax and scaling are not counted,
    as fvcore does not count them in ``bmm`` attention either.
    """
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = 1
    for dim in q[:-2]:
        batch *= dim
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


class _TensorOutputs(nn.Module):
    """Run ``fn`` and keep the tensors of its output: the tracer behind
    ``FlopAnalyzer`` accepts nothing else (GroupViT returns a dict that
    holds a grid tuple)."""

    def __init__(self, module: nn.Module, fn):
        super().__init__()
        self.module = module
        self.fn = fn

    def forward(self, *args):
        out = self.fn(*args)
        if isinstance(out, dict):
            out = list(out.values())
        if isinstance(out, (list, tuple)):
            flat = []
            for item in out:
                if isinstance(item, torch.Tensor):
                    flat.append(item)
                elif isinstance(item, (list, tuple)):
                    flat.extend(t for t in item if isinstance(t, torch.Tensor))
            return tuple(flat)
        return out


def count_flops(module: nn.Module,
                inputs: Union[torch.Tensor, Tuple[torch.Tensor, ...]],
                fn=None) -> FlopAnalyzer:
    """mmengine's ``FlopAnalyzer`` with the attention rule added.

    Args:
        module (nn.Module): The module whose parameters the call uses.
        inputs (Tensor | tuple[Tensor]): Positional inputs.
        fn (callable, optional): What to run instead of ``module(*inputs)``,
            e.g. ``module.forward_features``.

    Returns:
        FlopAnalyzer: ``.total()`` is the multiply-add count; see
        ``by_operator()`` / ``by_module()`` for the split.
    """
    if fn is not None:
        module = _TensorOutputs(module, fn)
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs, )
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer


def segmentor_flops(model: nn.Module, shape: Sequence[int]) -> Dict[str, Any]:
    """Per-window and per-vocabulary FLOPs of a GroupViT segmentor.

    Args:
        model (nn.Module): A built ``GroupViTEncoderDecoder`` in eval mode.
        shape (Sequence[int]): Window ``(H, W)``.

    Returns:
        dict: multiply-add counts ``window`` (image encoder + projection +
        head, class embeddings cached), ``image_encoder`` (without the
        projection), ``projection``, ``head``, ``text`` (the vocabulary's
        prompts, once) and ``params`` (all / ``image_encoder`` /
        ``text_encoder``).
    """
    device = next(model.parameters()).device
    window = torch.zeros(1, 3, *shape, device=device)
    encoder = model.image_encoder
    with torch.no_grad():
        model.text_encoder()  # cache the class embeddings
        whole = count_flops(model, window)
        backbone = count_flops(encoder, window, encoder.forward_features)
        feats = encoder.forward_features(window)
        projection = count_flops(
            encoder, (feats['group_tokens'], feats['pooled']),
            lambda tokens, pooled: encoder.forward_head(
                dict(group_tokens=tokens, pooled=pooled)))
        text_encoder = model.text_encoder
        prompts = [p for ps in text_encoder.prompts() for p in ps]
        tokens = text_encoder.tokenize(prompts).to(device)
        text = count_flops(text_encoder, tokens, text_encoder.encode_tokens)
    flops = dict(
        window=whole.total(),
        image_encoder=backbone.total(),
        projection=projection.total(),
        text=text.total(),
        num_prompts=len(prompts))
    flops['head'] = flops['window'] - flops['image_encoder'] - flops[
        'projection']
    flops['by_operator'] = dict(Counter(whole.by_operator()))
    params = parameter_count(model)
    flops['params'] = dict(
        all=params[''],
        image_encoder=params['image_encoder'],
        text_encoder=params['text_encoder'])
    return flops


def window_shape(cfg: Config) -> Tuple[int, int]:
    """The config's slide window, or 448x448 in whole mode."""
    test_cfg = cfg.model.get('test_cfg') or {}
    if test_cfg.get('mode') == 'slide' and 'crop_size' in test_cfg:
        return tuple(test_cfg['crop_size'])
    return (448, 448)
