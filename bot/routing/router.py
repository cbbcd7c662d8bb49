"""Chooses the backend that serves a command for a guild, from the flag file and the backends' health,
and says why. Precedence, strongest last: rollout → guild override → kill switch → auto-rollback →
data readiness → open breaker."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.domain.service import HotPathService
from bot.routing.breaker import CircuitBreaker
from bot.routing.flag_store import FlagStore
from bot.routing.flags import in_rollout
from bot.routing.readiness import Readiness
from bot.routing.rollback import RollbackMonitor

COMMANDS = ("position", "threshold", "leaderboard")
SCYLLA = "scylla"


@dataclass(frozen=True)
class RoutingDecision:
    command: str
    backend: str
    reason: str
    fallback: str | None = None  # who answers if `backend` fails or is too slow
    shadow: str | None = None  # who also answers, off the user's path, for comparison
    budget_seconds: float = 1.5


class Router:
    def __init__(
        self,
        services: Mapping[str, HotPathService],
        flags: FlagStore,
        breakers: Mapping[str, CircuitBreaker],
        rollback: RollbackMonitor,
        readiness: Readiness | None = None,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self._services = dict(services)
        self.flags = flags
        self.breakers = dict(breakers)
        self.rollback = rollback
        self.readiness = readiness
        self._chance = chance

    @property
    def backends(self) -> list[str]:
        return sorted(self._services)

    def service(self, backend: str) -> HotPathService:
        return self._services[backend]

    async def route(
        self, command: str, guild_id: int, user_id: int | None = None, *, consume_trial: bool = True
    ) -> RoutingDecision:
        """`consume_trial=False` only looks (for status and explain) without using a half-open breaker's trial."""
        await self.rollback.refresh()
        f = self.flags.current
        cf = f.for_command(command)
        live = [b for b in self.backends if b not in f.kill]
        if cf.guilds.get(guild_id) is not None:
            backend, reason = cf.guilds[guild_id], "guild override"
        elif cf.backend is not None and cf.backend != f.default_backend:
            key = guild_id if cf.stickiness == "community" else user_id
            if key is None:
                backend, reason = f.default_backend, "rollout by user without a user"
            else:
                on, bucket = in_rollout(command, key, cf.rollout)
                backend = cf.backend if on else f.default_backend
                reason = f"rollout {cf.rollout}% bucket {bucket}" + ("" if on else " (outside)")
        else:
            backend, reason = cf.backend or f.default_backend, "default"

        if backend not in live:
            backend, reason = self._first(live, f.default_backend), "kill switch"
        latch = self.rollback.latched(command, backend)
        if latch is not None and self._other(backend, live):
            backend, reason = self._other(backend, live) or backend, f"auto-rollback ({latch})"
        if backend == SCYLLA and self.readiness is not None and self.breakers[backend].state != "open":
            not_ready = await self.readiness.check(guild_id)
            if not_ready and self._other(backend, live):
                backend, reason = self._other(backend, live) or backend, not_ready
        other = self._other(backend, live)
        if other and cf.fallback and not self._allows(backend, consume_trial):
            backend, other, reason = other, backend, "breaker open"
        shadow = other if other and cf.shadow and self._chance() * 100 < cf.shadow else None
        return RoutingDecision(
            command, backend, reason, other if cf.fallback else None, shadow, f.time_budget_ms / 1000
        )

    def _allows(self, backend: str, consume_trial: bool) -> bool:
        breaker = self.breakers[backend]
        return breaker.allow() if consume_trial else breaker.state != "open"

    def _other(self, backend: str, live: list[str]) -> str | None:
        return next((b for b in live if b != backend), None)

    @staticmethod
    def _first(live: list[str], preferred: str) -> str:
        return preferred if preferred in live else live[0]
