# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Count the files and functions of this project and of mmseg that one
inference (or one checkpoint load) passes through::

    python tools/analysis_tools/trace_calls.py [CONFIG] [--size 512]
        [--checkpoint-load [CHECKPOINT]] [--list]

A small random GroupViT of CONFIG (slide mode) from ``init_groupvit``; the
second ``test_step`` on a random square image is traced (the first caches
the class embeddings), or with ``--checkpoint-load`` ``init_groupvit``
loading CHECKPOINT (default: a random one saved to a temporary file).
``--list`` prints the functions in the order first called.
"""
import argparse
import os.path as osp
import sys
import tempfile

import torch
from bench_common import small_arch
from mmseg.structures import SegDataSample

from mmseg_groupvit.apis import init_groupvit

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PACKAGES = ('/mmseg_groupvit/', '/groupvit_common/', '/mmseg/')


def trace(fn):
    """Run ``fn()``; the ``(file, line, name)`` of every counted function
    it called, in the order first called."""
    seen = {}

    def profile(frame, event, arg):
        code = frame.f_code
        if event == 'call' and any(p in code.co_filename for p in PACKAGES):
            seen.setdefault(
                (code.co_filename, code.co_firstlineno, code.co_qualname))

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return list(seen)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'config',
        nargs='?',
        default=osp.join(REPO, 'configs', 'groupvit_voc.py'))
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--checkpoint-load', nargs='?', const='', default=None)
    parser.add_argument('--list', action='store_true')
    args = parser.parse_args(argv)
    small = {
        f'model.{part}.{key}': value
        for part, fields in small_arch().items()
        for key, value in fields.items()
    }
    small['model.test_cfg.mode'] = 'slide'
    checkpoint = args.checkpoint_load
    if checkpoint is None:
        model = init_groupvit(
            args.config, cfg_options=small, random_weights=True)
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
        if not checkpoint:
            checkpoint = osp.join(tempfile.mkdtemp(), 'random.pth')
            model = init_groupvit(
                args.config, cfg_options=small, random_weights=True)
            torch.save(dict(state_dict=model.state_dict()), checkpoint)
        calls = trace(
            lambda: init_groupvit(args.config, checkpoint, cfg_options=small))
        what = f'init_groupvit loading {checkpoint}'
    if args.list:
        for file, line, name in calls:
            print(f'{osp.relpath(file, REPO)}:{line} {name}')
    files = {file for file, _, _ in calls}
    print(f'{what}: {len(files)} files, {len(calls)} functions '
          f'(mmseg_groupvit, groupvit_common, mmseg)')


if __name__ == '__main__':
    main()
