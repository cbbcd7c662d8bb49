"""Chooses the backend that serves a command for a guild, and says why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.service import HotPathService

COMMANDS = ("position", "threshold", "leaderboard")


@dataclass(frozen=True)
class RoutingDecision:
    command: str
    backend: str
    reason: str


class Router:
    """Routes every command to `default_backend`; the flag file plugs in here."""

    def __init__(self, services: Mapping[str, HotPathService], default_backend: str) -> None:
        if default_backend not in services:
            raise ValueError(f"default backend {default_backend!r} is not configured (have: {sorted(services)})")
        self._services = dict(services)
        self.default_backend = default_backend

    @property
    def backends(self) -> list[str]:
        return sorted(self._services)

    def route(self, command: str, guild_id: int, user_id: int | None = None) -> RoutingDecision:
        return RoutingDecision(command, self.default_backend, "default")

    def service(self, decision: RoutingDecision) -> HotPathService:
        return self._services[decision.backend]
