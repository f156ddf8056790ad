# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Test (and evaluate) a segmentor: mmseg's ``tools/test.py`` with the same
command line, plus what GroupViT users need.

Adapted from MMSegmentation 1.2.2 ``tools/test.py`` (Apache-2.0). Additions:

- the checkout's ``mmseg_groupvit`` is importable without installing it;
- ``--launcher pytorch`` also works on CPU-only machines: the gloo process
  group is created before the Runner (mmengine 0.10.7's ``init_dist`` calls
  ``torch.cuda.set_device`` and would fail), so
  ``torchrun --nproc_per_node=2 tools/test.py CFG CKPT --launcher pytorch``
  evaluates with two processes;
- ``WORK_DIR/results.json`` records the metrics, the per-class IoU and
  accuracy, the protocol (dataset, resize, window, threshold, templates,
  vocabulary), the number of images and the seconds the test took;
- a missing config, checkpoint or data root, or a vocabulary whose size
  does not match the dataset, stops with one message saying what to fix;
- images are loaded with ``RobustLoadImageFromFile`` (same pixels, bad files
  named) and counted by ``CheckedIoUMetric`` (label maps checked, per-image
  counts written to ``WORK_DIR/progress`` as it goes); after an interruption
  ``--resume`` with the same work dir skips the images already evaluated and
  gives the same metrics as an uninterrupted run.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import _mmseg_groupvit_mmcv_shim

_mmseg_groupvit_mmcv_shim.install()

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.dist import get_world_size
from mmengine.runner import Runner

from mmseg_groupvit.evaluation import (USER_ERRORS, ConfigCheckError,
                                       check_model_classes, check_out_dir,
                                       check_text_options, describe_protocol,
                                       prepare_test_run, user_error_message)
from mmseg_groupvit.weights.training_state import allow_mmengine_training_state


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MMSeg test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help=('if specified, the evaluation metric results will be dumped '
              'into the directory as json'))
    parser.add_argument(
        '--out',
        type=str,
        help='The directory to save output prediction for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--tta', action='store_true', help='Test time augmentation')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='skip the images that an interrupted run of the same config and '
        'checkpoint already evaluated in the same work dir')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise RuntimeError(
            'VisualizationHook must be included in default_hooks. '
            'refer to usage '
            '"visualization=dict(type=\'VisualizationHook\')"')
    visualization_hook = default_hooks['visualization']
    visualization_hook['draw'] = True
    if args.show:
        visualization_hook['show'] = True
        visualization_hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir
    return cfg


def init_cpu_distributed(cfg) -> None:
    """Create the gloo process group for ``--launcher pytorch`` without
    CUDA, before the Runner tries (and fails) to set a CUDA device."""
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    # mmengine's default wrapper passes device_ids=[LOCAL_RANK], which
    # DistributedDataParallel refuses for a CPU model.
    cfg.setdefault('model_wrapper_cfg',
                   dict(type='MMDistributedDataParallel', device_ids=None))


def build_config(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # work_dir priority: CLI > config file > config file name
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
        if missing:
            raise ConfigCheckError(
                f'--tta needs {" and ".join(missing)} in the config, which '
                f'{args.config} does not define (the shipped GroupViT '
                f'configs have no test-time augmentation). Run without '
                f'--tta, or define them as mmseg\'s configs do.')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        # Every process writes predictions there, but mmseg's IoUMetric
        # creates the folder on rank 0 only: create it before any starts.
        check_out_dir(args.out, '--out')
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    return cfg


def class_results(runner):
    """Per-class results of the evaluator's first metric that keeps them
    (``PerClassIoUMetric``), or None."""
    for metric in runner.test_evaluator.metrics:
        results = getattr(metric, 'class_results', None)
        if results is not None:
            return results
    return None


def write_results(path, args, cfg, runner, metrics, seconds) -> None:
    """Write ``results.json``: what was evaluated, how, and the metrics."""
    record = dict(
        config=osp.abspath(args.config),
        checkpoint=osp.abspath(args.checkpoint),
        cfg_options=args.cfg_options or {},
        protocol=describe_protocol(cfg),
        # mmseg rounds to 2 decimals in float32; drop the float32 noise.
        metrics={
            k: round(float(v), 4)
            for k, v in metrics.items()
        },
        per_class=class_results(runner),
        images=len(runner.test_loop.dataloader.dataset),
        seconds=round(seconds, 3),
        processes=get_world_size())
    if args.out is not None:
        record['predictions'] = osp.abspath(args.out)
    with open(path, 'w') as f:
        json.dump(record, f, indent=2)


def finish_distributed() -> None:
    """Wait for every process, then tear the process group down: a gloo
    group left to the interpreter's exit can abort a process after its work
    is done (``terminate called without an active exception``)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.config):
        sys.exit(f'error: config not found: {args.config}. Pass one of '
                 f'configs/groupvit_*.py or your own config file.')
    if not osp.isfile(args.checkpoint):
        sys.exit(f'error: checkpoint not found: {args.checkpoint}. Convert '
                 f'the published weights with tools/convert_weights.py.')
    try:
        cfg = build_config(args)
        check_out_dir(cfg.work_dir, '--work-dir')
        progress = prepare_test_run(cfg, args.checkpoint, args.resume,
                                    int(os.environ.get('RANK', 0)))
    except USER_ERRORS as e:
        sys.exit(f'error: {user_error_message(e)}')
    init_cpu_distributed(cfg)
    # Checkpoints saved by tools/train.py pickle mmengine's message hub.
    allow_mmengine_training_state()
    try:
        # The model reads the vocabulary (file) and templates when built.
        check_text_options(cfg)
    except (ValueError, FileNotFoundError, TypeError) as e:
        sys.exit(f'error: {e}')
    try:
        # The segmentor, head and text encoder check their settings here.
        runner = Runner.from_cfg(cfg)
    except USER_ERRORS as e:
        sys.exit(f'error: {user_error_message(e)}')
    try:
        # runner.model is wrapped (DistributedDataParallel) with a launcher.
        check_model_classes(getattr(runner.model, 'module', runner.model), cfg)
    except ValueError as e:
        sys.exit(f'error: {e}')
    start = time.perf_counter()
    try:
        metrics = runner.test()
    except USER_ERRORS as e:
        sys.exit(f'error: {user_error_message(e)}')
    except KeyboardInterrupt:
        sys.exit('interrupted' + (
            f': the images evaluated so far are recorded in {progress}; run '
            f'the same command with --resume to go on from there.'
            if progress else '.'))
    seconds = time.perf_counter() - start
    if runner.rank == 0:
        write_results(
            osp.join(cfg.work_dir, 'results.json'), args, cfg, runner, metrics,
            seconds)
    finish_distributed()
    return metrics


if __name__ == '__main__':
    main()
