"""Operation metrics in Prometheus form: latency, outcomes, fallbacks, breakers, shadow results, reloads."""

from __future__ import annotations

import logging
from collections import Counter

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter

from bot.app.recent_window import RecentWindow

log = logging.getLogger(__name__)

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class Metrics:
    """One registry per bot (tests build many bots in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.outcomes: Counter[tuple[str, str, str]] = Counter()
        self.shadow_results: Counter[tuple[str, str, str]] = Counter()
        self.fallback_counts: Counter[tuple[str, str, str]] = Counter()
        self.recent = RecentWindow()  # the last minutes, for the migration page
        self._latency = Histogram(
            "sietch_command_seconds",
            "Time to answer a command",
            ["command", "backend", "outcome"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5),
            registry=self.registry,
        )
        self._fallbacks = PromCounter(
            "sietch_fallbacks",
            "Commands answered by the other backend",
            ["command", "source", "target", "reason"],
            registry=self.registry,
        )
        self._breaker = Gauge(
            "sietch_breaker_state",
            "Circuit breaker per backend: 0 closed, 1 half-open, 2 open",
            ["backend"],
            registry=self.registry,
        )
        self._shadow = PromCounter(
            "sietch_shadow_results", "Shadow comparisons", ["command", "backend", "result"], registry=self.registry
        )
        self._reloads = PromCounter("sietch_flag_reloads", "Flag file reloads", ["result"], registry=self.registry)
        self._loop_failures = PromCounter(
            "sietch_background_failures", "Failed rounds of background work", ["loop"], registry=self.registry
        )
        self._loop_success = Gauge(
            "sietch_background_last_success_timestamp_seconds",
            "When each background loop last finished a round",
            ["loop"],
            registry=self.registry,
        )
        self._invalid = PromCounter(
            "sietch_discord_invalid_requests",
            "Requests Discord answered 401, 403 or 429 (Discord bans a bot past 10,000 in 10 minutes)",
            ["status"],
            registry=self.registry,
        )
        self._latched = Gauge(
            "sietch_auto_rollback_latched",
            "Auto-rollback latches in force",
            ["command", "backend"],
            registry=self.registry,
        )

    def observe(self, command: str, backend: str, community_id: int | None, outcome: str, seconds: float) -> None:
        self.outcomes[(command, backend, outcome)] += 1
        self._latency.labels(command, backend, outcome).observe(seconds)
        self.recent.call(command, backend, outcome, seconds)
        log.info(
            "command=%s backend=%s guild=%s outcome=%s ms=%.1f", command, backend, community_id, outcome, seconds * 1000
        )

    def fallback(self, command: str, source: str, target: str, reason: str) -> None:
        self.fallback_counts[(command, source, target)] += 1
        self._fallbacks.labels(command, source, target, reason).inc()

    def breaker(self, backend: str, state: str) -> None:
        self._breaker.labels(backend).set(BREAKER_STATES[state])
        log.warning("breaker backend=%s state=%s", backend, state)

    def shadow(self, command: str, backend: str, result: str) -> None:
        self.shadow_results[(command, backend, result)] += 1
        self._shadow.labels(command, backend, result).inc()
        self.recent.shadow(command, backend, result)

    def loop_failed(self, name: str) -> None:
        self._loop_failures.labels(name).inc()

    def loop_succeeded(self, name: str, at: float) -> None:
        self._loop_success.labels(name).set(at)

    def invalid_request(self, status: int) -> None:
        self._invalid.labels(str(status)).inc()

    def reload(self, ok: bool) -> None:
        self._reloads.labels("ok" if ok else "error").inc()

    def latches(self, latched: dict[tuple[str, str], str]) -> None:
        self._latched.clear()
        for command, backend in latched:
            self._latched.labels(command, backend).set(1)
