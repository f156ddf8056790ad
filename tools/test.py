# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Test (and evaluate) a segmentor or a zero-shot classifier: mmseg's
``tools/test.py`` (1.2.2, Apache-2.0) with the same command line, plus:

- CHECKPOINT is optional (the config's ``load_from``) and may be a URL,
  ``hf://OWNER/NAME``, an NVlabs ``.pth`` or a transformers folder; the
  architecture it records is applied before the model is built;
  ``--random-weights [--seed N]`` evaluates a seeded random model instead;
- ``--help`` and a wrong path answer before PyTorch and mmseg are imported;
  the config is read and checked once (class counts included), before any
  checkpoint is looked for; bad input is one ``error:`` line;
- ``--launcher pytorch`` also works on CPU-only machines (gloo);
- images are loaded and label maps counted with checks, progress is
  recorded in ``WORK_DIR/progress`` and ``--resume`` skips the images an
  interrupted run evaluated (:func:`~mmseg_groupvit.evaluation.
  prepare_test_run`, which says every config value it swaps);
- ``WORK_DIR/results.json`` and a short console (what is run, a progress
  bar, the per-class table, the metrics, the files written) come from
  :class:`~mmseg_groupvit.engine.TestReportHook`; mmengine's full log goes
  to the log file, and to the console with ``--verbose``.
"""
import argparse
import os
import os.path as osp
import sys

# Only what parses and checks the command line: PyTorch, mmseg and this
# package are imported in main(), after it.
from groupvit_common.errors import (ConfigCheckError, error_line,
                                    exit_on_user_error)
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
    from mmseg_groupvit.evaluation import check_out_dir
    from mmseg_groupvit.models.config_arguments import check_model_arguments
    from mmseg_groupvit.utils.config_file import read_config
    cfg = read_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    # Under the keys the user wrote (--tta moves the model).
    check_model_arguments(cfg.model)
    # work_dir priority: CLI > config file > config file name
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.random_weights:
        # The runner seeds everything before it builds the model.
        cfg.load_from = None
        cfg.randomness = dict(seed=args.seed)
    elif args.checkpoint:
        cfg.load_from = args.checkpoint
    # --resume means the progress records, never mmengine's resumption of a
    # training state, whatever the config says.
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
        # mmseg's IoUMetric creates the folder on rank 0 only.
        check_out_dir(args.out, '--out')
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    return cfg


def main(argv=None):
    args = parse_args(argv)
    problem = check_paths(args.config, args.checkpoint, args.random_weights,
                          args.launcher)
    if problem:
        sys.exit(error_line(problem))
    # Before anything reads a config (mmengine imports pkg_resources then).
    from mmseg_groupvit.utils.console import quiet_warnings
    quiet_warnings(args.verbose)
    from mmseg_groupvit.engine import (ImageProgressHook, TestReportHook,
                                       build_runner)
    from mmseg_groupvit.evaluation import (check_out_dir,
                                           is_classification_config,
                                           prepare_test_run, run_lines,
                                           swap_lines)
    from mmseg_groupvit.utils.distributed import (finish_distributed,
                                                  init_cpu_distributed)
    from mmseg_groupvit.weights import resolve_load_from, trust_checkpoint
    with exit_on_user_error():
        cfg = build_config(args)
        # Classification: no label maps, progress or processes; the
        # vocabulary, template and top-k problems are ValueErrors.
        classification = is_classification_config(cfg)
        if classification and args.launcher != 'none':
            raise ConfigCheckError(
                'classification configs run in one process; drop --launcher '
                '(and torchrun / --nproc).')
        check_out_dir(cfg.work_dir, '--work-dir')
        if args.trust_pickle and args.checkpoint:
            trust_checkpoint(args.checkpoint)
        if not args.random_weights:
            # Download (once) and apply the checkpoint's architecture.
            args.checkpoint = args.checkpoint or cfg.get('load_from')
            resolve_load_from(cfg)
        progress, swaps = (None, []) if classification else prepare_test_run(
            cfg, cfg.load_from, args.resume, int(os.environ.get('RANK', 0)))
    init_cpu_distributed(cfg)
    also = (ValueError, FileNotFoundError) if classification else ()
    with exit_on_user_error(*also):
        # The model checks its settings here (the text encoder reads the
        # vocabulary file and the templates).
        runner = build_runner(cfg, args.verbose)
        for swap in swaps:
            runner.logger.info(f'swapped {swap}')  # console with --verbose
        if runner.rank == 0 and not args.verbose:
            print(
                '\n'.join(
                    run_lines(cfg, args.config,
                              weights_label(args.checkpoint, args.seed)) +
                    swap_lines(swaps)),
                flush=True)
        if args.random_weights and runner.rank == 0:
            print(
                f'warning: {RANDOM_BANNER} --random-weights gives a seeded '
                f'random model (an offline trial of the tool); leave it out '
                f'for the config\'s weights.',
                file=sys.stderr)
        if not args.verbose:
            runner.register_hook(ImageProgressHook())
        runner.register_hook(
            TestReportHook(args.config, args.checkpoint, args.seed,
                           args.random_weights, args.cfg_options, args.out,
                           args.show_dir, not args.verbose))
        try:
            metrics = runner.test()
        except KeyboardInterrupt:
            sys.exit('interrupted' + (
                f': the images evaluated so far are recorded in {progress}; '
                f'run the same command with --resume to go on from there.'
                if progress else '.'))
    finish_distributed()
    return metrics


if __name__ == '__main__':
    main()
