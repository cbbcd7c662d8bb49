"""The one path both doors of the score feed take: items named by Discord id or wallet become score
updates of profiles, written through the service's write path (source of truth, score history, the outbox
to every copy), then every cached eligibility of those members is dropped and the board's followers
(role sync, alerts) are told the community moved."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from backends.postgres.ingest import IngestDirectory
from backends.protocol import ScoreBatches, ScoreUpdate, TenantContext, each_batch
from bot.domain.service import HotPathService
from bot.feed.items import FeedItem
from bot.replication.writes import ScoreWriter

BATCH = 1000  # items resolved and written per statement group


@dataclass(frozen=True)
class ItemProblem:
    index: int  # the item's line (file) or position (HTTP batch)
    message: str


class ScoreFeed:
    def __init__(
        self,
        directory: IngestDirectory,
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
            for service in self.services:
                service.forget_eligibility(TenantContext(guild), profiles)
            if self.moved is not None and profiles:
                self.moved(guild)
        return versions


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
