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

from bot.routing.breaker import CircuitBreaker
from bot.routing.flag_store import FlagStore
from bot.routing.flags import CommandFlags, FlagFile, in_rollout
from bot.routing.readiness import Readiness
from bot.routing.rollback import RollbackMonitor

COMMANDS = ("position", "threshold", "leaderboard", "naib")


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
        backends: Sequence[str],
        flags: FlagStore,
        breakers: Mapping[str, CircuitBreaker],
        rollback: RollbackMonitor,
        readiness: Readiness | None = None,
        *,
        reference: str | None = None,
        chance: Callable[[], float] = random.random,
    ) -> None:
        """`backends`: the registered names, in registry order; `reference` is the backend shadow reads
        compare against (the source of truth), by default the first registered."""
        self._names = list(backends)
        self.flags = flags
        self.breakers = dict(breakers)
        self.rollback = rollback
        self.readiness = readiness
        self.reference = reference or self._names[0]
        self._chance = chance

    @property
    def backends(self) -> list[str]:
        """Every registered backend, in registry order."""
        return list(self._names)

    async def route(
        self, command: str, guild_id: int, user_id: int | None = None, *, consume_trial: bool = True
    ) -> RoutingDecision:
        """`consume_trial=False` only looks (for status and explain) without using a half-open breaker's trial."""
        await self.rollback.refresh()
        f = self.flags.current
        cf = f.for_command(command)
        live = [b for b in self._names if b not in f.kill]
        backend, reason = self._by_flags(command, cf, f, guild_id, user_id)

        if backend not in live:
            backend, reason = self._first(live, f.default_backend), "kill switch"
        backend, reason = await self._usable(
            command, backend, reason, live, f.default_backend, guild_id, cf.fallback, consume_trial
        )
        others = self._others(backend, live, f.default_backend)
        shadow = self._shadow_target(backend, cf, others) if cf.shadow and self._chance() * 100 < cf.shadow else None
        fallbacks = tuple(others) if cf.fallback else ()
        return RoutingDecision(command, backend, reason, fallbacks, shadow, f.time_budget_ms / 1000)

    async def _usable(
        self,
        command: str,
        backend: str,
        reason: str,
        live: Sequence[str],
        default: str,
        guild_id: int,
        breakers_reroute: bool,
        consume_trial: bool,
    ) -> tuple[str, str]:
        """The first of `backend` and the others, in order, that is not latched for the command, is ready
        for the guild and whose breaker lets the call through; the reason is why `backend` was passed over.

        When none qualifies, the least harmful: an open breaker may still answer right, a latched backend
        is suspected wrong, a copy that is not ready is known to differ.
        """
        passed_over: list[tuple[int, str, str]] = []
        for candidate in [backend, *self._others(backend, live, default)]:
            why, harm = await self._refusal(command, candidate, guild_id, breakers_reroute)
            if why is None and (not breakers_reroute or self._allows(candidate, consume_trial)):
                return candidate, reason if candidate == backend else passed_over[0][1]
            passed_over.append((harm if why else 0, why or "breaker open", candidate))
        least = min(passed_over, key=lambda p: p[0])[2]
        return least, passed_over[0][1] if least != backend else reason

    async def _refusal(
        self, command: str, backend: str, guild_id: int, breakers_reroute: bool
    ) -> tuple[str | None, int]:
        """(why `backend` may not serve the command for the guild, how harmful serving anyway would be)."""
        if breakers_reroute and self.breakers[backend].state == "open":
            return "breaker open", 0
        latch = self.rollback.latched(command, backend)
        if latch is not None:
            return f"auto-rollback ({latch})", 1
        if self.readiness is not None:
            not_ready = await self.readiness.check(backend, guild_id)
            if not_ready:
                return not_ready, 2
        return None, 0

    async def may_fall_back_to(self, command: str, backend: str, guild_id: int) -> bool:
        """A fallback is only asked when its breaker is closed (a half-open one is waiting on its single
        trial call), it is not latched for the command and it is ready for the guild."""
        if self.breakers[backend].state != "closed":
            return False
        why, _ = await self._refusal(command, backend, guild_id, breakers_reroute=True)
        return why is None

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
        order = dict.fromkeys([default, self.reference, *self._names])
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
