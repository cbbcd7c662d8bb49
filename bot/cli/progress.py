"""A progress bar for long CLI work: redrawn in place on a terminal, a line per 10 % otherwise.

Not tqdm: it redraws with carriage returns into logs and CI captures too, where this prints a line per tenth.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


class ProgressBar:
    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(total, 0)
        self.label = label
        self.done = 0
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._last_decile = -1
        self._started = time.monotonic()

    def update(self, count: int) -> None:
        self.done = min(self.total, self.done + count)
        self._draw()

    def moved_to(self, done: int, total: int) -> None:
        """`progress(done, total)` callbacks: the bar moves to `done`."""
        self.update(done - self.done)

    def close(self) -> None:
        self.done = self.total
        self._draw(final=True)

    def _draw(self, final: bool = False) -> None:
        share = self.done / self.total if self.total else 1.0
        if not self._tty:
            decile = int(share * 10)
            if decile == self._last_decile:
                return
            self._last_decile = decile
        filled = int(share * WIDTH)
        line = (
            f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {self.done}/{self.total}"
            f" {share:4.0%} {time.monotonic() - self._started:5.1f}s"
        )
        if self._tty:
            self._stream.write("\r" + line + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
