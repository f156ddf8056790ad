# Copyright (c) mmseg-groupvit contributors. All rights reserved.
"""What the command-line tools print: progress with an ETA, and no lines
that are not about the user's work (the run's log file keeps them)."""
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

#: ``(message, module)`` patterns of the warnings a short console drops.
NOISE_WARNINGS = (
    # mmseg's SegVisualizationHook without --show/--show-dir.
    ('The draw is False', r'mmseg\.engine\.hooks\.visualization_hook$'), )

#: mmengine log records that are warnings in form only (message starts).
NOISE_LOGS = ('The prefix is not set in metric class',
              'CheckedIoUMetric got empty `self.results`')


def quiet_warnings(verbose: bool = False) -> None:
    """Ignore the libraries' known harmless warnings and, without
    ``verbose``, :data:`NOISE_WARNINGS`, for the rest of the process."""
    _mmseg_groupvit_mmcv_shim.quiet_known_warnings()
    for message, module in () if verbose else NOISE_WARNINGS:
        warnings.filterwarnings('ignore', message=message, module=module)


def quiet_profiler() -> None:
    """Silence PyTorch's profiler (Kineto) unless KINETO_LOG_LEVEL is set."""
    os.environ.setdefault('KINETO_LOG_LEVEL', '6')


class ConsoleLogFilter(logging.Filter):
    """Let through warnings and errors (but :data:`NOISE_LOGS`), and info
    records whose message starts with one of ``keep``."""

    def __init__(self, keep: Sequence[str] = ()) -> None:
        super().__init__()
        self.keep = tuple(keep)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return not message.startswith(NOISE_LOGS)
        return bool(self.keep) and message.lstrip().startswith(self.keep)


def quiet_console_log(logger: logging.Logger, keep=()) -> None:
    """Add a :class:`ConsoleLogFilter` to ``logger``'s console handlers."""
    for handler in logger.handlers:
        if (isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, logging.FileHandler)):
            handler.addFilter(ConsoleLogFilter(keep))


def format_seconds(seconds: Optional[float]) -> str:
    """``'1:02:03'``, ``'2:03'``; ``'-'`` for an unknown time."""
    if seconds is None:
        return '-'
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, seconds = divmod(rest, 60)
    return (f'{hours}:{minutes:02d}:{seconds:02d}'
            if hours else f'{minutes}:{seconds:02d}')


class ProgressBar:
    """A progress bar with an ETA on standard error, a context manager whose
    ``advance(n)`` counts ``n`` more done of ``total`` ``unit`` (``'images'``)
    of ``description`` (``'test'``): rich's on a terminal, else a line per
    tenth."""

    def __init__(self, total: int, description: str, unit: str) -> None:
        self.total, self.description, self.unit = total, description, unit
        self.done, self._next = 0, 1
        self.start = time.perf_counter()
        console = Console(file=sys.stderr)
        self._rich = Progress(
            TextColumn('{task.description}'),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            TextColumn('ETA'),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal)
        self._task = self._rich.add_task(description, total=total)

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more done, up to ``total``."""
        count = min(count, self.total - self.done)
        self.done += count
        self._rich.advance(self._task, count)
        step = int(10 * self.done / max(self.total, 1))
        if self._rich.disable and (step >= self._next
                                   or self.done == self.total):
            self._next = step + 1
            elapsed = time.perf_counter() - self.start
            eta = elapsed / self.done * (self.total - self.done) \
                if self.done else None
            print(
                f'{self.description}: {self.done}/{self.total} {self.unit}, '
                f'{format_seconds(elapsed)} elapsed, ETA '
                f'{format_seconds(eta)}',
                file=sys.stderr,
                flush=True)

    def __enter__(self):
        self._rich.start()
        return self

    def __exit__(self, *exc) -> None:
        self._rich.stop()


progress = ProgressBar
