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

:func:`mmseg_groupvit.utils.flops.count_flops` counts multiply-adds; the
tool prints FLOPs, two per
multiply-add (a multiply and an add), as
``tools/analysis_tools/benchmark.py`` does for its GFLOP/s figures.
"""
import argparse
import os.path as osp
import sys
from typing import Any, Dict, Sequence

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

import _mmseg_groupvit_mmcv_shim

_mmseg_groupvit_mmcv_shim.install()

from mmengine.analysis.print_helper import _format_size
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

from groupvit_common.errors import USER_ERRORS, user_error_message
from mmseg_groupvit.models.config_arguments import check_model_arguments
from mmseg_groupvit.utils.console import quiet_warnings
from mmseg_groupvit.utils.flops import segmentor_flops, window_shape


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
    try:
        check_model_arguments(cfg.model)
        model = MODELS.build(cfg.model).eval()
    except USER_ERRORS as e:
        print(f'error: {user_error_message(e)}', file=sys.stderr)
        return 1
    flops = segmentor_flops(model, shape)
    print(report(flops, shape))
    return 0


if __name__ == '__main__':
    sys.exit(main())
