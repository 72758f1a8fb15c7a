"""Progress: a live per-stage display on a terminal, plain periodic log lines otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING

from curate.util.terminal import console

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class Reporter:
    """Reports stages and batches. ``quiet`` prints nothing but warnings."""

    def __init__(
        self, quiet: bool = False, live: bool | None = None, interval: float = 10.0
    ) -> None:
        self.quiet = quiet
        self.live = (sys.stderr.isatty() if live is None else live) and not quiet
        self.interval = interval
        self.console = console(stderr=True, highlight=False, soft_wrap=True)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last = 0.0
        self._label = ""
        self._rows = 0
        self._started = 0.0

    def __enter__(self) -> Reporter:
        if self.live:
            # Only a live display needs rich's progress machinery (not a log or a quiet run).
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("batches {task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"curate {message}", markup=False, highlight=False)

    def warn(self, message: str) -> None:
        self.console.print(f"curate warning: {message}", markup=False, highlight=False)

    def start(self, label: str, total: int) -> None:
        self._label, self._rows, self._started, self._last = (
            label,
            0,
            time.monotonic(),
            time.monotonic(),
        )
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(label, total=total, rate="")

    def advance(self, rows: int, done: int, total: int) -> None:
        self._rows += rows
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = f"{self._rows / elapsed:,.0f} rows/s"
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, rate=rate)
        elif not self.quiet and time.monotonic() - self._last >= self.interval:
            self._last = time.monotonic()
            eta = elapsed / done * (total - done) if done else 0.0
            self.console.print(
                f"curate {self._label}: {done}/{total} batches, {rate}, eta {eta:.0f}s",
                markup=False,
            )
