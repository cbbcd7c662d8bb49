"""The process's eligibility cache forgets the members a write names, whichever side is larger: the
members named or the results held."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from backends.protocol import EligibilityResult
from bot.domain.eligibility import MemoryEligibilityCache


def result(profile: uuid.UUID, rule: str) -> EligibilityResult:
    return EligibilityResult(profile, rule, True, Decimal(1), datetime(2026, 12, 7, tzinfo=UTC))


@pytest.mark.parametrize("named", [2, 500], ids=["fewer-named-than-held", "more-named-than-held"])
def test_forgetting_drops_every_rule_of_the_named_members_and_only_theirs(named: int) -> None:
    cache = MemoryEligibilityCache(ttl_seconds=60, clock=lambda: 0.0)
    held = [uuid.uuid4() for _ in range(20)]
    for profile in held:
        for rule in ("hold", "stake"):
            cache.put(1, result(profile, rule))
            cache.put(2, result(profile, rule))  # the same member's results in another community stay
    forgotten = held[:2] + [uuid.uuid4() for _ in range(named - 2)]
    cache.forget(1, forgotten)
    for profile in held:
        for rule in ("hold", "stake"):
            assert (cache.get(1, profile, rule) is None) == (profile in forgotten)
            assert cache.get(2, profile, rule) is not None
