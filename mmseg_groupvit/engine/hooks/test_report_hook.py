# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""``WORK_DIR/results.json`` and the console report of a test run."""
import json
import os.path as osp
import time
from typing import Optional

from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from groupvit_common.files import open_work_file
from groupvit_common.tool_options import RANDOM_BANNER, weights_label
from ...evaluation import (class_table_lines, describe_classification_protocol,
                           describe_protocol, is_classification_config,
                           result_lines)
from ...weights.download import is_remote

__all__ = ['TestReportHook']


@HOOKS.register_module()
class TestReportHook(Hook):
    """After the test, the main process writes ``WORK_DIR/results.json``
    (what was evaluated, how, the metrics, the per-class results, images,
    seconds, processes) and, with ``report``, prints the per-class table,
    the metrics and the files written.

    Args:
        config (str): The config file given.
        checkpoint (str, optional): The checkpoint given (None: random).
        seed (int): The seed of random weights.
        random_weights (bool): ``--random-weights`` (said in both).
        cfg_options (dict, optional): ``--cfg-options``.
        out (str, optional): ``--out``. show_dir (str, optional):
            ``--show-dir``.
        report (bool): Print the report. Defaults to True.
    """

    priority = 'LOWEST'

    def __init__(self,
                 config: str,
                 checkpoint: Optional[str],
                 seed: int = 0,
                 random_weights: bool = False,
                 cfg_options: Optional[dict] = None,
                 out: Optional[str] = None,
                 show_dir: Optional[str] = None,
                 report: bool = True) -> None:
        # As given (a URL or hub id), a local path made absolute.
        if checkpoint and not is_remote(checkpoint):
            checkpoint = osp.abspath(checkpoint)
        self.config = config
        self.checkpoint = weights_label(checkpoint, seed)
        self.random_weights, self.cfg_options = random_weights, cfg_options
        self.out, self.show_dir, self.report = out, show_dir, report
        self._start = time.perf_counter()

    def before_test_epoch(self, runner) -> None:
        self._start = time.perf_counter()

    def after_test_epoch(self, runner, metrics=None) -> None:
        seconds = time.perf_counter() - self._start
        if runner.rank != 0:
            return
        cfg, loader = runner.cfg, runner.test_loop.dataloader
        classification = is_classification_config(cfg)
        per_class = next(
            (m.class_results for m in runner.test_evaluator.metrics
             if getattr(m, 'class_results', None) is not None), None)
        record = dict(
            config=osp.abspath(self.config),
            checkpoint=self.checkpoint,
            checkpoint_file=osp.abspath(cfg.load_from)
            if cfg.load_from else None,
            random_weights=RANDOM_BANNER if self.random_weights else None,
            cfg_options=self.cfg_options or {},
            protocol=(describe_classification_protocol
                      if classification else describe_protocol)(cfg),
            # mmseg rounds to 2 decimals in float32; drop the float32 noise.
            metrics={
                k: round(float(v), 4)
                for k, v in (metrics or {}).items()
            },
            per_class=per_class,
            images=len(loader.dataset),
            seconds=round(seconds, 3),
            processes=get_world_size())
        if self.out is not None:
            record['predictions'] = osp.abspath(self.out)
        with open_work_file(cfg.work_dir, 'results.json', 'w') as f:
            json.dump(record, f, indent=2)
        if not self.report:
            return
        evaluator = cfg.get('test_evaluator')
        paths = [('results', osp.join(cfg.work_dir, 'results.json')),
                 ('log', getattr(runner.logger, 'log_file', None)),
                 ('progress', isinstance(evaluator, dict)
                  and evaluator.get('progress_dir')),
                 ('predictions', self.out), ('pictures', self.show_dir)]
        # A resumed run evaluated only the images its sampler kept.
        todo = getattr(loader.sampler, 'todo', None)
        lines = result_lines(
            {
                k.split('/')[-1]: v
                for k, v in record['metrics'].items()
            }, record['images'], seconds, paths,
            None if todo is None else len(todo))
        if self.random_weights:
            lines[0] += '  [RANDOM WEIGHTS]'
        print('\n'.join(class_table_lines(per_class) + lines), flush=True)
