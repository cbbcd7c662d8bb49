"""CPU seconds of the processes a phase runs on, from its start to its end: what a phase's work costs,
process by process (the database servers included).

A process tree's CPU is every live process's own time plus what each has reaped of children that ended
(a PostgreSQL backend closed meanwhile counts in the postmaster's children's times), so a connection
opened and closed inside the phase is counted once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

from bench.env import PG_DATA


def tree_cpu(pid: int, children: bool = True) -> float | None:
    """CPU seconds of the process (and its descendants), None when it is gone."""
    try:
        root = psutil.Process(pid)
        total = 0.0
        for p in [root, *(root.children(recursive=True) if children else [])]:
            with_reaped = p.cpu_times()
            total += with_reaped.user + with_reaped.system
            if children:
                total += with_reaped.children_user + with_reaped.children_system
        return total
    except psutil.Error:
        return None


def cql_node_pid() -> int | None:
    for p in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if p.info["name"] == "java" and "CassandraDaemon" in cmdline:
            return int(p.pid)
    return None


def postgres_pid(data: Path = PG_DATA) -> int | None:
    """The benchmark's PostgreSQL postmaster (its data directory's postmaster.pid)."""
    for candidate in (data / "postmaster.pid", *data.glob("*/postmaster.pid")):
        try:
            return int(candidate.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return None


class CpuLedger:
    """Cores used by each named process over the time between `start` and `stop`."""

    def __init__(self, pids: dict[str, int | None], own: str | None = None) -> None:
        """`own`: a name for this process, counted without its children (they are named apart)."""
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self.own = own
        self.began: dict[str, float] = {}
        self.t0 = 0.0

    def _read(self) -> dict[str, float]:
        read = {name: tree_cpu(pid) for name, pid in self.pids.items()}
        if self.own is not None:
            read[self.own] = tree_cpu(os.getpid(), children=False)
        return {name: cpu for name, cpu in read.items() if cpu is not None}

    def start(self) -> None:
        self.t0, self.began = time.monotonic(), self._read()

    def stop(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        ended = self._read()
        return {name: round((ended[name] - self.began[name]) / elapsed, 3) for name in self.began if name in ended}
