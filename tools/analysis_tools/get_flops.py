# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Count the FLOPs and parameters of a GroupViT segmentor.

Usage::

    python tools/analysis_tools/get_flops.py CONFIG [--shape H [W]]
        [--cfg-options ...]

Adapted from MMSegmentation 1.2.2 ``tools/analysis_tools/get_flops.py``
(Apache-2.0), which does not run on multimodal segmentors
(open-mmlab/mmsegmentation#3866: ``MultimodalEncoderDecoder._forward`` hands
the head the backbone output alone) and, with mmengine 0.10.7, not at all
(it passes both ``input_shape`` and ``inputs``). Here:

- the count is mmengine's ``FlopAnalyzer`` (fvcore's rules: **one
  multiply-add is one FLOP**), extended with a rule for
  ``scaled_dot_product_attention`` (``q @ k^T`` and ``attn @ v``), which it
  would otherwise skip;
- one sliding window (``--shape``, default the config's ``crop_size``) is
  counted through the segmentor's ``mode='tensor'`` path (image encoder,
  projection and zero-shot head), with the class embeddings already cached,
  as they are for every window after the first;
- the text encoder is counted apart, once per vocabulary.

:func:`count_flops` counts multiply-adds; the tool prints FLOPs, two per
multiply-add (a multiply and an add), as
``tools/analysis_tools/benchmark.py`` does for its GFLOP/s figures.
"""
import argparse
import os.path as osp
import sys
from collections import Counter
from typing import Any, Dict, List, Sequence, Tuple, Union

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

import _mmseg_groupvit_mmcv_shim

_mmseg_groupvit_mmcv_shim.install()

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape
from mmengine.analysis.print_helper import _format_size
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from torch import nn

from mmseg_groupvit.utils.console import quiet_warnings


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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Get the FLOPs of a GroupViT segmentor')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        help='window size H [W] (default: the config\'s crop_size)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    return parser.parse_args(argv)


def format_flop(multiply_adds: int) -> str:
    """A multiply-add count as FLOPs, two per multiply-add (a multiply and
    an add), e.g. ``'27.7 GFLOP'``."""
    flop = 2 * multiply_adds
    for prefix, scale in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('k', 1e3)):
        if flop >= scale:
            return f'{flop / scale:.1f} {prefix}FLOP'
    return f'{flop} FLOP'


def report(flops: Dict[str, Any], shape: Sequence[int]) -> str:
    """What the tool prints: every count in FLOPs, the unit said once."""
    line = '=' * 30
    params = flops['params']
    return (f'{line}\nCompute type: one {shape[0]}x{shape[1]} window, '
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


def main(argv=None):
    args = parse_args(argv)
    quiet_warnings()
    if not osp.isfile(args.config):
        print(f'error: config {args.config} does not exist', file=sys.stderr)
        return 1
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    if args.shape is None:
        shape = window_shape(cfg)
    elif len(args.shape) in (1, 2):
        shape = (args.shape[0], args.shape[-1])
    else:
        print('error: --shape takes H or H W', file=sys.stderr)
        return 1

    from mmseg.registry import MODELS
    model = MODELS.build(cfg.model).eval()
    flops = segmentor_flops(model, shape)
    print(report(flops, shape))
    return 0


if __name__ == '__main__':
    sys.exit(main())
