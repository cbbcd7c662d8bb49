"""Eligibility checks: the balance checker seam and the in-process cache layer (300 s by default)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from uuid import UUID

from cachetools import TTLCache

from backends.protocol import Backend, EligibilityResult, TenantContext
from bot.domain.records import EligibilityRule

BalanceChecker = Callable[[TenantContext, UUID, EligibilityRule], Awaitable[Decimal]]


def conviction_balance(backend: Backend) -> BalanceChecker:
    """The default checker: a member's balance is their conviction score."""

    async def check(ctx: TenantContext, profile_id: UUID, rule: EligibilityRule) -> Decimal:
        score = await backend.get_score(ctx, profile_id)
        return score.conviction if score else Decimal(0)

    return check


class MemoryEligibilityCache:
    """The first cache layer, in front of the backend's own; keyed by (community, profile, rule)."""

    def __init__(
        self, ttl_seconds: int, clock: Callable[[], float] = time.monotonic, max_entries: int = 100_000
    ) -> None:
        self._entries: TTLCache[tuple[int, UUID, str], EligibilityResult] = TTLCache(
            max_entries, ttl_seconds, timer=clock
        )

    def get(self, community_id: int, profile_id: UUID, rule_id: str) -> EligibilityResult | None:
        return self._entries.get((community_id, profile_id, rule_id))

    def put(self, community_id: int, result: EligibilityResult) -> None:
        self._entries[(community_id, result.profile_id, result.rule_id)] = result

    def delete(self, community_id: int, profile_id: UUID, rule_id: str | None) -> None:
        for key in [k for k in self._entries if k[0] == community_id and k[1] == profile_id]:
            if rule_id is None or key[2] == rule_id:
                self._entries.pop(key, None)
