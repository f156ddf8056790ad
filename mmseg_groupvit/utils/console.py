# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""What the command-line tools print: progress with an ETA, and no lines
that are not about the user's work.

- :func:`quiet_warnings` drops the Python warnings that say nothing about
  the user's run (setuptools' ``pkg_resources`` notice raised inside
  mmengine, mmseg's notices about its own code), each by message and
  module.
- :func:`progress` is a progress bar with an ETA: rich's on a terminal,
  and a plain line every tenth of the work when the output goes to a file.
- :class:`ConsoleLogFilter` keeps mmengine's console to warnings and errors
  (and, for training, the logged iterations); the full log still goes to
  the run's log file.
"""
import logging
import os
import sys
import time
import warnings
from typing import Optional, Sequence

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

import _mmseg_groupvit_mmcv_shim

__all__ = [
    'quiet_warnings', 'quiet_profiler', 'ConsoleLogFilter',
    'quiet_console_log', 'progress', 'format_seconds'
]

#: Warnings the short console of a tool drops (``--verbose`` keeps them), as
#: ``(message start, module)`` regular expressions; those of every run are
#: ``_mmseg_groupvit_mmcv_shim.KNOWN_HARMLESS_WARNINGS``.
NOISE_WARNINGS = (
    # mmseg's SegVisualizationHook without --show/--show-dir: the hook is
    # in every config and draws only when asked, which is what we want.
    ('The draw is False', r'mmseg\.engine\.hooks\.visualization_hook$'), )

#: mmengine log records that are warnings in form only (message starts).
NOISE_LOGS = (
    # Evaluator: metrics without a prefix are named 'mIoU', not 'x/mIoU'.
    'The prefix is not set in metric class', )


def quiet_warnings(verbose: bool = False) -> None:
    """Ignore the known harmless warnings of the libraries and, without
    ``verbose``, :data:`NOISE_WARNINGS`, for the rest of the process.

    Args:
        verbose (bool): The user asked for the full log.
    """
    _mmseg_groupvit_mmcv_shim.quiet_known_warnings()
    for message, module in () if verbose else NOISE_WARNINGS:
        warnings.filterwarnings('ignore', message=message, module=module)


def quiet_profiler() -> None:
    """Silence the two lines PyTorch's profiler (Kineto, in
    ``libtorch_cpu``) prints at every start and stop,
    ``USDT: ... SyncActivityProfilerHandler.cpp:52] profiler_start`` /
    ``profiler_stop``.

    Kineto logs them at its highest level (USDT, 5, above ERROR, 4), so the
    only switch is ``KINETO_LOG_LEVEL=6``, which also mutes Kineto's own
    error lines; the profiler's records are unaffected. Kineto reads the
    variable when it first logs, so call this before the first profile. A
    value the user set is kept.
    """
    os.environ.setdefault('KINETO_LOG_LEVEL', '6')


class ConsoleLogFilter(logging.Filter):
    """Let through warnings and errors (except :data:`NOISE_LOGS`), and the
    info records whose message starts with one of ``keep``.

    Args:
        keep (Sequence[str]): Starts of info messages to keep, e.g.
            ``('Iter(train)',)``.
    """

    def __init__(self, keep: Sequence[str] = ()) -> None:
        super().__init__()
        self.keep = tuple(keep)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return not message.startswith(NOISE_LOGS)
        return bool(self.keep) and message.lstrip().startswith(self.keep)


def quiet_console_log(logger: logging.Logger, keep=()) -> None:
    """Add a :class:`ConsoleLogFilter` to the console handlers of
    ``logger`` (its file handlers keep every record).

    Args:
        logger (logging.Logger): mmengine's ``MMLogger`` of a runner.
        keep (Sequence[str]): See :class:`ConsoleLogFilter`.
    """
    for handler in logger.handlers:
        if (isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, logging.FileHandler)):
            handler.addFilter(ConsoleLogFilter(keep))


def format_seconds(seconds: float) -> str:
    """``'1:02:03'``, ``'2:03'``; ``'-'`` for an unknown time."""
    if seconds is None or seconds != seconds or seconds == float('inf'):
        return '-'
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f'{hours}:{minutes:02d}:{seconds:02d}'
    return f'{minutes}:{seconds:02d}'


class _PlainProgress:
    """A progress report for output that is not a terminal: one line per
    tenth of the work (and at the end) with the count, the time so far and
    the ETA."""

    def __init__(self, total: int, description: str, unit: str,
                 stream) -> None:
        self.total, self.description, self.unit = total, description, unit
        self.stream = stream
        self.done = 0
        self.start = time.perf_counter()
        self._next = 1

    def advance(self, count: int = 1) -> None:
        self.done = min(self.total, self.done + count)
        step = int(10 * self.done / max(self.total, 1))
        if step >= self._next or self.done == self.total:
            self._next = step + 1
            elapsed = time.perf_counter() - self.start
            eta = (
                elapsed / self.done *
                (self.total - self.done) if self.done else None)
            print(
                f'{self.description}: {self.done}/{self.total} {self.unit}, '
                f'{format_seconds(elapsed)} elapsed, ETA '
                f'{format_seconds(eta)}',
                file=self.stream,
                flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


class _RichProgress:
    """rich's progress bar for one task."""

    def __init__(self, total: int, description: str, unit: str,
                 console: Console) -> None:
        self._progress = Progress(
            TextColumn('{task.description}'),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            TextColumn('ETA'),
            TimeRemainingColumn(),
            console=console)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, count: int = 1) -> None:
        self._progress.advance(self._task, count)

    def __enter__(self):
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()


def progress(total: int,
             description: str,
             unit: str = 'images',
             stream=None,
             terminal: Optional[bool] = None):
    """A progress bar with an ETA, used as a context manager; ``advance(n)``
    counts ``n`` more done.

    Args:
        total (int): How many units the work has.
        description (str): What is done, e.g. ``'test'``.
        unit (str): What is counted. Defaults to ``'images'``.
        stream (file, optional): Where to print. Defaults to
            ``sys.stderr`` (standard output keeps the results).
        terminal (bool, optional): Force the terminal (rich) or the plain
            form; None decides by ``stream``.

    Returns:
        A context manager with ``advance(count=1)``.
    """
    stream = sys.stderr if stream is None else stream
    console = Console(file=stream, force_terminal=terminal)
    if console.is_terminal:
        return _RichProgress(total, description, unit, console)
    return _PlainProgress(total, description, unit, stream)
