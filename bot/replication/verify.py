"""Compares what two backends answer for a community: thresholds, waitlists, pages, the tier progression
and badge boards, the naib council, positions and badge ranks.

Members are walked in profile id order, a page at a time, and each difference is handed on as it is
found: memory does not grow with the community (nor with the number of differences).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from backends.copies import CopySource
from backends.protocol import BOARDS, Community, TenantContext
from bot.domain.service import HotPathService

Progress = Callable[[int], None]
Report = Callable[["Difference"], None]
PAGE_SIZE = 10
MEMBERS_AT_ONCE = 16
ID_PAGE = 2000  # member ids read from the source at once


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


async def _spread(items: AsyncIterable[UUID], total: int, sample: int) -> AsyncIterator[UUID]:
    """`sample` of the `total` items, evenly spread (the items at int(i * total / sample)); all of them when
    `sample` is 0 or at least `total`. Reads `items` once, holding none of them."""
    if sample <= 0 or total <= sample:
        async for item in items:
            yield item
        return
    step = total / sample
    picked = 0
    async for index, item in _enumerate(items):
        if index == int(picked * step):
            yield item
            picked += 1
            if picked == sample:
                return


async def _enumerate(items: AsyncIterable[UUID]) -> AsyncIterator[tuple[int, UUID]]:
    index = 0
    async for item in items:
        yield index, item
        index += 1


async def member_ids(source: CopySource, guild_id: int, page: int | None = None) -> AsyncIterator[UUID]:
    """Every member of the community in profile id order, read from the source `page` (ID_PAGE) members at a
    time (keyset pagination: each page starts after the last id of the one before)."""
    page = page or ID_PAGE
    after: UUID | None = None
    while True:
        async with source.consistent_view() as view:
            states = await view.member_states_after(guild_id, after, page)
        for state in states:
            yield state.profile.profile_id
        if len(states) < page:
            return
        after = states[-1].profile.profile_id


async def _listed(items: Sequence[UUID]) -> AsyncIterator[UUID]:
    for item in items:
        yield item


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
    await compare_each(
        expected,
        actual,
        guild_id,
        _listed(profile_ids),
        len(profile_ids),
        sample=sample,
        progress=progress,
        report=diffs.append,
    )
    return diffs


async def compare_each(
    expected: HotPathService,
    actual: HotPathService,
    guild_id: int,
    profile_ids: AsyncIterable[UUID],
    members: int,
    *,
    sample: int = 5000,
    progress: Progress | None = None,
    report: Report,
) -> int:
    """`compare` over a stream of profile ids (`members` of them, as counted beforehand, e.g. `member_ids`):
    each difference goes to `report` as it is found, none is kept. Returns how many there were."""
    found = 0

    def check(what: str, a: Any, b: Any) -> None:
        nonlocal found
        if a != b:
            found += 1
            report(Difference(what, a, b))

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
    check("tier board", await expected.get_tier_board(ctx_e, None), await actual.get_tier_board(ctx_a, None))
    # Tenure categories are taken at the request's moment: both read at one.
    same_moment = dataclasses.replace(ctx_a, started_at=ctx_e.started_at)
    check("badge board", await expected.get_badge_board(ctx_e, None), await actual.get_badge_board(same_moment, None))
    check("naib council", await expected.get_council(ctx_e), await actual.get_council(same_moment))
    assert ctx_a.community is not None
    chunk: list[UUID] = []
    async for pid in _spread(profile_ids, members, sample):
        chunk.append(pid)
        if len(chunk) == MEMBERS_AT_ONCE:
            await _members(expected, actual, guild_id, ctx_e.community, ctx_a.community, chunk, check, progress)
            chunk = []
    if chunk:
        await _members(expected, actual, guild_id, ctx_e.community, ctx_a.community, chunk, check, progress)
    return found


async def _members(
    expected: HotPathService,
    actual: HotPathService,
    guild_id: int,
    settings_e: Community,
    settings_a: Community,
    chunk: Sequence[UUID],
    check: Callable[[str, Any, Any], None],
    progress: Progress | None,
) -> None:
    answers = await asyncio.gather(*(_member(expected, actual, guild_id, settings_e, settings_a, pid) for pid in chunk))
    for pid, ((pos_e, pos_a), (rank_e, rank_a), (badge_e, badge_a)) in zip(chunk, answers, strict=True):
        check(f"position of {pid}", pos_e, pos_a)
        check(f"activity rank of {pid}", rank_e, rank_a)
        check(f"badge rank of {pid}", badge_e, badge_a)
    if progress:
        progress(len(chunk))


async def _member(
    expected: HotPathService,
    actual: HotPathService,
    guild_id: int,
    settings_e: Community,
    settings_a: Community,
    pid: UUID,
) -> tuple[tuple[Any, Any], tuple[Any, Any], tuple[Any, Any]]:
    # A fresh context per member and backend, as each member's command is a request of its own.
    e = TenantContext(guild_id).with_community(settings_e)
    a = TenantContext(guild_id).with_community(settings_a)
    positions = (await expected.get_position(e, pid), await actual.get_position(a, pid))
    ranks = (await expected.get_rank(e, pid, "activity"), await actual.get_rank(a, pid, "activity"))
    badges = (await expected.get_badge_rank(e, pid), await actual.get_badge_rank(a, pid))
    return positions, ranks, badges
