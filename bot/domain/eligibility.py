"""Eligibility checks: the balance checker seam and the in-process cache layer (300 s by default)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
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
    """The first cache layer, in front of the backend's own: per (community, profile), each rule's result
    with its own expiry, so forgetting a member is one lookup whatever the cache holds."""

    def __init__(
        self, ttl_seconds: int, clock: Callable[[], float] = time.monotonic, max_entries: int = 100_000
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: TTLCache[tuple[int, UUID], dict[str, tuple[float, EligibilityResult]]] = TTLCache(
            max_entries, ttl_seconds, timer=clock
        )

    def get(self, community_id: int, profile_id: UUID, rule_id: str) -> EligibilityResult | None:
        found = self._entries.get((community_id, profile_id), {}).get(rule_id)
        if found is None or found[0] <= self._clock():
            return None
        return found[1]

    def put(self, community_id: int, result: EligibilityResult) -> None:
        key = (community_id, result.profile_id)
        rules = self._entries.get(key) or {}
        rules[result.rule_id] = (self._clock() + self._ttl, result)
        self._entries[key] = rules

    def forget(self, community_id: int, profile_ids: Iterable[UUID]) -> None:
        """Drop every result of the members, walking the smaller of the two: a write names thousands of
        members where the cache holds those who ran a command lately, or the other way round."""
        wanted = {(community_id, p) for p in profile_ids}
        if len(self._entries) < len(wanted):
            held = [key for key in list(self._entries.keys()) if key in wanted]
        else:
            held = [key for key in wanted if key in self._entries]
        for key in held:
            self._entries.pop(key, None)

    def delete(self, community_id: int, profile_id: UUID, rule_id: str | None) -> None:
        if rule_id is None:
            self._entries.pop((community_id, profile_id), None)
        else:
            self._entries.get((community_id, profile_id), {}).pop(rule_id, None)
