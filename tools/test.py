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
- CHECKPOINT is optional (the config's ``load_from``) and may be a URL or
  ``hf://OWNER/NAME`` (downloaded once into the cache and verified), an
  NVlabs ``.pth`` or a transformers folder; the architecture the checkpoint
  records is applied to the model config before the model is built;
- a missing config, checkpoint or data root, or a vocabulary whose size
  does not match the dataset, stops with one message saying what to fix;
- images are loaded with ``RobustLoadImageFromFile`` (same pixels, bad files
  named) and counted by ``CheckedIoUMetric`` (label maps checked, per-image
  counts written to ``WORK_DIR/progress`` as it goes): the shipped configs
  name the checked steps and metric, except the loading steps that mmseg's
  inference APIs find by name; every value the tool changes (those steps,
  the progress folder, the sampler) is said in one ``swapped KEY: OLD ->
  NEW`` line, on the console and in the log file; after an interruption
  ``--resume`` with the same work dir skips the images already evaluated and
  gives the same metrics as an uninterrupted run;
- the console says what is run (config, checkpoint, data, vocabulary,
  protocol), shows a progress bar over the images with an ETA, then the
  per-class table, the metrics and the files written; mmengine's full log
  goes to the log file in the work dir, and to the console with
  ``--verbose``.
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

from mmengine.config import Config, DictAction
from mmengine.dist import get_world_size

from groupvit_common.errors import (USER_ERRORS, ConfigCheckError,
                                    user_error_message)
from groupvit_common.files import open_work_file
from mmseg_groupvit.engine import (ImageProgressHook, build_runner,
                                   classification_config_of,
                                   classification_main)
from mmseg_groupvit.evaluation import (check_model_classes, check_out_dir,
                                       class_table_lines, describe_protocol,
                                       prepare_test_run, result_lines,
                                       run_lines, swap_lines)
from mmseg_groupvit.models.config_arguments import check_model_arguments
from mmseg_groupvit.utils.console import quiet_warnings
from mmseg_groupvit.utils.distributed import (finish_distributed,
                                              init_cpu_distributed)
from mmseg_groupvit.weights import resolve_load_from, trust_checkpoint
from mmseg_groupvit.weights.download import is_remote


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MMSeg test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='checkpoint: a file (converted, NVlabs .pth or transformers '
        'weights), a transformers folder, an http(s) URL or hf://OWNER/NAME '
        '(default: the config\'s load_from, downloaded once into the cache)')
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
    parser.add_argument(
        '--trust-pickle',
        action='store_true',
        help='unpickle CHECKPOINT fully, for a file that holds Python '
        'objects the safe loader refuses; only for a file from a source '
        'you trust, since unpickling can run code')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='print mmengine\'s full log (environment, config, hooks, '
        'logged iterations) instead of the short report; the log file in '
        'the work dir always has it')
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


def build_config(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # Before the checkpoint is looked for (or downloaded), and under the
    # keys the user wrote (--tta moves the model under tta_model.module).
    check_model_arguments(cfg.model)
    # work_dir priority: CLI > config file > config file name
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.checkpoint:
        cfg.load_from = args.checkpoint
    # --resume means the progress records (prepare_test_run), never
    # mmengine's resumption of a training state from a checkpoint (which
    # reads the checkpoint's config and optimizer), whatever the config says.
    cfg.resume = False
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
        check_model_arguments(cfg.tta_model, 'tta_model')
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


def write_results(args, cfg, runner, metrics, seconds) -> None:
    """Write ``results.json``: what was evaluated, how, and the metrics."""
    record = dict(
        config=osp.abspath(args.config),
        checkpoint=args.checkpoint
        if is_remote(args.checkpoint) else osp.abspath(args.checkpoint),
        checkpoint_file=osp.abspath(cfg.load_from),
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
    with open_work_file(cfg.work_dir, 'results.json', 'w') as f:
        json.dump(record, f, indent=2)


def print_report(args, cfg, runner, metrics, seconds) -> None:
    """The per-class table, the metrics and the files written."""
    lines = class_table_lines(class_results(runner))
    paths = [('results', osp.join(cfg.work_dir, 'results.json')),
             ('log', getattr(runner.logger, 'log_file', None)),
             ('progress', osp.join(cfg.work_dir, 'progress')),
             ('predictions', args.out), ('pictures', args.show_dir)]
    # A resumed run evaluated only the images its sampler kept.
    todo = getattr(runner.test_loop.dataloader.sampler, 'todo', None)
    lines += result_lines(metrics, len(runner.test_loop.dataloader.dataset),
                          seconds, paths, None if todo is None else len(todo))
    print('\n'.join(lines), flush=True)


def main(argv=None):
    # Before anything reads a config (mmengine imports pkg_resources then).
    quiet_warnings('--verbose' in (sys.argv[1:] if argv is None else argv))
    # Classification configs have their own command, same arguments.
    if classification_config_of(argv) is not None:
        return classification_main(argv)
    args = parse_args(argv)
    if not osp.isfile(args.config):
        sys.exit(f'error: config not found: {args.config}. Pass one of '
                 f'configs/groupvit_*.py or your own config file.')
    try:
        cfg = build_config(args)
        check_out_dir(cfg.work_dir, '--work-dir')
        if args.trust_pickle and args.checkpoint:
            trust_checkpoint(args.checkpoint)
        # Download (once) and apply the checkpoint's architecture.
        args.checkpoint = args.checkpoint or cfg.get('load_from')
        resolve_load_from(cfg)
        progress, swaps = prepare_test_run(cfg, cfg.load_from, args.resume,
                                           int(os.environ.get('RANK', 0)))
    except USER_ERRORS as e:
        sys.exit(f'error: {user_error_message(e)}')
    init_cpu_distributed(cfg)
    try:
        # The segmentor, head and text encoder check their settings here
        # (the text encoder reads the vocabulary file and the templates).
        runner = build_runner(cfg, args.verbose)
    except USER_ERRORS as e:
        sys.exit(f'error: {user_error_message(e)}')
    for swap in swaps:
        # The log file always; the console with --verbose.
        runner.logger.info(f'swapped {swap}')
    if runner.rank == 0 and not args.verbose:
        # What is run, from settings the model has checked.
        print('\n'.join(
            run_lines(cfg, args.config, args.checkpoint) + swap_lines(swaps)))
    if not args.verbose:
        runner.register_hook(ImageProgressHook())
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
        try:
            write_results(args, cfg, runner, metrics, seconds)
        except USER_ERRORS as e:
            sys.exit(f'error: {user_error_message(e)}')
        if not args.verbose:
            print_report(args, cfg, runner, metrics, seconds)
    finish_distributed()
    return metrics


if __name__ == '__main__':
    main()
