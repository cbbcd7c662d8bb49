"""The migration page's figures, for every bot process at once: per command, who serves what share of the
communities and why (the router's own decision over every community in PostgreSQL), the last minutes'
latencies and shadow results (from the processes' reports), breakers, the outbox, snapshots, and which
communities' copies are not ready and why. The page (`bot.app.migration_html`) only shows them."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from backends.postgres.export import PostgresCopySource
from backends.postgres.process_reports import ProcessReport, ProcessReports
from backends.protocol import BOARDS, BackendError, TenantContext
from bot.app.recent_window import merge_buckets, percentile_ms
from bot.domain.service import HotPathService
from bot.routing.readiness import Readiness
from bot.routing.router import COMMANDS, Router

FRESH_SECONDS = 120.0  # a process that has not reported for this long is not counted
CACHE_SECONDS = 3.0  # viewers within this time share one reading of the databases
LISTED = 50  # communities named with their reasons, per copy; the rest are counted
AT_ONCE = 8  # communities looked at concurrently
SHADOW_SHOWN = ("match", "mismatch", "stale")

_BUCKET = re.compile(r" bucket \d+")


@dataclass(frozen=True)
class _Walked:
    routes: dict[str, Counter[tuple[str, str]]]  # command -> (backend, reason) -> communities
    copies: list[dict[str, Any]]  # per copy: ready, not ready and why
    snapshots: list[dict[str, Any]]  # per copy and board: newest and oldest snapshot


def reason_kind(reason: str) -> str:
    """A decision's reason without what differs per community (the rollout bucket)."""
    return _BUCKET.sub("", reason)


def stage(
    default: str, target: str | None, rollout: int, shadow: int, latches: Mapping[tuple[str, str], str], command: str
) -> str:
    """Where a command's migration stands, in a few words: what the flag file asks, unless a latch undid it."""
    if target is None or target == default:
        return f"on {default}" + (", shadow reads" if shadow else "")
    if (command, target) in latches:
        return f"rolled back from {target} (latch)"
    if rollout >= 100:
        return f"moved to {target}"
    return f"rolling out to {target}" if rollout else f"{target} staged, 0%" + (", shadow reads" if shadow else "")


def _iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at is not None else None


class MigrationPage:
    def __init__(
        self,
        router: Router,
        source: PostgresCopySource,
        readiness: Readiness,
        services: Mapping[str, HotPathService],
        reports: ProcessReports,
    ) -> None:
        """`router` decides as the command path's router does (same flags, breakers and latches);
        `source` and `readiness` read on a pool commands do not wait for."""
        self.router = router
        self.source = source
        self.readiness = readiness
        self.services = dict(services)
        self.reports = reports
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def figures(self) -> dict[str, Any]:
        """Everything the page shows, as JSON. Read again at most every CACHE_SECONDS, or twice as long as
        the last reading took (many communities): the page never keeps the databases busy."""
        async with self._lock:
            if self._cached is None or time.monotonic() >= self._cached[0]:
                started = time.monotonic()
                figures = await self._read()
                took = time.monotonic() - started
                self._cached = (time.monotonic() + max(CACHE_SECONDS, 2 * took), figures | {"took_seconds": took})
            return self._cached[1]

    async def _read(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        await self.router.rollback.refresh(force=True)
        communities = await self.source.community_ids()
        walked = await self._walk(communities, now)
        reports = await self.reports.fresh(FRESH_SECONDS)
        oldest = await self.source.oldest_pending()
        flags = self.router.flags
        return {
            "generated_at": _iso(now),
            "communities": len(communities),
            "flag_file": {
                "path": str(flags.path),
                "loaded_at": _iso(flags.loaded_at),
                "last_error": flags.last_error,
                "default_backend": flags.current.default_backend,
                "kill": list(flags.current.kill),
            },
            "processes": {
                "reporting": len(reports),
                "within_seconds": FRESH_SECONDS,
                "list": [{"process": r.process, "shards": list(r.shards), "at": _iso(r.reported_at)} for r in reports],
            },
            "commands": [self._command(c, walked.routes[c], len(communities), reports) for c in COMMANDS],
            "breakers": _breakers(reports, self.router.backends),
            "outbox": {
                "pending": await self.source.pending(),
                "oldest": _iso(oldest),
                "lag_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
            },
            "snapshots": walked.snapshots,
            "copies": walked.copies,
        }

    async def _walk(self, communities: Sequence[int], now: datetime) -> _Walked:
        """Route every command for every community; ask each copy whether it is ready for each, and
        when its boards' snapshots were built."""
        routes: dict[str, Counter[tuple[str, str]]] = {c: Counter() for c in COMMANDS}
        not_ready: dict[str, dict[int, str]] = {name: {} for name in self.readiness.replicas}
        built: dict[tuple[str, str], list[datetime]] = {(n, b): [] for n in not_ready for b in BOARDS}
        unknown: Counter[tuple[str, str]] = Counter()
        gate = asyncio.Semaphore(AT_ONCE)

        async def one(guild_id: int) -> None:
            async with gate:
                for command in COMMANDS:
                    d = await self.router.route(command, guild_id, None, consume_trial=False)
                    routes[command][(d.backend, reason_kind(d.reason))] += 1
                for name in not_ready:
                    why = await self.readiness.check(name, guild_id)
                    if why is not None:
                        not_ready[name][guild_id] = why
                    for board in BOARDS:
                        try:
                            info = await self.services[name].backend.snapshot_info(TenantContext(guild_id), board)
                        except BackendError:
                            unknown[(name, board)] += 1
                            continue
                        if info.score_version >= 0:
                            built[(name, board)].append(info.built_at or info.as_of)

        await asyncio.gather(*(one(g) for g in communities))
        copies = [
            {
                "backend": name,
                "ready": len(communities) - len(missing),
                "not_ready": len(missing),
                "by_reason": dict(Counter(missing.values()).most_common()),
                "listed": [{"community": str(g), "reason": why} for g, why in sorted(missing.items())[:LISTED]],
            }
            for name, missing in not_ready.items()
        ]
        snapshots = [
            {
                "backend": name,
                "board": board,
                "newest": _iso(max(at)) if at else None,
                "newest_age_seconds": max(0.0, round((now - max(at)).total_seconds(), 1)) if at else None,
                "oldest": _iso(min(at)) if at else None,
                "without": len(communities) - len(at) - unknown[(name, board)],
                "unknown": unknown[(name, board)],
            }
            for (name, board), at in built.items()
        ]
        return _Walked(routes, copies, snapshots)

    def _command(
        self, command: str, routes: Counter[tuple[str, str]], communities: int, reports: Sequence[ProcessReport]
    ) -> dict[str, Any]:
        f = self.router.flags.current
        cf = f.for_command(command)
        served = Counter[str]()
        for (backend, _), n in routes.items():
            served[backend] += n
        backends = []
        shadow = Counter[str]()  # every comparison of the command, whichever backend it was compared with
        for r in reports:
            for counts in r.report.get("shadow", {}).get(command, {}).values():
                shadow.update(counts)
        for backend in self.router.backends:
            buckets = merge_buckets(r.report.get("latency", {}).get(command, {}).get(backend, []) for r in reports)
            outcomes = _summed(reports, "outcomes", command, backend)
            backends.append(
                {
                    "backend": backend,
                    "communities": served[backend],
                    "share": served[backend] / communities if communities else 0.0,
                    "latched": self.router.rollback.latched(command, backend),
                    "killed": backend in f.kill,
                    "p50_ms": percentile_ms(buckets, 0.5),
                    "p99_ms": percentile_ms(buckets, 0.99),
                    "answered": outcomes.get("ok", 0),
                    "not_ok": sum(n for o, n in outcomes.items() if o != "ok"),
                }
            )
        return {
            "command": command,
            "stage": stage(f.default_backend, cf.backend, cf.rollout, cf.shadow, self.router.rollback.latches, command),
            "flags": {
                "backend": cf.backend or f.default_backend,
                "rollout": cf.rollout if cf.backend and cf.backend != f.default_backend else None,
                "stickiness": cf.stickiness,
                "overrides": len(cf.guilds),
                "fallback": cf.fallback,
                "shadow": cf.shadow,
            },
            "routes": [
                {"backend": b, "reason": why, "communities": n, "share": n / communities if communities else 0.0}
                for (b, why), n in sorted(routes.items(), key=lambda item: (-item[1], item[0]))
            ],
            "backends": backends,
            "shadow": {r: shadow.get(r, 0) for r in SHADOW_SHOWN}
            | {"other": sum(n for r, n in shadow.items() if r not in SHADOW_SHOWN), "compared": sum(shadow.values())},
        }


def _summed(reports: Sequence[ProcessReport], part: str, command: str, backend: str) -> Counter[str]:
    total = Counter[str]()
    for r in reports:
        total.update(r.report.get(part, {}).get(command, {}).get(backend, {}))
    return total


def _breakers(reports: Sequence[ProcessReport], backends: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per backend: how many processes have its breaker in each state."""
    states: dict[str, dict[str, int]] = {name: {} for name in backends}
    for r in reports:
        for name, state in r.report.get("breakers", {}).items():
            per = states.setdefault(name, {})
            per[state] = per.get(state, 0) + 1
    return states
