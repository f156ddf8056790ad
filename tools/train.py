# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmseg 1.2.2's ``tools/train.py`` (Apache-2.0) with checked inputs,
``--launcher pytorch`` on CPU (gloo) and a short console."""
import argparse
import logging
import os
import os.path as osp
import sys

import torch
from mmengine.logging import print_log

from groupvit_common.errors import (error_line, exit_on_user_error,
                                    interruptible)
from groupvit_common.tool_options import check_paths, runner_options
from mmseg_groupvit.engine import TRAIN_LOG, build_runner, tool_config
from mmseg_groupvit.utils.config_file import find_dicts
from mmseg_groupvit.utils.console import quiet_warnings
from mmseg_groupvit.utils.distributed import (finish_distributed,
                                              init_cpu_training)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a segmentor', parents=[runner_options()])
    add = parser.add_argument
    add('config', help='train config file path')
    add('--resume',
        action='store_true',
        help='resume from the latest checkpoint in the work_dir automatically')
    add('--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_amp(cfg) -> None:
    """Switch the optimizer wrapper to mmengine's ``AmpOptimWrapper``."""
    if not torch.cuda.is_available():
        sys.exit(
            error_line('--amp needs a GPU (mmengine\'s AmpOptimWrapper runs '
                       'on CUDA/NPU/MLU devices); train without --amp on '
                       'CPU.'))
    optim_wrapper = cfg.optim_wrapper.type
    if optim_wrapper == 'AmpOptimWrapper':
        print_log(
            'AMP training is already enabled in your config.',
            logger='current',
            level=logging.WARNING)
    elif optim_wrapper != 'OptimWrapper':
        sys.exit(
            error_line('--amp is only supported when the optimizer wrapper '
                       f'type is `OptimWrapper` but got {optim_wrapper}.'))
    else:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'


def check_inputs(cfg) -> None:
    """Exit when a pretrained checkpoint or a training data root is missing."""
    for path, init in find_dicts(
            cfg.model, lambda d: d.get('type') == 'Pretrained' and isinstance(
                d.get('checkpoint'), str)):
        checkpoint = init['checkpoint']
        if '://' not in checkpoint and not osp.exists(checkpoint):
            sys.exit(
                error_line(
                    f'pretrained checkpoint not found: {checkpoint} '
                    f'(model.{path}.checkpoint). Convert the published '
                    f'GroupViT weights with tools/convert_weights.py, or '
                    f'point to them with --cfg-options '
                    f'model.{path}.checkpoint=PATH.'))
    for path, dataset in find_dicts(
            cfg.train_dataloader.dataset,
            lambda d: isinstance(d.get('data_root'), str)):
        if not osp.isdir(dataset['data_root']):
            key = f'train_dataloader.dataset.{path}'.rstrip('.')
            sys.exit(
                error_line(
                    f'training data root not found: '
                    f'{dataset["data_root"]} ({key}.data_root). Prepare the '
                    f'dataset as mmseg describes, or point to it with '
                    f'--cfg-options {key}.data_root=PATH.'))


def check_runner(cfg) -> None:
    """Exit for ``FlexibleRunner`` with a model whose checked ``train_step``
    the strategies (FSDP, DeepSpeed) bypass."""
    from mmengine.model import BaseModel
    from mmengine.runner import FlexibleRunner
    from mmseg.registry import MODELS, RUNNERS
    runner, model = cfg.get('runner_type'), cfg.model.get('type')
    runner = RUNNERS.get(runner) if isinstance(runner, str) else runner
    model = MODELS.get(model) if isinstance(model, str) else model
    if all(isinstance(t, type) for t in (runner, model)) and issubclass(
            runner,
            FlexibleRunner) and model.train_step is not BaseModel.train_step:
        sys.exit(
            error_line(f'{model.__name__} trains through its own checked '
                       f'step, which FlexibleRunner\'s strategies (FSDP, '
                       f'DeepSpeed) skip: remove runner_type and strategy '
                       f'to train with mmengine\'s Runner (DDP; see '
                       f'docs/pretrain.md).'))


@interruptible
def main(argv=None):
    args = parse_args(argv)
    if problem := check_paths(
            args.config, launcher=args.launcher, tool='tools/train.py'):
        sys.exit(error_line(problem))
    quiet_warnings(args.verbose)
    with exit_on_user_error():
        cfg = tool_config(args, test=False)
    if args.amp:
        enable_amp(cfg)
    cfg.resume = args.resume
    check_inputs(cfg)
    check_runner(cfg)
    init_cpu_training(cfg)
    from mmseg.registry import RUNNERS
    with exit_on_user_error():
        runner = build_runner(cfg, args.verbose, TRAIN_LOG) \
            if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if runner.rank == 0 and not args.verbose:
        print(
            f'config      {args.config}\nwork dir    {cfg.work_dir}\n'
            f'log         {getattr(runner.logger, "log_file", None)}',
            flush=True)
    with exit_on_user_error():
        runner.train()
    if runner.rank == 0 and not args.verbose:
        print(f'written     checkpoints in {cfg.work_dir}', flush=True)
    finish_distributed()
    return runner


if __name__ == '__main__':
    main()
