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
    add = parser.add_argument
    add('src', help='NVlabs .pth, or a transformers folder / weight file')
    add('dst', help='output mmseg checkpoint (.pth)')
    add('--arch-config',
        help='JSON with the architecture when the checkpoint has none '
        '(transformers config.json, or an NVlabs config)')
    add('--vision-heads',
        type=int,
        help='vision attention heads when no config says (released: 6)')
    add('--base-config',
        default=DEFAULT_BASE_CONFIG,
        help='config inherited by DST.py for non-default architectures')
    add('--trust-pickle',
        action='store_true',
        help='unpickle SRC fully (a file pickling classes besides tensors); '
        'can run code hidden in the file: only for files you trust')
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
