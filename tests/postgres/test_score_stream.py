"""Score updates applied set-wise on a real PostgreSQL: a long stream goes through a staging table, a short
one as arrays; both give what applying the updates one by one gives, and staging holds no lock a writer of
the community waits on."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from backends.exact import add, subtract
from backends.members import MemberRow
from backends.postgres import score_writes
from backends.protocol import Community, InvalidInput, ScoreUpdate, TenantContext
from tests.wiring import app

MEMBERS = 30
VALUES = ("0", "1", "2.5", "0.000000000000000001", "123456789012345678901234567890.123456789012345678", "-3", "1E+400")


async def _community(pool: AsyncConnectionPool[Any], guild: int) -> tuple[Any, list[uuid.UUID]]:
    container = app(pool)
    admin = container.community_writes()
    await admin.upsert_community(Community(guild, name="Arrakis"))
    ids = await admin.import_members(
        guild,
        [MemberRow(discord_user_id=i + 1, conviction=Decimal(i), activity=Decimal(i % 3)) for i in range(MEMBERS)],
    )
    return container.postgres_backend(), ids


def _updates(ids: list[uuid.UUID], count: int, seed: int) -> list[ScoreUpdate]:
    rng = random.Random(seed)
    return [
        ScoreUpdate(
            rng.choice(ids),
            rng.choice(("conviction", "activity")),
            Decimal(rng.choice(VALUES)),
            "token_hold",
            mode=rng.choice(("set", "add", "add")),
            tx_hash=rng.choice((None, None, f"0x{rng.randrange(40):x}")),
        )
        for _ in range(count)
    ]


def _one_by_one(start: dict[tuple[uuid.UUID, str], Decimal], updates: list[ScoreUpdate]) -> list[tuple[Any, ...]]:
    """The events applying the updates in order gives: (member, board, delta, value after, tx hash)."""
    seen: set[tuple[uuid.UUID, str, str]] = set()
    value = dict(start)
    events = []
    for u in updates:
        if u.tx_hash is not None:
            if (u.profile_id, u.board, u.tx_hash) in seen:
                continue
            seen.add((u.profile_id, u.board, u.tx_hash))
        before = value.get((u.profile_id, u.board), Decimal(0))
        after = add(before, u.value) if u.mode == "add" else u.value
        value[(u.profile_id, u.board)] = after
        events.append((u.profile_id, u.board, subtract(after, before), after, u.tx_hash))
    return events


async def _events(pool: AsyncConnectionPool[Any], guild: int) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT profile_id, board, delta, value_after, tx_hash FROM score_events"
            " WHERE community_id = %s AND event_type = 'token_hold' ORDER BY event_id",
            (guild,),
        )
        return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in await cur.fetchall()]


# How a stream is written: as arrays (short), applied a chunk at a time while read (long, one community
# first), or staged whole (long, several communities from the start).
WAYS = {"arrays": (10_000, 10_000), "while_read": (0, 64), "staged": (0, 10_000)}


def _way(monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    stage_from, apply_every = WAYS[way]
    monkeypatch.setattr(score_writes, "STAGE_FROM", stage_from)
    monkeypatch.setattr(score_writes, "APPLY_EVERY", apply_every)


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("other_at", [0, 3, None], ids=["other_first", "other_after_three", "one_community"])
async def test_a_stream_gives_what_one_update_at_a_time_gives(
    pool: AsyncConnectionPool[Any], new_guild_id: int, way: str, other_at: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _way(monkeypatch, way)
    backend, ids = await _community(pool, new_guild_id)
    _, other_ids = await _community(pool, new_guild_id + 1)
    ctx = TenantContext(new_guild_id)
    start = {(pid, b): Decimal(v) for i, pid in enumerate(ids) for b, v in (("conviction", i), ("activity", i % 3))}
    updates = _updates(ids, 600, seed=len(way))
    theirs = _updates(other_ids, 50, seed=7)
    batches = [(new_guild_id, updates[i : i + 100]) for i in range(0, 600, 100)]
    if other_at is not None:
        batches.insert(other_at, (new_guild_id + 1, theirs))  # two communities in one stream
    before = (await backend.snapshot_info(ctx, "conviction")).score_version

    versions = await backend.apply_score_batches(batches)

    assert versions[new_guild_id] == before + 1  # the stream is one write of the community
    expected = _one_by_one(start, updates)
    assert await _events(pool, new_guild_id) == expected
    scores = await backend.get_scores(ctx, ids)
    final = dict(start) | {(e[0], e[1]): e[3] for e in expected}
    assert {(pid, b): getattr(scores[pid], b) for pid in ids for b in ("conviction", "activity")} == final
    assert len(await _events(pool, new_guild_id + 1)) == (len(_one_by_one({}, theirs)) if other_at is not None else 0)

    again = await backend.apply_score_batches([(new_guild_id, [u for u in updates if u.tx_hash is not None])])
    assert again == {new_guild_id: before + 1}  # every tx hash was applied: nothing moves


@pytest.mark.parametrize("way", WAYS)
async def test_a_stranger_or_an_add_out_of_range_refuses_the_whole_stream(
    pool: AsyncConnectionPool[Any], new_guild_id: int, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _way(monkeypatch, way)
    if way == "while_read":
        monkeypatch.setattr(score_writes, "APPLY_EVERY", 1)  # the first batch is applied before the second is read
    backend, ids = await _community(pool, new_guild_id)
    ctx = TenantContext(new_guild_id)
    big = ScoreUpdate(ids[1], "conviction", Decimal("9E+1000"), "token_hold", mode="add")
    stranger = uuid.uuid4()
    for bad, said in (
        (big, "out of range"),
        (ScoreUpdate(stranger, "conviction", Decimal(1), "token_hold"), str(stranger)),
    ):
        with pytest.raises(InvalidInput, match=said):
            await backend.apply_score_batches(
                [
                    (new_guild_id, [ScoreUpdate(ids[0], "conviction", Decimal(5), "token_hold")]),
                    (new_guild_id, [ScoreUpdate(ids[2], "conviction", Decimal(6), "token_hold"), bad, bad]),
                ]
            )
    assert (await backend.get_scores(ctx, [ids[0]]))[ids[0]].conviction == 0
    assert await _events(pool, new_guild_id) == []


async def test_staging_a_long_stream_holds_back_no_other_write(
    pool: AsyncConnectionPool[Any], new_guild_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(score_writes, "STAGE_FROM", 0)
    backend, ids = await _community(pool, new_guild_id)
    ctx = TenantContext(new_guild_id)
    halfway = asyncio.Event()
    go_on = asyncio.Event()

    async def stream() -> AsyncIterator[tuple[int, list[ScoreUpdate]]]:
        yield new_guild_id, [ScoreUpdate(pid, "conviction", Decimal(1000), "token_hold") for pid in ids]
        halfway.set()
        await go_on.wait()  # the file is half read: its updates are staged, not applied
        yield new_guild_id, [ScoreUpdate(ids[0], "conviction", Decimal(1), "token_hold", mode="add")]

    big = asyncio.create_task(backend.apply_score_batches(stream()))
    await halfway.wait()
    # Another writer of the same community and the same member goes through while the file is staged.
    small = await asyncio.wait_for(
        backend.apply_score_batches([(new_guild_id, [ScoreUpdate(ids[0], "conviction", Decimal(7), "token_hold")])]),
        timeout=30,
    )
    assert (await backend.get_scores(ctx, [ids[0]]))[ids[0]].conviction == 7
    go_on.set()
    versions = await big
    assert versions[new_guild_id] == small[new_guild_id] + 1
    assert (await backend.get_scores(ctx, [ids[0]]))[ids[0]].conviction == 1001  # applied after the small write


async def test_a_member_removed_while_a_stream_is_staged_refuses_it_whole(
    pool: AsyncConnectionPool[Any], new_guild_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(score_writes, "STAGE_FROM", 0)
    backend, ids = await _community(pool, new_guild_id)
    halfway, go_on = asyncio.Event(), asyncio.Event()

    async def stream() -> AsyncIterator[tuple[int, list[ScoreUpdate]]]:
        yield new_guild_id, [ScoreUpdate(pid, "conviction", Decimal(1000), "token_hold") for pid in ids]
        halfway.set()
        await go_on.wait()
        yield new_guild_id, []

    big = asyncio.create_task(backend.apply_score_batches(stream()))
    await halfway.wait()
    removed = await asyncio.wait_for(app(pool).community_writes().remove_member(new_guild_id, 1), timeout=30)
    assert removed is not None and removed[0] == ids[0]
    go_on.set()
    with pytest.raises(InvalidInput, match=str(ids[0])):
        await big
    assert {s.conviction for s in (await backend.get_scores(TenantContext(new_guild_id), ids[1:])).values()} == {
        Decimal(i) for i in range(1, MEMBERS)
    }


async def test_a_staged_stream_settles_the_seats_once_with_one_moment(
    pool: AsyncConnectionPool[Any], new_guild_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file longer than STAGE_FROM moves the seats through many orders on the way, applied in chunks of
    APPLY_EVERY; only the end counts, settled once: every term it closes and opens carries the one moment
    of its transaction."""
    monkeypatch.setattr(score_writes, "APPLY_EVERY", 1000)
    backend, ids = await _community(pool, new_guild_id)  # N = 7 of F = 69: the 7 highest (23..29) sit
    council = await backend.get_council(TenantContext(new_guild_id))
    assert {s.profile_id for s in council.seats} == set(ids[-7:])
    rng = random.Random(new_guild_id)
    updates = [
        ScoreUpdate(rng.choice(ids), "conviction", Decimal(rng.randint(1, 1000)), "token_hold")
        for _ in range(score_writes.STAGE_FROM + 500)
    ]
    updates += [ScoreUpdate(pid, "conviction", Decimal(2000 + i), "token_hold") for i, pid in enumerate(ids[:7])]
    await backend.apply_score_batches([(new_guild_id, updates[i : i + 1000]) for i in range(0, len(updates), 1000)])
    after = await backend.get_council(TenantContext(new_guild_id))
    assert {s.profile_id for s in after.seats} == set(ids[:7])
    assert len({s.seated_at for s in after.seats} | {f.left_at for f in after.former}) == 1
    assert after.former_count == 7 and all(f.terms == 1 for f in after.former)
