# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmengine's ``Runner`` as the tools use it."""
import contextlib
import io
import os.path as osp
from typing import Optional, Sequence

from mmengine.dist import master_only
from mmengine.logging import MMLogger
from mmengine.runner import EpochBasedTrainLoop, Runner
from mmseg.registry import LOOPS

from groupvit_common.files import open_work_file
from ..utils.console import quiet_console_log
from .hooks import check_train_batches

#: The info records a quiet training console keeps (message starts).
TRAIN_LOG = ('Iter(train)', 'Iter(val)', 'Epoch(train)', 'Epoch(val)',
             'per class results', '+---', 'Validation skips',
             'Saving checkpoint', 'Auto resumed from', 'Resumed')


class ToolRunner(Runner):
    """mmengine's ``Runner`` that saves its config without following a
    symbolic link and refuses an epoch-based training whose epoch has no
    batch (:func:`check_train_batches`) before the schedulers count them;
    with :attr:`keep` set, the console shows warnings and the info records
    starting with one of ``keep``."""

    keep: Optional[Sequence[str]] = None

    @master_only
    def dump_config(self) -> None:
        name = (
            osp.basename(self.cfg.filename)
            if self.cfg.filename else f'{self.timestamp}.py')
        with open_work_file(self.work_dir, name, 'w') as f:
            f.write(self.cfg.dump())

    def build_train_loop(self, loop):
        loop = super().build_train_loop(loop)
        if isinstance(loop, EpochBasedTrainLoop):
            check_train_batches(loop.dataloader, any_short=False)
        return loop

    def build_logger(self, *args, **kwargs):
        # mmengine names the logger, message hub and visualizer by config
        # and second: a second run of a config within the same second of a
        # process would get the first's (its console stream and log file).
        base, count = self._experiment_name, 1
        while MMLogger.check_instance_created(self._experiment_name):
            count += 1
            self._experiment_name = f'{base}_{count}'
        logger = super().build_logger(*args, **kwargs)
        if self.keep is not None:
            quiet_console_log(logger, self.keep)
        return logger

    def load_checkpoint(self, *args, **kwargs):
        if self.keep is None:
            return super().load_checkpoint(*args, **kwargs)
        # mmengine print()s 'Loads checkpoint by local backend from path:'.
        with contextlib.redirect_stdout(io.StringIO()):
            return super().load_checkpoint(*args, **kwargs)


def tool_config(args, test: bool = True):
    """The checked config of a runner tool's command line: of a test run,
    else (``test=False``) of a training run."""
    from ..models.config_arguments import RESERVED, check_model_arguments
    from ..utils.config_file import read_config
    cfg = read_config(args.config, args.cfg_options, test=test, train=not test)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if not test:  # e.g. max_iters for EpochBasedTrainLoop
        loop = dict(cfg.get('train_cfg') or {})
        reserved = RESERVED
        if 'type' not in loop:  # mmengine's choice, given _scope_ too
            loop['type'] = ('EpochBasedTrainLoop' if loop.pop(
                'by_epoch', None) else 'IterBasedTrainLoop')
            reserved = ('type', )
        check_model_arguments(loop, 'train_cfg', LOOPS, reserved)
    return cfg


def build_runner(cfg,
                 verbose: bool = False,
                 keep: Sequence[str] = ()) -> Runner:
    """The runner of a tool (console log filtered unless ``verbose``)."""
    keep = None if verbose else tuple(keep)
    return type('ToolRunner', (ToolRunner, ), dict(keep=keep)).from_cfg(cfg)
