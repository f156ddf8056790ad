# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Count the files and functions of this project and of mmseg that one
inference (or one checkpoint load) passes through.

Usage::

    python tools/analysis_tools/trace_calls.py [CONFIG] [--size 512]
        [--checkpoint-load [CHECKPOINT]] [--list]

By default a small random GroupViT is built from CONFIG (default
``configs/groupvit_voc.py``, slide mode) with
:func:`mmseg_groupvit.apis.init_groupvit`, one ``model.test_step`` on a
random ``--size`` square image warms it up (the class embeddings are
cached), and the second one is traced with ``sys.setprofile``. With
``--checkpoint-load``, ``init_groupvit`` loading CHECKPOINT is traced
instead (a random model of the same config is saved to a temporary file
when none is given). Only functions defined in ``mmseg_groupvit``,
``groupvit_common`` and ``mmseg`` are counted; ``--list`` prints them in
the order first called.
"""
import argparse
import os.path as osp
import sys
import tempfile

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch
from mmseg.structures import SegDataSample

from mmseg_groupvit.apis import init_groupvit

# Small architecture (as tests.conftest.SMALL_ARCH): seconds on a CPU.
SMALL = {
    'model.image_encoder.hidden_size': 64,
    'model.image_encoder.intermediate_size': 128,
    'model.image_encoder.depths': [1, 1, 1],
    'model.image_encoder.num_group_tokens': [8, 4, 0],
    'model.image_encoder.num_output_groups': [8, 4],
    'model.image_encoder.num_attention_heads': 4,
    'model.image_encoder.projection_dim': 32,
    'model.image_encoder.projection_intermediate_dim': 64,
    'model.text_encoder.hidden_size': 32,
    'model.text_encoder.intermediate_size': 64,
    'model.text_encoder.num_hidden_layers': 2,
    'model.text_encoder.num_attention_heads': 2,
    'model.text_encoder.projection_dim': 32,
    'model.text_encoder.projection_intermediate_dim': 64,
    'model.test_cfg.mode': 'slide',
}
PACKAGES = ('/mmseg_groupvit/', '/groupvit_common/', '/mmseg/')


def trace(fn):
    """Run ``fn()``; return the ``(file, line, name)`` of every counted
    function it called, in the order first called."""
    seen = {}

    def profile(frame, event, arg):
        if event == 'call':
            code = frame.f_code
            if any(p in code.co_filename for p in PACKAGES):
                seen.setdefault(
                    (code.co_filename, code.co_firstlineno, code.co_qualname),
                    None)

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return list(seen)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'config',
        nargs='?',
        default=osp.join(REPO, 'configs', 'groupvit_voc.py'))
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--checkpoint-load', nargs='?', const='', default=None)
    parser.add_argument('--list', action='store_true')
    args = parser.parse_args()
    build = dict(cfg_options=SMALL, random_weights=True)
    if args.checkpoint_load is None:
        model = init_groupvit(args.config, **build)
        image = torch.randint(
            0, 256, (3, args.size, args.size), dtype=torch.uint8)
        meta = dict(ori_shape=image.shape[1:], img_shape=image.shape[1:])
        data = dict(
            inputs=[image], data_samples=[SegDataSample(metainfo=meta)])
        with torch.no_grad():
            model.test_step(data)
            calls = trace(lambda: model.test_step(data))
        what = f'one test_step ({args.size}x{args.size}, slide)'
    else:
        checkpoint = args.checkpoint_load
        if not checkpoint:
            checkpoint = osp.join(tempfile.mkdtemp(), 'random.pth')
            model = init_groupvit(args.config, **build)
            torch.save(dict(state_dict=model.state_dict()), checkpoint)
        calls = trace(
            lambda: init_groupvit(args.config, checkpoint, cfg_options=SMALL))
        what = f'init_groupvit loading {checkpoint}'
    if args.list:
        for file, line, name in calls:
            print(f'{osp.relpath(file, REPO)}:{line} {name}')
    files = {file for file, _, _ in calls}
    print(f'{what}: {len(files)} files, {len(calls)} functions '
          f'(mmseg_groupvit, groupvit_common, mmseg)')


if __name__ == '__main__':
    main()
