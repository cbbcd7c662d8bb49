"""This process's report of itself for the migration page, written to PostgreSQL every few seconds: its
last minutes of latencies, outcomes and shadow results, and its breakers (none of which other processes
see). A loop of the background work."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping, Sequence

from backends.postgres.process_reports import ProcessReports
from bot.app.recent_window import RecentWindow
from bot.rounds import Rounds, RoundWatch, run_rounds
from bot.routing.breaker import CircuitBreaker

NAME = "process-report"


def process_name() -> str:
    """Unique among running processes: the machine and the process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ProcessReporter:
    def __init__(
        self,
        reports: ProcessReports,
        recent: RecentWindow,
        breakers: Mapping[str, CircuitBreaker],
        *,
        shards: Sequence[int],
        interval_seconds: float = 10.0,
    ) -> None:
        self.reports = reports
        self.recent = recent
        self.breakers = dict(breakers)
        self.shards = tuple(shards)
        self.interval = interval_seconds
        self.name = process_name()

    async def report_once(self) -> None:
        report = {**self.recent.summary(), "breakers": {name: b.state for name, b in sorted(self.breakers.items())}}
        await self.reports.write(self.name, self.shards, report)

    async def run(self, stop: asyncio.Event, watch: RoundWatch | None = None) -> None:
        await run_rounds(self.report_once, Rounds(NAME, self.interval), stop, watch)
