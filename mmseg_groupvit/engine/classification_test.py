# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Zero-shot image classification test (top-1 / top-5): the command of
``tools/test_classification.py``, which ``tools/test.py`` runs for a
classification config (see :func:`classification_main`).

A command of its own rather than more branches in ``tools/test.py``: the
segmentation checks (label maps, per-class IoU, resumable progress, the
required checkpoint) do not apply to classification. What does apply is
shared: the vocabulary's size against the dataset's classes, images loaded by
``RobustLoadImageFromFile`` (named in the config), one ``error:`` line for
bad input, and the short console of ``tools/test.py`` (what is run, a
progress bar over the images, the metrics and the files written; mmengine's
full log in the work dir's log file, and on the console with
``--verbose``).
"""
import argparse
import json
import os.path as osp
import sys
import time
from typing import List, Optional

from mmengine.config import Config, DictAction

from groupvit_common.errors import USER_ERRORS, user_error_message
from ..evaluation.classification import (describe_classification_protocol,
                                         is_classification_config)
from ..evaluation.consistency import check_class_count
from ..evaluation.report import classification_run_lines, result_lines
from ..models.config_arguments import check_model_arguments
from ..utils.console import quiet_warnings
from .hooks import ImageProgressHook
from .runner import build_runner

__all__ = [
    'RANDOM_WARNING', 'parse_args', 'build_config', 'write_results',
    'classification_main', 'classification_config_of'
]

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
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='print mmengine\'s full log (environment, config, hooks, '
        'logged iterations) instead of the short report; the log file in '
        'the work dir always has it')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def build_config(args) -> Config:
    """The merged config of the command (work dir, checkpoint, one
    process)."""
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
    return cfg


def write_results(path, args, cfg, runner, metrics, seconds) -> dict:
    """Write ``results.json`` (config, checkpoint, protocol, metrics,
    images, seconds) and return the record."""
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


def report_lines(args, cfg, runner, record) -> List[str]:
    """The metrics (``top1``, ``top5``; ``[RANDOM WEIGHTS]`` without a
    checkpoint), the time and the files written."""
    metrics = {k.split('/')[-1]: v for k, v in record['metrics'].items()}
    paths = [('results', osp.join(cfg.work_dir, 'results.json')),
             ('log', getattr(runner.logger, 'log_file', None))]
    lines = result_lines(metrics, record['images'], record['seconds'], paths)
    if args.checkpoint is None:
        lines[0] += '  [RANDOM WEIGHTS]'
    return lines


def check_dataset_classes(runner) -> None:
    """Refuse a vocabulary of another size than the test dataset's classes
    before any image is classified: top-k accuracy against labels the
    model cannot predict would be a plausible but wrong number.

    Raises:
        ConfigCheckError: Naming both counts and the fix.
    """
    model = getattr(runner.model, 'module', runner.model)
    classes = runner.test_loop.dataloader.dataset.metainfo.get('classes')
    if classes is not None:
        check_class_count(
            len(model.classes), len(classes),
            f'The classifier\'s vocabulary has {len(model.classes)} classes '
            f'and the test dataset {len(classes)}. ')


def classification_main(argv=None):
    """Run the classification test of a command line (``tools/
    test_classification.py``'s arguments); exit with one ``error:`` line on
    bad input.

    Returns:
        dict: The metrics (``accuracy/top1``, ``accuracy/top5``).
    """
    argv = sys.argv[1:] if argv is None else argv
    quiet_warnings('--verbose' in argv)
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
        check_model_arguments(cfg.model)
        runner = build_runner(cfg, args.verbose)
        if not args.verbose:
            print(
                '\n'.join(
                    classification_run_lines(cfg, args.config, args.checkpoint,
                                             args.seed)),
                flush=True)
            runner.register_hook(ImageProgressHook())
        check_dataset_classes(runner)
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
    if not args.verbose:
        print('\n'.join(report_lines(args, cfg, runner, record)), flush=True)
    return metrics


def classification_config_of(
        argv: Optional[List[str]] = None) -> Optional[str]:
    """The config file of a ``tools/test.py`` command line when it builds a
    zero-shot classifier (the command is then
    :func:`classification_main`'s), else None.

    Args:
        argv (list[str], optional): The arguments; ``sys.argv[1:]`` when
            None.
    """
    argv = sys.argv[1:] if argv is None else argv
    config = next((a for a in argv if a.endswith('.py') and osp.isfile(a)),
                  None)
    if config is None:
        return None
    try:
        return config if is_classification_config(config) else None
    except Exception:  # a broken config is reported by the usual path
        return None
