"""Chooses the backend that serves a command for a guild, from the flag file and the backends' health,
and says why. Precedence, strongest last: rollout → guild override → kill switch → auto-rollback →
data readiness → open breaker.

Backends are known only by their registered names: the registry's order (the reference backend first)
is the order in which others are tried.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bot.domain.service import HotPathService
from bot.routing.breaker import CircuitBreaker
from bot.routing.flag_store import FlagStore
from bot.routing.flags import CommandFlags, FlagFile, in_rollout
from bot.routing.readiness import Readiness
from bot.routing.rollback import RollbackMonitor

COMMANDS = ("position", "threshold", "leaderboard")


@dataclass(frozen=True)
class RoutingDecision:
    command: str
    backend: str
    reason: str
    fallbacks: tuple[str, ...] = ()  # who answers, in this order, if `backend` fails or is too slow
    shadow: str | None = None  # who also answers, off the user's path, for comparison
    budget_seconds: float = 1.5

    @property
    def fallback(self) -> str | None:
        return self.fallbacks[0] if self.fallbacks else None


class Router:
    def __init__(
        self,
        services: Mapping[str, HotPathService],
        flags: FlagStore,
        breakers: Mapping[str, CircuitBreaker],
        rollback: RollbackMonitor,
        readiness: Readiness | None = None,
        *,
        reference: str | None = None,
        chance: Callable[[], float] = random.random,
    ) -> None:
        """`services` in registry order; `reference` is the backend shadow reads compare against (the
        source of truth), by default the first registered."""
        self._services = dict(services)
        self.flags = flags
        self.breakers = dict(breakers)
        self.rollback = rollback
        self.readiness = readiness
        self.reference = reference or next(iter(self._services))
        self._chance = chance

    @property
    def backends(self) -> list[str]:
        """Every registered backend, in registry order."""
        return list(self._services)

    def service(self, backend: str) -> HotPathService:
        return self._services[backend]

    async def route(
        self, command: str, guild_id: int, user_id: int | None = None, *, consume_trial: bool = True
    ) -> RoutingDecision:
        """`consume_trial=False` only looks (for status and explain) without using a half-open breaker's trial."""
        await self.rollback.refresh()
        f = self.flags.current
        cf = f.for_command(command)
        live = [b for b in self._services if b not in f.kill]
        backend, reason = self._by_flags(command, cf, f, guild_id, user_id)

        if backend not in live:
            backend, reason = self._first(live, f.default_backend), "kill switch"
        others = self._others(backend, live, f.default_backend)
        latch = self.rollback.latched(command, backend)
        if latch is not None and others:
            backend, reason = others[0], f"auto-rollback ({latch})"
            others = self._others(backend, live, f.default_backend)
        if self.readiness is not None and self.breakers[backend].state != "open":
            not_ready = await self.readiness.check(backend, guild_id)
            if not_ready and others:
                backend, reason = others[0], not_ready
                others = self._others(backend, live, f.default_backend)
        if others and cf.fallback and not self._allows(backend, consume_trial):
            backend, reason = others[0], "breaker open"
            others = self._others(backend, live, f.default_backend)
        shadow = self._shadow_target(backend, cf, others) if cf.shadow and self._chance() * 100 < cf.shadow else None
        fallbacks = tuple(others) if cf.fallback else ()
        return RoutingDecision(command, backend, reason, fallbacks, shadow, f.time_budget_ms / 1000)

    def _by_flags(
        self, command: str, cf: CommandFlags, f: FlagFile, guild_id: int, user_id: int | None
    ) -> tuple[str, str]:
        if cf.guilds.get(guild_id) is not None:
            return cf.guilds[guild_id], "guild override"
        if cf.backend is not None and cf.backend != f.default_backend:
            key = guild_id if cf.stickiness == "community" else user_id
            if key is None:
                return f.default_backend, "rollout by user without a user"
            on, bucket = in_rollout(command, key, cf.rollout)
            return (cf.backend if on else f.default_backend), f"rollout {cf.rollout}% bucket {bucket}" + (
                "" if on else " (outside)"
            )
        return cf.backend or f.default_backend, "default"

    def _others(self, backend: str, live: Sequence[str], default: str) -> list[str]:
        """The live backends other than `backend`, in the order they are tried: the flag file's default,
        the reference, then the registry's order."""
        order = dict.fromkeys([default, self.reference, *self._services])
        return [b for b in order if b in live and b != backend]

    def _shadow_target(self, backend: str, cf: CommandFlags, others: Sequence[str]) -> str | None:
        """Compare against the reference; when the reference serves, against the command's rollout target."""
        if backend != self.reference and self.reference in others:
            return self.reference
        if cf.backend is not None and cf.backend in others:
            return cf.backend
        return others[0] if others else None

    def _allows(self, backend: str, consume_trial: bool) -> bool:
        breaker = self.breakers[backend]
        return breaker.allow() if consume_trial else breaker.state != "open"

    @staticmethod
    def _first(live: Sequence[str], preferred: str) -> str:
        return preferred if preferred in live else live[0]
