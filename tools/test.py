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
  ``--random-weights [--seed N]`` evaluates a seeded random model instead
  (an offline trial), said on the console and in ``results.json``;
- ``--help`` and a wrong path answer before PyTorch and mmseg are imported;
  the config is read and checked once, before any checkpoint is looked for;
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

# Only what parses and checks the command line: PyTorch, mmseg and this
# package are imported in main(), after it (--help and a wrong path answer
# at once).
from groupvit_common.tool_options import (RANDOM_BANNER, check_paths,
                                          runner_options, weight_options,
                                          weights_label)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MMSeg test (and eval) a model',
        parents=[runner_options(), weight_options()])
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='checkpoint: a file (converted, NVlabs .pth or transformers '
        'weights), a transformers folder, an http(s) URL or hf://OWNER/NAME '
        '(default: the config\'s load_from, downloaded once into the cache)')
    parser.add_argument(
        '--out',
        type=str,
        help='The directory to save output prediction for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='paint every image (ground truth and prediction over the '
        'photo) into SHOW_DIR/vis_data/vis_image/test_<image>_0.png')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
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


def build_config(args):
    """The merged config of the command line, checked (one read of the
    file, before any checkpoint is looked for)."""
    from groupvit_common.errors import ConfigCheckError
    from mmseg_groupvit.evaluation import check_out_dir
    from mmseg_groupvit.models.config_arguments import check_model_arguments
    from mmseg_groupvit.utils.config_file import read_config
    cfg = read_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
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
    if args.show_dir:
        check_out_dir(args.show_dir, '--show-dir')
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
    """Write ``results.json``: what was evaluated, how, and the metrics
    (``random_weights``: :data:`RANDOM_BANNER` with ``--random-weights``)."""
    from mmengine.dist import get_world_size

    from groupvit_common.files import open_work_file
    from mmseg_groupvit.evaluation import describe_protocol
    from mmseg_groupvit.weights.download import is_remote
    checkpoint = args.checkpoint
    record = dict(
        config=osp.abspath(args.config),
        checkpoint=weights_label(
            checkpoint if not checkpoint or is_remote(checkpoint) else
            osp.abspath(checkpoint), args.seed),
        checkpoint_file=osp.abspath(cfg.load_from) if cfg.load_from else None,
        random_weights=RANDOM_BANNER if args.random_weights else None,
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
    from mmseg_groupvit.evaluation import class_table_lines, result_lines
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
    args = parse_args(argv)
    problem = check_paths(args.config, args.checkpoint, args.random_weights,
                          args.launcher)
    if problem:
        sys.exit(f'error: {problem}')
    # Before anything reads a config (mmengine imports pkg_resources then).
    from mmseg_groupvit.utils.console import quiet_warnings
    quiet_warnings(args.verbose)
    from groupvit_common.errors import USER_ERRORS, user_error_message
    from mmseg_groupvit.evaluation import (check_out_dir,
                                           is_classification_config,
                                           prepare_test_run)
    from mmseg_groupvit.weights import resolve_load_from, trust_checkpoint
    try:
        cfg = build_config(args)
    except USER_ERRORS as e:
        sys.exit(f'error: {user_error_message(e)}')
    if is_classification_config(cfg):
        # Classification configs have their own command, same arguments.
        from mmseg_groupvit.engine import classification_main
        return classification_main(sys.argv[1:] if argv is None else argv)
    try:
        check_out_dir(cfg.work_dir, '--work-dir')
        if args.trust_pickle and args.checkpoint:
            trust_checkpoint(args.checkpoint)
        if args.random_weights:
            # The runner seeds everything before it builds the model.
            cfg.load_from = None
            cfg.randomness = dict(seed=args.seed)
        else:
            # Download (once) and apply the checkpoint's architecture.
            args.checkpoint = args.checkpoint or cfg.get('load_from')
            resolve_load_from(cfg)
        progress, swaps = prepare_test_run(cfg, cfg.load_from, args.resume,
                                           int(os.environ.get('RANK', 0)))
    except USER_ERRORS as e:
        sys.exit(f'error: {user_error_message(e)}')
    from mmseg_groupvit.engine import ImageProgressHook, build_runner
    from mmseg_groupvit.evaluation import (check_model_classes, run_lines,
                                           swap_lines)
    from mmseg_groupvit.utils.distributed import (finish_distributed,
                                                  init_cpu_distributed)
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
            run_lines(cfg, args.config,
                      weights_label(args.checkpoint, args.seed)) +
            swap_lines(swaps)))
    if args.random_weights and runner.rank == 0:
        print(
            f'warning: {RANDOM_BANNER} --random-weights gives a seeded '
            f'random model (an offline trial of the tool); leave it out '
            f'for the config\'s weights.',
            file=sys.stderr)
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
