"""In-process operation metrics: latency and outcome by command, backend and community."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Metrics:
    outcomes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    latency_seconds: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    max_samples: int = 10_000

    def observe(self, command: str, backend: str, community_id: int | None, outcome: str, seconds: float) -> None:
        self.outcomes[(command, backend, outcome)] += 1
        samples = self.latency_seconds[(command, backend)]
        samples.append(seconds)
        if len(samples) > self.max_samples:
            del samples[: len(samples) - self.max_samples]
        log.info(
            "command=%s backend=%s guild=%s outcome=%s ms=%.1f",
            command,
            backend,
            community_id,
            outcome,
            seconds * 1000,
        )
