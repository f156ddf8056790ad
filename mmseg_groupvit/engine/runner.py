# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""mmengine's ``Runner`` as ``tools/test.py`` and ``tools/train.py`` use
it."""
import contextlib
import io
import os.path as osp
from typing import Sequence

from mmengine.dist import master_only
from mmengine.runner import Runner

from groupvit_common.files import open_work_file
from ..utils.console import quiet_console_log

__all__ = ['ToolRunner', 'QuietRunner', 'build_runner', 'TRAIN_LOG']

#: What the console of a quiet training run keeps of mmengine's info log
#: (message starts): the logged iterations (loss, learning rate, ETA), the
#: validation's per-class table and metrics (and what it skips), the
#: checkpoints saved.
TRAIN_LOG = ('Iter(train)', 'Iter(val)', 'Epoch(train)', 'Epoch(val)',
             'per class results', '+---', 'Validation skips',
             'Saving checkpoint', 'Auto resumed from', 'Resumed')


class ToolRunner(Runner):
    """mmengine's ``Runner`` as the tools build it. ``tools/test.py``
    always sets ``cfg.resume = False``: its ``--resume`` means the
    evaluation's progress records, never mmengine's resumption of a
    training state (which reads the checkpoint's config). The config is
    saved in the work dir without following a symbolic link there."""

    @master_only
    def dump_config(self) -> None:
        name = (
            osp.basename(self.cfg.filename)
            if self.cfg.filename else f'{self.timestamp}.py')
        with open_work_file(self.work_dir, name, 'w') as f:
            f.write(self.cfg.dump())


class QuietRunner(ToolRunner):
    """:class:`ToolRunner` whose console shows warnings and errors only
    (plus the info records starting with one of :attr:`keep`); the log file
    in the work dir keeps mmengine's full log."""

    #: Starts of info messages the console keeps.
    keep: Sequence[str] = ()

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        quiet_console_log(logger, self.keep)
        return logger

    def load_checkpoint(self, *args, **kwargs):
        # mmengine prints 'Loads checkpoint by local backend from path:'
        # with print(), not through the logger.
        with contextlib.redirect_stdout(io.StringIO()):
            return super().load_checkpoint(*args, **kwargs)


def build_runner(cfg,
                 verbose: bool = False,
                 keep: Sequence[str] = ()) -> Runner:
    """Build the runner of a tool from its config.

    Args:
        cfg (Config): The full config.
        verbose (bool): Keep mmengine's full console log. Defaults to
            False.
        keep (Sequence[str]): Without ``verbose``, the starts of the info
            messages the console still shows (e.g. ``'Iter(train)'``).

    Returns:
        Runner: A :class:`ToolRunner` (``verbose``) or :class:`QuietRunner`.
    """
    if verbose:
        return ToolRunner.from_cfg(cfg)
    runner_class = type('QuietRunner', (QuietRunner, ), dict(keep=tuple(keep)))
    return runner_class.from_cfg(cfg)
