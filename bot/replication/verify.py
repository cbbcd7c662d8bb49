"""Compares what two backends answer for a community: thresholds, waitlists, pages and positions."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from backends.protocol import BOARDS, Community, TenantContext
from bot.domain.service import HotPathService

Progress = Callable[[int], None]
PAGE_SIZE = 10
MEMBERS_AT_ONCE = 16


@dataclass(frozen=True)
class Difference:
    what: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.what}:\n    expected {self.expected}\n    actual   {self.actual}"


def pages_to_check(total: int, all_pages: bool, sample: int) -> list[int]:
    """Every page of a small board; for a big one the first and last pages and an even spread between."""
    pages = max(1, -(-total // PAGE_SIZE))
    if all_pages or pages <= sample:
        return list(range(1, pages + 2))  # one past the end, which must be empty on both
    step = max(1, pages // sample)
    return sorted({1, 2, *range(1, pages + 1, step), pages, pages + 1})


def _spread(items: Sequence[UUID], sample: int) -> list[UUID]:
    if sample <= 0 or len(items) <= sample:
        return list(items)
    step = len(items) / sample
    return [items[int(i * step)] for i in range(sample)]


async def compare(
    expected: HotPathService,
    actual: HotPathService,
    guild_id: int,
    profile_ids: Sequence[UUID],
    *,
    sample: int = 5000,
    progress: Progress | None = None,
) -> list[Difference]:
    """`sample=0` checks every member and page; else at most `sample` of each, spread evenly."""
    diffs: list[Difference] = []

    def check(what: str, a: Any, b: Any) -> None:
        if a != b:
            diffs.append(Difference(what, a, b))

    ctx_e = await expected.open_context(guild_id)
    ctx_a = await actual.open_context(guild_id)
    check("community settings", ctx_e.community, ctx_a.community)
    assert ctx_e.community is not None
    t_e, t_a = await expected.get_threshold(ctx_e), await actual.get_threshold(ctx_a)
    # When the answer was true legitimately differs (live data vs. a snapshot); everything else must not.
    check("threshold", {**dataclasses.asdict(t_e), "as_of": None}, {**dataclasses.asdict(t_a), "as_of": None})
    span = ctx_e.community.waitlist_end - ctx_e.community.fedaykin
    check("waitlist", await expected.get_waitlist(ctx_e, span), await actual.get_waitlist(ctx_a, span))
    for board in BOARDS:
        total = (await expected.get_leaderboard(ctx_e, board, 1, PAGE_SIZE)).total
        for page in pages_to_check(total, sample == 0, sample):
            check(
                f"{board} page {page}",
                await expected.get_leaderboard(ctx_e, board, page, PAGE_SIZE),
                await actual.get_leaderboard(ctx_a, board, page, PAGE_SIZE),
            )
    assert ctx_a.community is not None
    members = _spread(profile_ids, sample)
    for start in range(0, len(members), MEMBERS_AT_ONCE):
        chunk = members[start : start + MEMBERS_AT_ONCE]
        answers = await asyncio.gather(
            *(_member(expected, actual, guild_id, ctx_e.community, ctx_a.community, pid) for pid in chunk)
        )
        for pid, ((pos_e, pos_a), (rank_e, rank_a)) in zip(chunk, answers, strict=True):
            check(f"position of {pid}", pos_e, pos_a)
            check(f"activity rank of {pid}", rank_e, rank_a)
        if progress:
            progress(len(chunk))
    return diffs


async def _member(
    expected: HotPathService,
    actual: HotPathService,
    guild_id: int,
    settings_e: Community,
    settings_a: Community,
    pid: UUID,
) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    # A fresh context per member and backend, as each member's command is a request of its own.
    e = TenantContext(guild_id).with_community(settings_e)
    a = TenantContext(guild_id).with_community(settings_a)
    positions = (await expected.get_position(e, pid), await actual.get_position(a, pid))
    ranks = (await expected.get_rank(e, pid, "activity"), await actual.get_rank(a, pid, "activity"))
    return positions, ranks
