# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Zero-shot image classification test (top-1 / top-5): the command of
``tools/test_classification.py``, which ``tools/test.py`` runs for a
classification config (see :func:`classification_main`).

A command of its own rather than more branches in ``tools/test.py``: the
segmentation checks (label maps, per-class IoU, resumable progress) do
not apply to classification. What does apply is
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
from typing import List

from mmengine.config import Config

from groupvit_common.errors import USER_ERRORS, user_error_message
from groupvit_common.files import open_work_file
from groupvit_common.tool_options import (RANDOM_BANNER, check_paths,
                                          runner_options, weight_options,
                                          weights_label)
from ..evaluation.classification import describe_classification_protocol
from ..evaluation.consistency import check_class_count
from ..evaluation.preflight import check_out_dir
from ..evaluation.report import classification_run_lines, result_lines
from ..models.config_arguments import check_model_arguments
from ..utils.config_file import read_config
from ..utils.console import quiet_warnings
from ..weights import resolve_load_from
from ..weights.download import is_remote
from .hooks import ImageProgressHook
from .runner import build_runner

__all__ = [
    'parse_args', 'build_config', 'write_results', 'classification_main'
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Zero-shot image classification test (top-k accuracy)',
        parents=[runner_options(), weight_options()])
    parser.add_argument('config', help='classification config file')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='checkpoint: a file (converted, NVlabs .pth or transformers '
        'weights), a transformers folder, a URL or hf://OWNER/NAME '
        '(default: the config\'s load_from, downloaded once)')
    return parser.parse_args(argv)


def build_config(args) -> Config:
    """The merged config of the command (work dir, weights, one process),
    checked (see :func:`~mmseg_groupvit.utils.config_file.read_config`)."""
    cfg = read_config(args.config, args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.random_weights:
        cfg.load_from = None
        # The runner seeds everything before it builds the model.
        cfg.randomness = dict(seed=args.seed)
    elif args.checkpoint:
        cfg.load_from = args.checkpoint
    cfg.launcher = 'none'
    return cfg


def write_results(args, cfg, runner, metrics, seconds) -> dict:
    """Write ``results.json`` (config, checkpoint, protocol, metrics,
    images, seconds) and return the record."""
    record = dict(
        config=osp.abspath(args.config),
        # As given (a URL or hub id), a local path made absolute.
        checkpoint=weights_label(
            args.checkpoint if not args.checkpoint
            or is_remote(args.checkpoint) else osp.abspath(args.checkpoint),
            args.seed),
        checkpoint_file=osp.abspath(cfg.load_from) if cfg.load_from else None,
        random_weights=RANDOM_BANNER if args.random_weights else None,
        cfg_options=args.cfg_options or {},
        protocol=describe_classification_protocol(cfg),
        metrics={
            k: round(float(v), 4)
            for k, v in metrics.items()
        },
        images=len(runner.test_loop.dataloader.dataset),
        seconds=round(seconds, 3),
        processes=1)
    with open_work_file(cfg.work_dir, 'results.json', 'w') as f:
        json.dump(record, f, indent=2)
    return record


def report_lines(args, cfg, runner, record) -> List[str]:
    """The metrics (``top1``, ``top5``; ``[RANDOM WEIGHTS]`` with
    ``--random-weights``), the time and the files written."""
    metrics = {k.split('/')[-1]: v for k, v in record['metrics'].items()}
    paths = [('results', osp.join(cfg.work_dir, 'results.json')),
             ('log', getattr(runner.logger, 'log_file', None))]
    lines = result_lines(metrics, record['images'], record['seconds'], paths)
    if args.random_weights:
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
    args = parse_args(argv)
    quiet_warnings(args.verbose)
    if args.launcher != 'none':
        sys.exit('error: classification configs run in one process; drop '
                 '--launcher (and torchrun / --nproc).')
    problem = check_paths(args.config, args.checkpoint, args.random_weights)
    if problem:
        sys.exit(f'error: {problem}')
    try:
        cfg = build_config(args)
        check_out_dir(cfg.work_dir, '--work-dir')
        check_model_arguments(cfg.model)
        if not args.random_weights:
            # Download (once) and apply the checkpoint's architecture.
            args.checkpoint = args.checkpoint or cfg.get('load_from')
            resolve_load_from(cfg)
        runner = build_runner(cfg, args.verbose)
        if not args.verbose:
            print(
                '\n'.join(
                    classification_run_lines(
                        cfg, args.config,
                        weights_label(args.checkpoint, args.seed))),
                flush=True)
            runner.register_hook(ImageProgressHook())
        if args.random_weights:
            print(
                f'warning: {RANDOM_BANNER} --random-weights gives a seeded '
                f'random model (an offline trial of the tool); leave it '
                f'out for the config\'s weights.',
                file=sys.stderr)
        check_dataset_classes(runner)
        start = time.perf_counter()
        metrics = runner.test()
    except USER_ERRORS as e:
        sys.exit(f'error: {user_error_message(e)}')
    except (ValueError, FileNotFoundError) as e:
        # Vocabulary, template and top-k problems name themselves.
        sys.exit(f'error: {user_error_message(e)}')
    seconds = time.perf_counter() - start
    try:
        record = write_results(args, cfg, runner, metrics, seconds)
    except USER_ERRORS as e:
        sys.exit(f'error: {user_error_message(e)}')
    if not args.verbose:
        print('\n'.join(report_lines(args, cfg, runner, record)), flush=True)
    return metrics
