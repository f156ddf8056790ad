# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Convert published GroupViT weights into an mmseg checkpoint.

SRC: an NVlabs ``.pth`` or a transformers folder; a non-default
architecture also gets ``DST.py`` for ``tools/test.py DST.py DST.pth``."""
import argparse
import sys

from groupvit_common.errors import CheckpointError, error_line
from mmseg_groupvit.weights.convert_checkpoint import (DEFAULT_BASE_CONFIG,
                                                       convert_checkpoint)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'src', help='NVlabs .pth, or a transformers folder '
        '/ weight file')
    parser.add_argument('dst', help='output mmseg checkpoint (.pth)')
    parser.add_argument(
        '--arch-config',
        help='JSON with the architecture when the checkpoint has none '
        '(transformers config.json, or an NVlabs config with '
        'model.img_encoder)')
    parser.add_argument(
        '--vision-heads',
        type=int,
        help='vision attention heads when no config says (needed then, '
        'unless the architecture is the released one, with 6)')
    parser.add_argument(
        '--base-config',
        default=DEFAULT_BASE_CONFIG,
        help='config inherited by DST.py for non-default architectures')
    parser.add_argument(
        '--trust-pickle',
        action='store_true',
        help='unpickle SRC fully, for a file that pickles classes besides '
        'tensors (the OmegaConf config of the released NVlabs files is '
        'read safely without it); can run code hidden in the file: only '
        'for files from a source you trust')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        result = convert_checkpoint(args.src, args.dst, args.arch_config,
                                    args.vision_heads, args.base_config,
                                    args.trust_pickle)
    except (CheckpointError, ValueError) as e:
        print(error_line(e), file=sys.stderr)
        return 1
    print(f'Converted {result["num_tensors"]} tensors from the '
          f'{result["layout"]} layout to {args.dst}')
    for field in result['assumed']:
        print(f'warning: assumed {field} (not recorded in the checkpoint); '
              f'pass --arch-config or --vision-heads if that is wrong')
    if result['config']:
        print(f'Non-default architecture: wrote {result["config"]}; run '
              f'`python tools/test.py {result["config"]} {args.dst}`')
    return 0


if __name__ == '__main__':
    sys.exit(main())
