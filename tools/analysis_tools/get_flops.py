# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""FLOPs and parameters of one window of a GroupViT segmentor: mmengine's
``FlopAnalyzer`` with a rule for ``scaled_dot_product_attention``."""
import argparse
import math
import sys
from typing import Any, Dict, List, Sequence

import torch
from bench_common import build_model, setup, window_shape
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape
from mmengine.analysis.print_helper import _format_size
from torch import nn
from torch.utils._pytree import tree_flatten

from groupvit_common.errors import ImageSizeError, exit_on_user_error
from groupvit_common.tool_options import add_cfg_options, add_shape_option
from mmseg_groupvit.utils.console import quiet_warnings


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Multiply-adds of ``q @ k^T`` and ``attn @ v`` (fvcore: no softmax)."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    return math.prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


class _TensorOutputs(nn.Module):
    """``fn``'s tensors as a flat tuple (all the tracer takes)."""

    def __init__(self, module: nn.Module, fn):
        super().__init__()
        self.module, self.fn = module, fn

    def forward(self, *args):
        leaves = tree_flatten(self.fn(*args))[0]
        return tuple(t for t in leaves if isinstance(t, torch.Tensor))


def count_flops(module: nn.Module, inputs, fn=None) -> FlopAnalyzer:
    """mmengine's ``FlopAnalyzer`` (multiply-adds) of ``fn(*inputs)``
    (default ``module(*inputs)``) with the attention rule."""
    if fn is not None:
        module = _TensorOutputs(module, fn)
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs, )
    analyzer = FlopAnalyzer(module, inputs).unsupported_ops_warnings(False)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    return analyzer.uncalled_modules_warnings(False)


def segmentor_flops(model: nn.Module, shape: Sequence[int]) -> Dict[str, Any]:
    """Multiply-adds of one ``(H, W)`` window and its parts (class
    embeddings cached), of the prompts (``text``), and the ``params``."""
    device = next(model.parameters()).device
    window = torch.zeros(1, 3, *shape, device=device)
    text = model.text_encoder
    with torch.no_grad():
        text()
        whole = count_flops(model, window)
        tokens = text.tokenize([p for ps in text.prompts() for p in ps])
        text_flops = count_flops(text, tokens.to(device), text.encode_tokens)
    # The image encoder's scope holds the backbone and the projector.
    by_module, params = whole.by_module(), parameter_count(model)
    projection = by_module['image_encoder.projector']
    return dict(
        window=whole.total(),
        image_encoder=by_module['image_encoder'] - projection,
        projection=projection,
        head=whole.total() - by_module['image_encoder'],
        text=text_flops.total(),
        num_prompts=len(tokens),
        params=dict(
            all=params[''],
            image_encoder=params['image_encoder'],
            text_encoder=params['text_encoder']))


def format_flop(multiply_adds: int) -> str:
    """Multiply-adds as FLOPs, two each, e.g. ``'27.7 GFLOP'``."""
    flop = 2 * multiply_adds
    for prefix, scale in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('k', 1e3)):
        if flop >= scale:
            return f'{flop / scale:.1f} {prefix}FLOP'
    return f'{flop} FLOP'


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Get the FLOPs of a GroupViT segmentor')
    parser.add_argument('config', help='config file path')
    add_shape_option(parser)
    add_cfg_options(parser)
    args = parser.parse_args(argv)
    quiet_warnings()
    cfg, _ = setup(args)
    shape = args.shape or window_shape(cfg)
    with exit_on_user_error():
        model = build_model(cfg, None, 'cpu', 0)
        patch = model.image_encoder.patch_size
        if min(shape) < patch:
            raise ImageSizeError(
                f'--shape {shape[0]} {shape[1]} is smaller than one '
                f'{patch}x{patch} patch of the image encoder; give at least '
                f'--shape {patch}.')
    flops = segmentor_flops(model, shape)
    params, line = flops['params'], '=' * 30
    print(f'{line}\nCompute type: one {shape[0]}x{shape[1]} window, '
          f'class embeddings cached\nInput shape: (3, {shape[0]}, '
          f'{shape[1]})\nFLOPs (a multiply-add counts as 2: a multiply '
          f'and an add)\n'
          f'  one window: {format_flop(flops["window"])}\n'
          f'    image encoder: {format_flop(flops["image_encoder"])}\n'
          f'    projection: {format_flop(flops["projection"])}\n'
          f'    head: {format_flop(flops["head"])}\n'
          f'  text encoder, once per vocabulary ({flops["num_prompts"]} '
          f'prompts): {format_flop(flops["text"])}\n'
          f'Params: {_format_size(params["all"])} (image encoder '
          f'{_format_size(params["image_encoder"])}, text encoder '
          f'{_format_size(params["text_encoder"])})\n{line}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
