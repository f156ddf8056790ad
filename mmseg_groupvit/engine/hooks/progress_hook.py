# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""A progress bar over the images of a test run."""
from typing import Optional

from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...utils.console import progress

__all__ = ['ImageProgressHook']


@HOOKS.register_module()
class ImageProgressHook(Hook):
    """Show the test loop's progress in images, with an ETA, on the main
    process (see :func:`mmseg_groupvit.utils.console.progress`).

    With several processes, each test iteration of the main process stands
    for ``batch_size * world_size`` images of the whole run. Images that a
    resumed run skips (:class:`SkipDoneSampler`) are said once and not
    counted.

    Args:
        stream (file, optional): Where to print; ``sys.stderr`` by default.
    """

    priority = 'LOW'

    def __init__(self, stream=None) -> None:
        self.stream = stream
        self._bar = None
        self._left = 0
        self._step = 1

    def before_test_epoch(self, runner) -> None:
        if runner.rank != 0:
            return
        loader = runner.test_dataloader
        sampler = loader.sampler
        total = len(loader.dataset)
        todo = getattr(sampler, 'todo', None)
        todo = total if todo is None else len(todo)
        skipped = total - todo
        message = f'images      {total}'
        if skipped:
            message += (f' ({skipped} already evaluated in this work dir, '
                        f'{todo} to go)')
        print(message, flush=True)
        self._left = todo
        self._step = (loader.batch_size or 1) * get_world_size()
        self._bar = progress(todo, 'test', 'images', self.stream).__enter__()

    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch: Optional[dict] = None,
                        outputs=None) -> None:
        if self._bar is None:
            return
        count = min(self._step, self._left)
        self._left -= count
        self._bar.advance(count)

    def after_test_epoch(self, runner, metrics=None) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
