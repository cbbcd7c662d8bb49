"""The members `sietch verify` checks, picked from a stream of ids: the same members an evenly spread
sample of the whole list gives, read once and never held."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from uuid import UUID

import pytest

from bot.replication.verify import _spread


def spread_of_the_whole_list(items: Sequence[UUID], sample: int) -> list[UUID]:
    """What verify checked when it held every id: `sample` of them at int(i * len / sample)."""
    if sample <= 0 or len(items) <= sample:
        return list(items)
    step = len(items) / sample
    return [items[int(i * step)] for i in range(sample)]


class Stream:
    """Ids handed out one at a time, counting how many were asked for."""

    def __init__(self, items: Sequence[UUID]) -> None:
        self.items = items
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[UUID]:
        for item in self.items:
            self.read += 1
            yield item


@pytest.mark.parametrize(
    ("total", "sample"),
    [(0, 5), (1, 5), (5, 5), (6, 5), (301, 7), (1000, 3), (1000, 999), (997, 1), (5000, 0), (12_345, 5000)],
)
async def test_a_streamed_spread_picks_what_the_whole_list_did(total: int, sample: int) -> None:
    ids = [uuid.UUID(int=i) for i in range(total)]
    stream = Stream(ids)
    picked = [pid async for pid in _spread(stream, total, sample)]
    assert picked == spread_of_the_whole_list(ids, sample)
    if 0 < sample < total:
        assert stream.read == ids.index(picked[-1]) + 1  # stops at the last pick


async def test_members_added_after_the_count_are_still_checked_when_checking_all() -> None:
    ids = [uuid.UUID(int=i) for i in range(10)]
    assert [pid async for pid in _spread(Stream(ids), 8, 0)] == ids
