# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Evaluate zero-shot image classification (top-1 / top-5) with mmengine's
runner::

    python tools/test_classification.py \\
        configs/classification/groupvit_imagenet.py [CHECKPOINT] \\
        [--work-dir DIR] [--cfg-options KEY=VALUE ...] [--seed N]

``tools/test.py`` hands classification configs (a ``GroupViTClassifier``
model) to this tool with the same arguments, so
``python tools/test.py configs/classification/groupvit_imagenet.py CKPT``
works too. A sibling rather than more branches in ``tools/test.py``: the
segmentation tool's checks (class counts against the dataset, label maps,
per-class IoU, resumable progress, the required checkpoint) do not apply to
classification, and its own checks (image files named on failure) are
reused from the package.

Without CHECKPOINT the weights are random (seeded with ``--seed``) and the
output says so: the accuracy then measures nothing. ``WORK_DIR/results.json``
records the config, checkpoint, protocol, metrics, images and seconds.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import _mmseg_groupvit_mmcv_shim

_mmseg_groupvit_mmcv_shim.install()

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmseg_groupvit.errors import USER_ERRORS, user_error_message
from mmseg_groupvit.evaluation import (describe_classification_protocol,
                                       use_checked_loading)

RANDOM_WARNING = ('warning: no checkpoint given: the weights are RANDOM and '
                  'the accuracy means nothing. Pass a converted checkpoint '
                  '(tools/convert_weights.py) for real results.')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Zero-shot image classification test (top-k accuracy)')
    parser.add_argument('config', help='classification config file')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='converted checkpoint; random weights without it')
    parser.add_argument('--work-dir', help='where results.json goes')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the random weights when there is no checkpoint')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='only "none": classification runs in one process')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def build_config(args) -> Config:
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    cfg.launcher = 'none'
    use_checked_loading(cfg)
    return cfg


def write_results(path, args, cfg, runner, metrics, seconds) -> dict:
    record = dict(
        config=osp.abspath(args.config),
        checkpoint=osp.abspath(args.checkpoint) if args.checkpoint else None,
        cfg_options=args.cfg_options or {},
        protocol=describe_classification_protocol(cfg),
        metrics={
            k: round(float(v), 4)
            for k, v in metrics.items()
        },
        images=len(runner.test_loop.dataloader.dataset),
        seconds=round(seconds, 3),
        processes=1)
    with open(path, 'w') as f:
        json.dump(record, f, indent=2)
    return record


def main(argv=None):
    args = parse_args(argv)
    if args.launcher != 'none':
        sys.exit('error: classification configs run in one process; drop '
                 '--launcher (and torchrun / --nproc).')
    if not osp.isfile(args.config):
        sys.exit(f'error: config not found: {args.config}. Pass '
                 f'configs/classification/groupvit_imagenet.py or your own.')
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        sys.exit(f'error: checkpoint not found: {args.checkpoint}. Convert '
                 f'the published weights with tools/convert_weights.py, or '
                 f'leave it out for random weights.')
    cfg = build_config(args)
    if args.checkpoint is None:
        print(RANDOM_WARNING, file=sys.stderr)
        # The runner seeds everything before it builds the model.
        cfg.randomness = dict(seed=args.seed)
    try:
        runner = Runner.from_cfg(cfg)
        start = time.perf_counter()
        metrics = runner.test()
    except USER_ERRORS as e:
        sys.exit(f'error: {user_error_message(e)}')
    except (ValueError, FileNotFoundError) as e:
        # Vocabulary, template and top-k problems name themselves.
        sys.exit(f'error: {user_error_message(e)}')
    seconds = time.perf_counter() - start
    record = write_results(
        osp.join(cfg.work_dir, 'results.json'), args, cfg, runner, metrics,
        seconds)
    shown = ', '.join(f'{k.split("/")[-1]} {v:.2f}'
                      for k, v in record['metrics'].items())
    print(f'{shown} on {record["images"]} images ({seconds:.1f} s)' +
          (' [RANDOM WEIGHTS]' if args.checkpoint is None else ''))
    return metrics


if __name__ == '__main__':
    main()
