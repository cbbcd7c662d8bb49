"""What the `sietch` commands need to know about the copies: which are configured, which guilds exist,
and the backfill of one guild into every copy with a progress bar."""

from __future__ import annotations

from dataclasses import replace

from backends.copies import FloorMove, Replica
from bot.app.app import App
from bot.cli.errors import CliError
from bot.cli.progress import ProgressBar
from bot.replication.backfill import backfill

NO_COPY = "no copy backend is configured: set scylla.hosts (or SIETCH_SCYLLA_HOSTS)"


async def replicas(app: App, *, required: bool) -> dict[str, Replica]:
    found = app.replicas
    if not found and required:
        raise CliError(NO_COPY, 2)
    return found


async def communities(app: App, guild: int | None) -> list[int]:
    """Every configured community, or just `guild` (which must exist)."""
    known = await app.copy_source.community_ids()
    if guild is None:
        return known
    if guild not in known:
        raise CliError(f"guild {guild} is not a configured community (see `sietch community`)")
    return [guild]


async def backfill_guild(app: App, guild: int) -> None:
    source = app.copy_source
    for name, replica in (await replicas(app, required=True)).items():
        bar = ProgressBar(await source.count_members(guild), f"backfill {guild} into {name}")
        copied = await backfill(source, replica, guild, progress=bar.moved_to)
        bar.close()
        print(f"guild {guild}: {copied} member(s) copied to {name}, snapshots rebuilt")


async def acknowledge(app: App, replica: Replica, guild: int, move: FloorMove) -> None:
    """The change behind `move` has been given to `replica` directly: if the copy held everything before
    it, it holds everything now, and stays ready. Otherwise it waits for a backfill."""
    state = await replica.backfill_state(guild)
    if state is None or state.state != "complete" or state.score_version < move.before:
        return
    # A removal or an import moves the member count, the launch and the badge histogram, and any of these
    # changes may move the naib seats: the copy is given them as they are now, stamped with the version
    # they were read at.
    async with app.copy_source.consistent_view() as view:
        version = await view.score_version(guild) or 0
        histogram, facts = await view.badge_histogram(guild), await view.badge_facts(guild)
        council = await view.council(guild)
    await replica.put_badge_counts(guild, histogram, facts, version)
    await replica.put_council(guild, council, version)
    await replica.put_backfill_state(replace(state, score_version=move.after))
    if not await app.copy_source.pending(guild):
        await replica.put_score_version(guild, move.after)
