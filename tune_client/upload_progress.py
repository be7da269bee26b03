"""A progress bar for uploads that take more than a moment.

Shown on stderr only when it is a terminal, and only once an upload has run
for ``DELAY_S``, so small objects and scripts with redirected output print
nothing.
"""

from __future__ import annotations

import sys
import time
from typing import Any

DELAY_S = 0.5


class UploadProgress:
    """Counts uploaded bytes; draws a rich progress bar when it is worth it."""

    def __init__(self, total: int, label: str = "uploading object") -> None:
        self.total = total
        self.label = label
        self.done = 0
        self._started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        self._wanted = sys.stderr.isatty()

    def advance(self, size: int) -> None:
        self.done += size
        if self._bar is None and self._wanted:
            if time.monotonic() - self._started >= DELAY_S:
                self._start_bar()
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TransferSpeedColumn,
        )

        self._bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=self.total)

    def __enter__(self) -> UploadProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
