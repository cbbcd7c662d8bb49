"""An external sort of small tuples: sorted runs spilled to files, then merged back in one ordered stream.

A snapshot rebuild orders a whole board twice (by rank, then by-profile rows by partition); holding either
in memory grows with the community (2 GiB at 1M members). Here memory holds one run being filled and one
chunk per run being merged, whatever the number of records.

Records are compared as plain tuples, so their leading fields must tell any two apart (the comparison
never reaches a None or a value of another type further on). They are pickled, which keeps Decimals exact.
"""

from __future__ import annotations

import heapq
import pickle
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from itertools import islice
from pathlib import Path
from typing import Any

# Records held in memory before they are sorted and spilled: a few tens of MB of small tuples.
RUN_ROWS = 25_000
# Records per pickle in a run file: what a merge holds of each run at a time.
CHUNK_ROWS = 256
# Runs merged at once; past that, runs are first merged into longer ones, so a merge of any number of
# records holds at most FAN_IN chunks (and as many open files).
FAN_IN = 64

Record = tuple[Any, ...]


class SpillSort:
    """Records added in any order, read back sorted once (`sorted()`), with at most `run_rows` of them and
    `fan_in` chunks in memory. Its files go in `directory`, which the caller removes; `close()` closes the
    ones still open."""

    def __init__(self, directory: Path, name: str, *, run_rows: int | None = None, fan_in: int | None = None) -> None:
        self._directory = directory
        self._name = name
        self._run_rows = run_rows or RUN_ROWS
        self._fan_in = max(2, fan_in or FAN_IN)
        self._buffer: list[Record] = []
        self._runs: list[Path] = []
        self._spilled = 0
        self._files = ExitStack()
        self.count = 0
        # The most records held at once (the buffer, or the chunks of a merge): for tests.
        self.peak_held = 0

    def add(self, record: Record) -> None:
        self._buffer.append(record)
        self.count += 1
        if len(self._buffer) >= self._run_rows:
            self._hold(len(self._buffer))
            self._spill(self._buffer)
            self._buffer = []

    def sorted(self) -> Iterator[Record]:
        """Every record added, in ascending order; no more may be added."""
        tail = sorted(self._buffer)
        self._buffer = []
        while len(self._runs) + (1 if tail else 0) > self._fan_in:
            merged, self._runs = self._runs[: self._fan_in], self._runs[self._fan_in :]
            self._spill(self._merge(merged))
        return self._merge(self._runs, tail)

    def close(self) -> None:
        self._files.close()

    def _spill(self, records: Iterable[Record]) -> None:
        """Write `records` (sorted here when they are a list) as a new run."""
        if isinstance(records, list):
            records.sort()
        self._spilled += 1
        path = self._directory / f"{self._name}-{self._spilled}.run"
        with path.open("wb") as out:
            it = iter(records)
            while chunk := list(islice(it, CHUNK_ROWS)):
                pickle.dump(chunk, out, pickle.HIGHEST_PROTOCOL)
        self._runs.append(path)

    def _merge(self, runs: list[Path], tail: list[Record] | None = None) -> Iterator[Record]:
        streams = [self._read(path) for path in runs]
        if tail:
            streams.append(iter(tail))
        self._hold(len(runs) * CHUNK_ROWS + len(tail or ()))
        return heapq.merge(*streams)

    def _read(self, path: Path) -> Iterator[Record]:
        file = self._files.enter_context(path.open("rb"))

        def records() -> Iterator[Record]:
            try:
                while True:
                    try:
                        chunk = pickle.load(file)
                    except EOFError:
                        break
                    yield from chunk
            finally:
                file.close()
                path.unlink(missing_ok=True)  # read once: its space is freed as the merge goes

        return records()

    def _hold(self, records: int) -> None:
        self.peak_held = max(self.peak_held, records)
