"""The one path both doors of the score feed take: items named by Discord id or wallet become score
updates of profiles, written through the service's write path (source of truth, score history, the outbox
to every copy), then every cached eligibility of those members is dropped and the board's followers
(role sync, alerts) are told the community moved."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from backends.protocol import (
    HeldOutcome,
    HeldWrite,
    InvalidInput,
    NotConfigured,
    ScoreBatches,
    ScoreUpdate,
    TenantContext,
    each_batch,
)
from bot.domain.service import HotPathService
from bot.feed.items import FeedItem
from bot.replication.writes import ScoreWriter

BATCH = 1000  # items resolved and written per statement group
# Updates of several requests written in one transaction at most (see ScoreFeed.write_grouped).
GROUP_UPDATES = 5000


Answer = asyncio.Future[int | HeldWrite]  # what a request is answered: its score version, or its holding


class MemberDirectory(Protocol):
    """Who the feed may name: each community's feed token and its members by Discord id or wallet."""

    async def token_matches(self, community_id: int, token: str) -> bool: ...

    async def take_request(self, community_id: int, per_minute: int) -> float:
        """Count one request of the community, across processes; 0 within the limit, else the wait."""

    async def members(
        self, community_id: int, user_ids: Iterable[int], wallets: Iterable[str]
    ) -> tuple[dict[int, UUID], dict[str, UUID]]:
        """The profile ids of the named members that exist: by Discord id, and by wallet."""


@dataclass(frozen=True)
class ItemProblem:
    index: int  # the item's line (file) or position (HTTP batch)
    message: str


class ScoreFeed:
    def __init__(
        self,
        directory: MemberDirectory,
        writer: ScoreWriter,
        services: Iterable[HotPathService] = (),
        moved: Callable[[int], None] | None = None,
    ) -> None:
        """`services`: every service whose eligibility cache must forget a member whose score changed;
        `moved(guild)` is called once a write to the guild is durable."""
        self.directory = directory
        self.writer = writer
        self.services = list(services)
        self.moved = moved
        self._queued: dict[int, list[tuple[Sequence[ScoreUpdate], Answer]]] = defaultdict(list)
        self._writing: set[int] = set()
        self._tasks: set[asyncio.Future[None]] = set()

    async def resolve(
        self, guild: int, items: Sequence[tuple[int, FeedItem]]
    ) -> tuple[list[ScoreUpdate], list[ItemProblem]]:
        """The updates of the (index, item) pairs, and a problem for each item naming no member of `guild`
        or another guild."""
        users = {item.discord_user_id for _, item in items if item.discord_user_id is not None}
        wallets = {item.wallet for _, item in items if item.wallet is not None}
        by_user, by_wallet = await self.directory.members(guild, users, wallets)
        updates, problems = [], []
        for index, item in items:
            if item.guild != guild:
                problems.append(ItemProblem(index, f"guild {item.guild} is not this feed's guild {guild}"))
                continue
            profile = by_user.get(item.discord_user_id) if item.discord_user_id is not None else None
            if item.wallet is not None:
                profile = by_wallet.get(item.wallet)
            if profile is None:
                problems.append(ItemProblem(index, f"member {item.member} is not a member of guild {guild}"))
                continue
            updates.append(_update(profile, item))
        return updates, problems

    async def write(self, batches: ScoreBatches) -> dict[int, int]:
        """Every (guild, updates) batch in one transaction (all or none); durable when this returns.
        Returns each guild's new score version."""
        touched: dict[int, set[UUID]] = {}

        async def noting() -> AsyncIterator[tuple[int, Sequence[ScoreUpdate]]]:
            async for guild, batch in each_batch(batches):
                touched.setdefault(guild, set()).update(u.profile_id for u in batch)
                yield guild, batch

        versions = await self.writer.apply_batches(noting())
        for guild, profiles in touched.items():
            self._written(guild, profiles)
        return versions

    async def settle_held(self, guild: int) -> list[HeldOutcome]:
        """Apply the guild's oldest held requests (`HeldWrites`), told to the followers as any write is."""
        settled = await self.writer.settle_held(guild)
        self._written(guild, {p for s in settled for p in s.profiles})
        return settled

    def _written(self, guild: int, profiles: set[UUID]) -> None:
        for service in self.services:
            service.forget_eligibility(TenantContext(guild), profiles)
        if self.moved is not None and profiles:
            self.moved(guild)

    async def write_grouped(self, guild: int, updates: Sequence[ScoreUpdate]) -> int | HeldWrite:
        """One request's updates, durable when this returns; returns the guild's new score version, or the
        request held whole while a bulk write has the guild (`HeldWrites`, settled by `bot.feed.held`).

        Writers of one community queue on its row, which they hold until their commit (score versions
        follow commit order), so one request per transaction bounds a community at one commit at a time.
        Requests to a guild that arrive while a write to it is under way are written together by the
        next transaction: a request's own error (a member removed since it was resolved) sends each of
        them through alone, so only that request fails.
        """
        done: Answer = asyncio.get_running_loop().create_future()
        self._queued[guild].append((updates, done))
        if guild not in self._writing:
            self._writing.add(guild)
            task = asyncio.ensure_future(self._write_queued(guild))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(done)  # a caller gone leaves the group's write to finish

    async def _write_queued(self, guild: int) -> None:
        try:
            while queued := self._queued[guild]:
                group: list[tuple[Sequence[ScoreUpdate], Answer]] = []
                total = 0
                while queued and (not group or total + len(queued[0][0]) <= GROUP_UPDATES):
                    group.append(queued.pop(0))
                    total += len(group[-1][0])
                await self._write_group(guild, group)
        finally:
            self._writing.discard(guild)
            for _, done in self._queued.pop(guild, []):  # only when cancelled: nothing is left otherwise
                done.cancel()

    async def _write_group(self, guild: int, group: list[tuple[Sequence[ScoreUpdate], Answer]]) -> None:
        try:
            outcomes = await self._write_requests(guild, [updates for updates, _ in group])
        except (InvalidInput, NotConfigured) as exc:
            if len(group) == 1:
                _settle(group[0][1], exc)
                return
            for updates, done in group:
                try:
                    _settle(done, (await self._write_requests(guild, [updates]))[0])
                except Exception as alone:  # handed to the request it belongs to
                    _settle(done, alone)
            return
        except Exception as exc:  # the database's failure: every request of the group has it
            for _, done in group:
                _settle(done, exc)
            return
        except asyncio.CancelledError:
            for _, done in group:
                done.cancel()
            raise
        for (_, done), outcome in zip(group, outcomes, strict=True):
            _settle(done, outcome)

    async def _write_requests(self, guild: int, requests: list[Sequence[ScoreUpdate]]) -> list[int | HeldWrite]:
        """The requests in one transaction: each one's outcome, the same version for all, or each held."""
        outcome = await self.writer.apply_requests(guild, requests)
        if isinstance(outcome, int):
            self._written(guild, {u.profile_id for r in requests for u in r})
            return [outcome] * len(requests)
        return list(outcome)


def _settle(done: Answer, outcome: int | HeldWrite | BaseException) -> None:
    if done.done():
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)


def _update(profile_id: UUID, item: FeedItem) -> ScoreUpdate:
    return ScoreUpdate(
        profile_id,
        item.board,  # type: ignore[arg-type]  # checked against BOARDS when parsed
        item.value,
        item.event_type,  # type: ignore[arg-type]  # checked against EVENT_TYPES when parsed
        mode="add" if item.mode == "add" else "set",
        tx_hash=item.tx_hash,
        at=item.at,
    )
