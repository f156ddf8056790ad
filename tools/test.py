# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmseg 1.2.2's ``tools/test.py`` (Apache-2.0) for segmentors and zero-shot
classifiers: checked inputs, resumable progress (docs/evaluation.md)."""
import argparse
import os
import sys

# PyTorch, mmseg and this package are imported after the command line.
from groupvit_common.errors import (ConfigCheckError, error_line,
                                    exit_on_user_error)
from groupvit_common.tool_options import (CHECKPOINT_HELP, check_paths,
                                          runner_options, weight_options)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MMSeg test (and eval) a model',
        parents=[runner_options(), weight_options()])
    add = parser.add_argument
    add('config', help='test config file path')
    add('checkpoint',
        nargs='?',
        help=CHECKPOINT_HELP + ' (default: the config\'s load_from)')
    add('--out',
        help='The directory to save output prediction for offline evaluation')
    add('--show', action='store_true', help='show prediction results')
    add('--show-dir',
        help='paint every image (ground truth and prediction over the '
        'photo) into SHOW_DIR/vis_data/vis_image/test_<image>_0.png')
    add('--wait-time', type=float, default=2, help='the interval of show (s)')
    add('--tta', action='store_true', help='Test time augmentation')
    add('--resume',
        action='store_true',
        help='skip the images an interrupted run of the same config and '
        'checkpoint evaluated in the same work dir')
    add('--trust-pickle',
        action='store_true',
        help='unpickle CHECKPOINT fully (a file the safe loader refuses); '
        'only for a file from a source you trust: unpickling can run code')
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args):
    """The checked config of the command line (no checkpoint looked for)."""
    from groupvit_common.files import check_out_dir
    from mmseg_groupvit.engine import tool_config
    from mmseg_groupvit.evaluation import (check_dataset_paths,
                                           is_classification_config,
                                           is_tta_model)
    from mmseg_groupvit.models.config_arguments import check_model_arguments
    from mmseg_groupvit.utils.config_file import check_scoped_steps
    cfg = tool_config(args)
    classification = is_classification_config(cfg)
    if classification and (args.out or args.show or args.show_dir):
        raise ConfigCheckError(
            '--out, --show and --show-dir write or draw label maps, which a '
            'classification config (GroupViTClassifier) does not predict: '
            'drop them (the metrics are in WORK_DIR/results.json; '
            'tools/demo.py --classify prints an image\'s ranked classes).')
    if classification and args.tta:
        raise ConfigCheckError(
            '--tta averages the segmentation scores of each augmentation '
            '(mmseg\'s SegTTAModel), which a classification config '
            '(GroupViTClassifier) does not give: drop --tta.')
    if classification and args.launcher != 'none':
        raise ConfigCheckError(
            'classification configs run in one process; drop --launcher '
            '(and torchrun / --nproc).')
    if args.random_weights:
        cfg.load_from = None
        cfg.randomness = dict(seed=args.seed)
    elif args.checkpoint:
        cfg.load_from = args.checkpoint
    # --resume means the progress records, never a training state.
    cfg.resume = False
    if args.show_dir:
        check_out_dir(args.show_dir, '--show-dir')
    if args.show or args.show_dir:
        hook = (cfg.get('default_hooks') or {}).get('visualization')
        if not isinstance(hook, dict):
            raise ConfigCheckError(
                '--show and --show-dir need default_hooks.visualization in '
                'the config: set it to dict(type=\'SegVisualizationHook\').')
        hook['draw'] = True
        if args.show:
            hook.update(show=True, wait_time=args.wait_time)
        if args.show_dir:
            if not isinstance(cfg.get('visualizer'), dict):
                raise ConfigCheckError(
                    '--show-dir needs a visualizer in the config: set it to '
                    'dict(type=\'SegLocalVisualizer\', vis_backends=[dict('
                    'type=\'LocalVisBackend\')]).')
            cfg.visualizer['save_dir'] = args.show_dir
    if args.tta and is_tta_model(cfg.model):
        raise ConfigCheckError(
            f'model is already a test-time augmentation model '
            f'({cfg.model.type}, as in the config a --tta run writes to its '
            f'work dir): it averages its augmentations without --tta, and '
            f'--tta would wrap it again. Drop --tta.')
    if args.tta:
        missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
        if missing:
            raise ConfigCheckError(
                f'--tta needs {" and ".join(missing)} in the config, which '
                f'{args.config} does not define (the shipped GroupViT '
                f'configs have no test-time augmentation). Run without '
                f'--tta, or define them as mmseg\'s configs do.')
        if 'module' in cfg.tta_model:
            raise ConfigCheckError(
                'tta_model.module is replaced by the config\'s model under '
                '--tta (as mmseg\'s tools/test.py does): its settings would '
                'be ignored. Remove tta_model.module and set them under model '
                '(e.g. --cfg-options model.text_encoder.vocabulary=...).')
        check_model_arguments(cfg.tta_model, 'tta_model')
        check_scoped_steps(cfg.tta_pipeline, 'tta_pipeline')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if not classification:
        check_dataset_paths(cfg.test_dataloader.dataset, args.out)
    if args.out is not None:
        check_out_dir(args.out, '--out')
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    check_out_dir(cfg.work_dir, '--work-dir')
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if problem := check_paths(args.config, args.checkpoint,
                              args.random_weights, args.launcher):
        sys.exit(error_line(problem))
    from mmseg_groupvit.utils.console import quiet_warnings
    quiet_warnings(args.verbose)
    from mmseg_groupvit.engine import TestReportHook, build_runner
    from mmseg_groupvit.evaluation import (is_classification_config,
                                           prepare_test_run)
    from mmseg_groupvit.utils.distributed import (finish_distributed,
                                                  init_cpu_distributed)
    from mmseg_groupvit.weights import resolve_load_from, trust_checkpoint
    with exit_on_user_error():
        cfg = build_config(args)
        classification = is_classification_config(cfg)
        if args.trust_pickle and args.checkpoint:
            trust_checkpoint(args.checkpoint)
        if not args.random_weights:
            args.checkpoint = args.checkpoint or cfg.get('load_from')
            resolve_load_from(cfg)
        progress, swaps = (None, []) if classification else prepare_test_run(
            cfg, cfg.load_from, args.resume, int(os.environ.get('RANK', 0)))
    init_cpu_distributed(cfg)
    also = (ValueError, FileNotFoundError) if classification else ()
    with exit_on_user_error(*also):
        runner = build_runner(cfg, args.verbose)
        for swap in swaps:
            runner.logger.info(f'swapped {swap}')  # console with --verbose
        report = TestReportHook(args, swaps)
        report.announce(runner)
        runner.register_hook(report)
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
