# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""Hooks of the tools: the test run's report, and
pretraining's checks, architecture record and first validation."""
import json
import math
import os.path as osp
import sys
import time

from mmengine.dist import get_dist_info, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS
from torch.utils.data import IterableDataset

from groupvit_common.errors import TrainingDataError
from groupvit_common.files import open_work_file
from groupvit_common.tool_options import RANDOM_BANNER, weights_label
from ..datasets.pretraining import CaptionShards
from ..evaluation import class_table_lines, describe_protocol, run_lines
from ..utils.console import progress
from ..weights.arch import HEADS, canonical, infer_arch
from ..weights.download import is_remote


@HOOKS.register_module()
class TestReportHook(Hook):
    """``tools/test.py``'s report: ``WORK_DIR/results.json`` and, without
    ``--verbose``, what is run (``args``, the config values ``swaps``), a
    progress bar over the images left, the per-class table, the metrics and
    the files written."""

    priority = 'LOWEST'

    def __init__(self, args, swaps=()) -> None:
        self.args, self.swaps = args, list(swaps)
        self.report = not args.verbose
        self.label = weights_label(args.checkpoint, args.seed)
        checkpoint = args.checkpoint
        if checkpoint and not is_remote(checkpoint):
            checkpoint = osp.abspath(checkpoint)
        self.checkpoint = weights_label(checkpoint, args.seed)
        self._bar = None

    def announce(self, runner) -> None:
        """Say what is run and warn of random weights."""
        if runner.rank != 0:
            return
        if self.report:
            lines = run_lines(runner.cfg, self.args.config, self.label)
            lines += [f'{"swapped":<11} {swap}' for swap in self.swaps]
            print('\n'.join(lines), flush=True)
        if self.args.random_weights:
            print(
                f'warning: {RANDOM_BANNER} --random-weights gives a seeded '
                f'random model (an offline trial of the tool); leave it out '
                f'for the config\'s weights.',
                file=sys.stderr)

    def before_test_epoch(self, runner) -> None:
        self._start = time.perf_counter()
        loader = runner.test_dataloader
        total = len(loader.dataset)
        # A resumed run's sampler holds only the images left to evaluate.
        self._todo = len(getattr(loader.sampler, 'todo', loader.dataset))
        if runner.rank != 0 or not self.report:
            return
        message = f'images      {total}'
        if self._todo != total:
            message += (f' ({total - self._todo} already evaluated in this '
                        f'work dir, {self._todo} to go)')
        print(message, flush=True)
        self._step = (loader.batch_size or 1) * get_world_size()
        self._bar = progress(self._todo, 'test', 'images').__enter__()

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        if self._bar is not None:
            self._bar.advance(self._step)

    def after_test_epoch(self, runner, metrics=None) -> None:
        seconds = time.perf_counter() - self._start
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
        if runner.rank != 0:
            return
        cfg = runner.cfg
        per_class = next(
            (m.class_results for m in runner.test_evaluator.metrics
             if getattr(m, 'class_results', None) is not None), None)
        record = dict(
            config=osp.abspath(self.args.config),
            checkpoint=self.checkpoint,
            checkpoint_file=osp.abspath(cfg.load_from)
            if cfg.load_from else None,
            random_weights=RANDOM_BANNER if self.args.random_weights else None,
            cfg_options=self.args.cfg_options or {},
            protocol=describe_protocol(cfg),
            # mmseg rounds to 2 decimals in float32; drop the float32 noise.
            metrics={
                k: round(float(v), 4)
                for k, v in (metrics or {}).items()
            },
            per_class=per_class,
            images=len(runner.test_dataloader.dataset),
            seconds=round(seconds, 3),
            processes=get_world_size())
        if self.args.out is not None:
            record['predictions'] = osp.abspath(self.args.out)
        with open_work_file(cfg.work_dir, 'results.json', 'w') as f:
            json.dump(record, f, indent=2)
        if not self.report:
            return
        evaluator = cfg.get('test_evaluator')
        written = dict(
            results=osp.join(cfg.work_dir, 'results.json'),
            log=getattr(runner.logger, 'log_file', None),
            progress=isinstance(evaluator, dict)
            and evaluator.get('progress_dir'),
            predictions=self.args.out,
            pictures=self.args.show_dir)
        written = [(what, path) for what, path in written.items() if path]
        width = max(len(what) for what, _ in written)
        images, run = record['images'], self._todo
        recorded = (f', {images - run} more from the records'
                    if run != images else '')
        per_image = (f'{seconds / run:.2f} s per image{recorded}'
                     if run else f'all {images} from the records')
        summary = '  '.join(f'{k.split("/")[-1]} {v:.2f}'
                            for k, v in record['metrics'].items())
        lines = class_table_lines(per_class) + [
            f'metrics     {summary}' +
            '  [RANDOM WEIGHTS]' * bool(self.args.random_weights),
            f'time        {seconds:.1f} s for {run} images ({per_image})',
            'written'
        ] + [f'  {what:<{width}}  {path}' for what, path in written]
        print('\n'.join(lines), flush=True)


def model_arch(model) -> dict:
    """A built GroupViT's architecture as ``meta.groupvit_arch`` records it."""
    arch = infer_arch(model.state_dict())
    arch['image_encoder'][HEADS] = (
        model.image_encoder.stages[0].blocks[0].attn.num_heads)
    arch['text_encoder'][HEADS] = model.text_encoder.blocks[0].attn.num_heads
    return canonical(arch)


@HOOKS.register_module()
class GroupViTArchHook(Hook):
    """Write ``meta.groupvit_arch`` into every checkpoint saved."""

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        checkpoint.setdefault('meta', {})['groupvit_arch'] = model_arch(model)


def check_train_batches(loader, any_short: bool = True) -> None:
    """Refuse a batch larger than a process's share of the training data
    (unless ``any_short``, only where ``drop_last`` leaves no batch to
    train on); give shards the batch size so that their DataLoader workers
    stream whole batches."""
    dataset, world = loader.dataset, get_dist_info()[1]
    if loader.batch_size is None:  # a batch sampler decides
        return
    shards = isinstance(dataset, CaptionShards)
    if shards:
        dataset.batch_size = loader.batch_size
    share = len(dataset) if isinstance(
        dataset, IterableDataset) else math.ceil(len(dataset) / world)
    if share < loader.batch_size and (any_short or loader.drop_last):
        source = 'the shards' if shards else getattr(
            dataset, 'ann_file', None) or type(dataset).__name__
        raise TrainingDataError(
            f'the training batch ({loader.batch_size} per process x '
            f'{world} process(es)) is larger than the data ({share} '
            f'samples per process from {source}): lower '
            f'train_dataloader.batch_size or add data.')


@HOOKS.register_module()
class PretrainDataCheckHook(Hook):
    """:func:`check_train_batches` before training: a contrastive batch
    smaller than configured is refused too (``tools/train.py`` refuses an
    epoch without a batch when it builds the train loop, before the
    schedulers count an epoch's batches)."""

    def before_train(self, runner) -> None:
        check_train_batches(runner.train_dataloader)


@HOOKS.register_module()
class ValidateFirstHook(Hook):
    """Validate once before training (at step 0 or the resumed step)."""

    def before_train(self, runner) -> None:
        if runner.val_loop is not None:
            runner.val_loop.run()
