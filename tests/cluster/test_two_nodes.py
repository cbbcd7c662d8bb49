"""Two CQL nodes, replication factor 2: one node dies mid-run and comes back, and nothing is lost.

The topology and its consistency: with RF 2 a quorum is both replicas, so QUORUM/LOCAL_QUORUM (the
production setting, meant for RF 3) would fail every read and write while a node is down. What keeps a
two-node cluster serving is LOCAL_ONE for reads and writes, the default of `scylla.consistency`, which
this test sets explicitly. Writes at LOCAL_ONE are acknowledged by one replica; the coordinator keeps a
hint for a replica that is down and hands it over when that replica is back (hinted handoff, within the
database's `max_hint_window`, 3 hours by default). The product adds nothing for this: its outbox relay
retries only writes the cluster refused, and a copy that missed more than the hint window is refilled
with `sietch backfill`.

What one node down costs at RF 2: the snapshot rebuild's lightweight transactions (claiming a version,
moving the board pointer) need a Paxos quorum, both replicas, so boards stay at their last snapshot
until the node is back. Score updates still land on the survivor; commands answer from the last
snapshot, as they do between two rebuilds.

The run:
1. A community of MEMBERS members in PostgreSQL, backfilled into the copy; every score, page, position
   and rank read from it equals PostgreSQL's; /position, /threshold and /leaderboard routed to Scylla by
   the flag file; each answer equals PostgreSQL's.
2. Commands (one at a time, through the real client and the Discord emulator) and score updates
   (through the service: PostgreSQL, outbox, relay) run while 127.0.0.2 (the seed, a contact point) is
   SIGKILLed, stays down and is started again on its own data. Every command is answered in Discord's
   time, none with an error, most by Scylla, each a whole answer to its question (Scylla's follow the
   updates as the relay copies them). Every update reaches the survivor, which keeps hints for the dead
   node; with the updates held and the outbox drained during the outage, every score, page, position and
   rank read from the survivor equals PostgreSQL's.
3. The boards are rebuilt at once (the rebuild reads the scores at a quorum: an update whose hint is still
   on the way is read from the other replica); once every hint is handed over, 127.0.0.3 is stopped
   (holding no hint: nothing missed is left on it), so whatever is read comes from the restarted node
   alone: every score, page, position and rank equals PostgreSQL's (read
   through a session of its own, then through the bot's once its driver sees the node gone), the commands
   answer as PostgreSQL does, and `sietch verify --sample 0` reports 0 differences.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from psycopg_pool import AsyncConnectionPool

from backends.protocol import BackendError, ScoreUpdate, TenantContext
from backends.scylla.migrations import migrate as migrate_cql
from backends.scylla.session import CqlSession, CqlSettings, connect
from bot.domain.service import HotPathService
from bot.replication.verify import compare
from bot.routing.router import RoutingDecision
from tests.cluster.conftest import TwoNodes
from tests.cogs.conftest import BotHarness, bot_settings, flags_yaml, running_bot
from tests.cogs.test_routing import served_counts
from tests.emulator import DiscordEmulator
from tests.environ import sietch_environ
from tests.wiring import app

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).parents[2]
FIRST, SECOND = "127.0.0.2", "127.0.0.3"
REPLICATION = {"class": "SimpleStrategy", "replication_factor": 2}
CONSISTENCY = "LOCAL_ONE"
MEMBERS = 400
PROBES = 12
COMMANDS: list[tuple[str, tuple[str, ...]]] = [
    ("position", ()),
    ("threshold", ()),
    ("leaderboard", ("conviction",)),
    ("leaderboard", ("activity",)),
]
ON_SCYLLA = flags_yaml(
    "postgres", position={"backend": "scylla"}, threshold={"backend": "scylla"}, leaderboard={"backend": "scylla"}
)
ON_POSTGRES = flags_yaml("postgres")

Ask = tuple[str, tuple[str, ...], int]


@pytest.fixture(scope="module")
def keyspace(two_nodes: TwoNodes) -> Iterator[CqlSettings]:
    """A fresh keyspace, replicated on both nodes, migrated as `sietch migrate` would; dropped afterwards."""
    settings = CqlSettings(
        hosts=list(two_nodes.addresses),
        port=two_nodes.port,
        keyspace=f"sietch_cluster_{uuid.uuid4().hex[:8]}",
        replication=REPLICATION,
        consistency=CONSISTENCY,
        request_timeout_seconds=120,  # DDL on two nodes: each flushes its schema tables, then they agree
    )
    cluster, session = connect(settings)
    try:
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, migrate_cql(CqlSession(session), settings.keyspace, REPLICATION)).result()
        yield settings
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}", timeout=120)
        cluster.shutdown()


@pytest.fixture
async def cluster_bot(
    emulator: DiscordEmulator, postgres_dsn: str, guilds: int, tmp_path: Path, keyspace: CqlSettings
) -> AsyncIterator[BotHarness]:
    """The production bot with both nodes as contact points and the consistency this topology needs."""
    flags_path = tmp_path / "flags.yaml"
    flags_path.write_text(ON_POSTGRES)
    overrides = bot_settings(postgres_dsn, flags_path, keyspace) | {
        "SIETCH_SCYLLA_CONSISTENCY": CONSISTENCY,
        "SIETCH_SCYLLA_REPLICATION": "{class: SimpleStrategy, replication_factor: 2}",
        "SIETCH_WRITES_RETRY_INTERVAL_SECONDS": "0.2",
        # The backfill and rebuilds write hundreds of batches through the same session; on a busy 2-core
        # machine running three JVMs, 1 s (the default) is too short for some. Members are not kept
        # waiting longer: a command is handed to PostgreSQL after the flag file's time budget (1.5 s).
        "SIETCH_SCYLLA_REQUEST_TIMEOUT_SECONDS": "5",
        # Boards are rebuilt by the test at known moments (as `sietch recalc` would), not by the timer: a
        # rebuild while the restarted node still lacks the writes it missed could read those through it
        # (LOCAL_ONE) and build a snapshot without them.
        "SIETCH_RECALCULATION_INTERVAL_SECONDS": "3600",
    }
    async with running_bot(emulator, guilds, flags_path, overrides, "scylla") as h:
        yield h


@dataclass
class Tally:
    """What members saw while the load ran."""

    served: Counter[str] = field(default_factory=Counter)
    late: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    updates: int = 0
    breaker: Counter[str] = field(default_factory=Counter)  # Scylla's breaker state seen by each command
    passed_over: Counter[str] = field(default_factory=Counter)  # why the router chose PostgreSQL instead

    @property
    def answered(self) -> int:
        return sum(self.served.values())


def shape(embeds: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What an answer is, without its numbers: each embed's title and the names of its fields."""
    return [(e.get("title"), tuple(f.get("name") for f in e.get("fields", []))) for e in embeds]


def content(message: Any) -> list[dict[str, Any]]:
    """The embeds as a member reads them (the timestamp is when the answer was made)."""
    return [{k: v for k, v in embed.items() if k != "timestamp"} for embed in message.embeds]


async def ask(h: BotHarness, key: Ask) -> tuple[str, list[dict[str, Any]], float | None]:
    """One interaction: (the backend that served it, or "none" on an error), its embeds, when it was answered."""
    command, path, user = key
    before = served_counts(h, command)
    interaction = h.emulator.invoke(command, *path, guild_id=h.guild_id, user=h.user(user))
    message = await interaction.done(timeout=15)
    changed: list[str] = []
    for _ in range(100):  # the bot counts the answer just after Discord has it
        after = served_counts(h, command)
        changed = [b for b in after if after[b] != before.get(b, 0)]
        if changed:
            break
        await asyncio.sleep(0.01)
    return (changed[0] if len(changed) == 1 else "none"), content(message), interaction.responded_at


async def answers(h: BotHarness, asks: list[Ask], flags: str, backend: str) -> dict[Ask, list[dict[str, Any]]]:
    """Every ask once, with the flag file routing to `backend`; each must be served there."""
    await h.set_flags(flags)
    seen = {}
    for key in asks:
        served, embeds, _ = await ask(h, key)
        assert served == backend, f"{key} served by {served}: {embeds}"
        seen[key] = embeds
    return seen


async def until(condition: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout:.0f}s"
        await asyncio.sleep(0.5)


async def profile_ids(service: HotPathService, guild_id: int, users: list[int]) -> list[UUID]:
    ctx = TenantContext(guild_id)
    ids = []
    for user in users:
        profile = await service.get_profile_for_user(ctx, user)
        assert profile is not None
        ids.append(profile.profile_id)
    return ids


async def assert_copy_holds_scores(
    source: HotPathService, copy: HotPathService, guild_id: int, ids: list[UUID]
) -> None:
    ctx = TenantContext(guild_id)
    expected, copied = await source.get_scores(ctx, ids), await copy.get_scores(ctx, ids)
    assert len(expected) == len(ids)
    missing = {
        p: (s.conviction, s.activity, copied[p].conviction if p in copied else None)
        for p, s in expected.items()
        if p not in copied or (copied[p].conviction, copied[p].activity) != (s.conviction, s.activity)
    }
    assert not missing, f"{len(missing)} member(s) whose scores the copy lacks: {list(missing.items())[:5]}"


async def test_a_node_dies_and_comes_back_and_nothing_is_lost(
    cluster_bot: BotHarness,
    two_nodes: TwoNodes,
    keyspace: CqlSettings,
    pool: AsyncConnectionPool[Any],
    postgres_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = cluster_bot
    rng = random.Random(2)
    gid = h.guild_id
    began = time.monotonic()

    def step(what: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {what}", flush=True)

    # 1. The community, copied, served by Scylla exactly as by PostgreSQL.
    await h.configure(rate_limit_per_minute=1_000_000)
    users = await h.seed(
        [rng.randrange(1, 10**6) for _ in range(MEMBERS)], activities=[rng.randrange(0, 10**4) for _ in range(MEMBERS)]
    )
    step(f"{MEMBERS} members imported into PostgreSQL and backfilled into the cluster")
    services = h.container.services()
    source, scylla = services["postgres"], services["scylla"]
    ids = await profile_ids(source, gid, users)
    # Read through the services first: the nodes' first reads (a cold read path on 2 shared cores) may pass
    # a command's time budget, and a command would then be handed to PostgreSQL, as designed.
    assert await compare(source, scylla, gid, ids, sample=0) == []
    asks: list[Ask] = [(c, p, u) for u in users[:: MEMBERS // PROBES] for c, p in COMMANDS]
    baseline = await answers(h, asks, ON_SCYLLA, "scylla")
    assert await answers(h, asks, ON_POSTGRES, "postgres") == baseline
    await h.set_flags(ON_SCYLLA)
    step(f"every answer read alike, then {len(asks)} commands answered alike by Scylla and PostgreSQL")

    relay = h.container.relay()
    rebuilds = h.container.rebuilds()
    assert relay is not None and rebuilds is not None
    breaker = h.container.breakers()["scylla"]
    router = h.container.router()
    route = router.route

    async def routed(*args: Any, **kwargs: Any) -> RoutingDecision:
        decision = await route(*args, **kwargs)
        if decision.backend != "scylla" and not stop.is_set():  # while the load runs (all routed to Scylla)
            tally.passed_over[decision.reason] += 1
        return decision

    monkeypatch.setattr(router, "route", routed)
    background = h.container.background()
    background.start()

    tally = Tally()
    stop = asyncio.Event()
    writes = asyncio.Lock()  # held by each batch of updates; the checks hold it to see a still picture

    async def commands() -> None:
        n = 0
        while not stop.is_set():
            key = asks[n % len(asks)]
            n += 1
            tally.breaker[breaker.state] += 1
            served, embeds, responded_at = await ask(h, key)
            tally.served[served] += 1
            if responded_at is None or responded_at >= 3:
                tally.late.append(f"{key}: {responded_at}")
            if embeds and embeds[0].get("title") == "Error":
                tally.errors.append(f"{key}: {embeds[0].get('description')}")
            elif served == "scylla" and shape(embeds) != shape(baseline[key]):
                # Scylla answers follow the updates as the relay copies them (laid over the snapshot), so
                # here an answer must be a whole answer to the question; its numbers are held against
                # PostgreSQL's at still pictures, during the outage and after it.
                tally.wrong.append(f"{key}: {embeds} is not shaped as {baseline[key]}")

    async def updates() -> None:
        while not stop.is_set():
            batch = [
                ScoreUpdate(ids[i], board, Decimal(rng.randrange(1, 500)), "token_hold", mode="add")
                for i in rng.sample(range(MEMBERS), 3)
                for board in ("conviction", "activity")
            ]
            async with writes:
                await source.apply_score_updates(TenantContext(gid), batch)
            tally.updates += len(batch)
            await asyncio.sleep(0.05)

    async def outbox_empty() -> bool:
        return await relay.pending(gid) == 0

    async def hints_kept() -> bool:
        return await asyncio.to_thread(two_nodes.pending_hints, SECOND, FIRST) > 0

    async def no_hints() -> bool:
        left = await asyncio.to_thread(two_nodes.pending_hints, FIRST, SECOND)
        return left + await asyncio.to_thread(two_nodes.pending_hints, SECOND, FIRST) == 0

    # 2. The outage, with commands and score updates running throughout.
    load = [asyncio.create_task(commands()), asyncio.create_task(updates())]
    try:
        await asyncio.sleep(3)
        served_before, updates_before = Counter(tally.served), tally.updates
        await asyncio.to_thread(two_nodes.kill, FIRST)
        down_at = time.monotonic()
        step(f"{FIRST} killed; {tally.answered} commands and {tally.updates} score updates so far")

        # The survivor keeps hints for the dead node (they reach its disk within hints_flush_period, 10 s).
        await asyncio.sleep(5)
        await until(hints_kept, f"hints for {FIRST} on {SECOND}", 60)
        with pytest.raises(BackendError):  # Paxos needs both replicas at RF 2: the boards stay as they are
            await rebuilds.run_once([gid], force=True)
        async with writes:  # every update so far is on the survivor, the only node left to read from
            await until(outbox_empty, "an empty outbox during the outage", 30)
            await assert_copy_holds_scores(source, scylla, gid, ids)

            async def answers_alike() -> bool:
                return await compare(source, scylla, gid, ids, sample=0) == []

            await until(answers_alike, "Scylla's answers (the snapshot and the changes since) as PostgreSQL's", 30)
        step(f"{SECOND} holds every score and answers as PostgreSQL does; a board rebuild cannot run")

        await asyncio.to_thread(two_nodes.start, FIRST)
        outage = time.monotonic() - down_at
        served_outage = tally.served - served_before
        updates_outage = tally.updates - updates_before
        step(
            f"{FIRST} back after {outage:.0f}s down: meanwhile {dict(served_outage)} commands, {updates_outage} updates"
        )

        await until(no_hints, f"the hand-over of the hints for {FIRST}", 120)
        step("hints handed over")
    finally:
        stop.set()
        await asyncio.gather(*load, return_exceptions=True)
    for task in load:
        task.result()  # a failed update or command fails the test here, with its own traceback
    await background.stop()
    assert tally.late == [] and tally.errors == [] and tally.wrong == [], tally
    assert tally.served["none"] == 0 and served_outage.total() > 50, tally
    # The survivor carried the outage; PostgreSQL only took over for moments (a call past the time budget,
    # a readiness verdict of "behind").
    assert served_outage["scylla"] > served_outage.total() / 2, tally
    assert updates_outage > 50, tally
    assert await relay.pending() == 0

    # 3. Boards rebuilt with both nodes up, at once: the rebuild reads the scores at a quorum (both replicas
    # at RF 2), so an update whose hint is still on the way to FIRST is read from SECOND. Then SECOND is
    # stopped, once every hint of the writes so far is handed over (a write that timed out on a busy node,
    # or reached the restarted node before it saw its peer up, is a hint too): what is read comes from
    # FIRST alone.
    assert await rebuilds.run_once([gid]) > 0
    seen = await hints_settled(two_nodes, since=time.monotonic())
    await asyncio.to_thread(two_nodes.stop, SECOND)
    left = two_nodes.hint_files(SECOND)
    assert left == [], f"{SECOND} was stopped holding hints for {FIRST}, writes it never handed over: {left}"
    step(f"boards rebuilt; {SECOND} stopped holding no hints (at most {seen} hint file(s) on the way meanwhile)")
    async with two_nodes.alone(FIRST) as cql:
        fresh = app(pool, cql=cql, keyspace=keyspace.keyspace).services()
        await assert_copy_holds_scores(fresh["postgres"], fresh["scylla"], gid, ids)
        differences = await compare(fresh["postgres"], fresh["scylla"], gid, ids, sample=0)
        assert differences == [], f"read from {FIRST} alone through a session of its own: {differences[:3]}"
    # The bot's own session next. Its first reads after a node leaves (the driver marking the node down,
    # the restarted node's cold read path, the new snapshot's logged changes placed) may pass a command's
    # time budget and be handed to PostgreSQL, as designed; the commands are asked once those are done.
    reading = time.monotonic()
    cql = h.container.cql()
    assert cql is not None
    driver = cql.session.cluster

    async def driver_sees_first_alone() -> bool:
        return {host.address: host.is_up for host in driver.metadata.all_hosts()} == {FIRST: True, SECOND: False}

    # A node stopped cleanly is seen down when the driver's connections to it close, or at the latest by
    # the driver's idle heartbeat (every 30 s by default).
    await until(driver_sees_first_alone, f"the bot's driver seeing {FIRST} up and {SECOND} down", 90)
    seen_alone = time.monotonic()
    differences = await compare(source, scylla, gid, ids, sample=0)
    assert differences == [], f"read from {FIRST} alone through the bot's session: {differences[:3]}"
    step(
        f"the bot's driver saw {SECOND} down after {seen_alone - reading:.1f}s; its session reads as PostgreSQL"
        f" does from {FIRST} alone ({time.monotonic() - seen_alone:.1f}s)"
    )
    assert await answers(h, asks, ON_SCYLLA, "scylla") == await answers(h, asks, ON_POSTGRES, "postgres")
    verify = await asyncio.to_thread(sietch_verify, postgres_dsn, keyspace, gid)
    assert verify.returncode == 0, verify.stdout + verify.stderr[-4000:]
    assert f"guild {gid}: 0 difference(s)" in verify.stdout
    step(f"{FIRST} alone: every score, page, position and rank as in PostgreSQL; `sietch verify`: 0 differences")
    step(
        f"in all: {tally.answered} commands {dict(tally.served)} (Scylla's breaker {dict(tally.breaker)};"
        f" routed to PostgreSQL {dict(tally.passed_over)}; fallbacks to PostgreSQL {fallback_reasons(h)}),"
        f" {tally.updates} score updates"
    )


# How long after a write a hint for it can stay unseen: a replica's hint is written when the write times
# out on it (write_request_timeout, 2 s), flushed from memory within hints_flush_period (1 s in the
# cluster's config), and its file is listed and handed over only once closed, at the next of the 10 s
# dispatch checks; 5 s more for a busy machine.
HINTS_VISIBLE_SECONDS = 2 + 1 + 10 + 5


async def hints_settled(two_nodes: TwoNodes, since: float) -> int:
    """Once nothing is on the way any more: every hint for a write before `since` handed over. Returns the
    most hint files and hand-overs seen at one look meanwhile."""
    most = 0

    async def settled() -> bool:
        nonlocal most
        on_the_way = sum([await asyncio.to_thread(two_nodes.hints_on_the_way, node) for node in two_nodes.addresses])
        most = max(most, on_the_way)
        return on_the_way == 0 and time.monotonic() - since >= HINTS_VISIBLE_SECONDS

    await until(settled, "the hand-over of every hint", HINTS_VISIBLE_SECONDS + 120)
    return most


def fallback_reasons(h: BotHarness) -> dict[str, int]:
    """Why calls to Scylla were handed to PostgreSQL: error, timeout (the time budget), ..."""
    reasons: Counter[str] = Counter()
    for metric in h.container.metrics().registry.collect():
        for sample in metric.samples:
            if sample.name == "sietch_fallbacks_total" and sample.labels.get("source") == "scylla":
                reasons[sample.labels["reason"]] += int(sample.value)
    return dict(reasons)


def sietch_verify(postgres_dsn: str, keyspace: CqlSettings, guild_id: int) -> subprocess.CompletedProcess[str]:
    env = sietch_environ(
        postgres_dsn,
        keyspace,
        SIETCH_SCYLLA_REPLICATION="{class: SimpleStrategy, replication_factor: 2}",
        SIETCH_SCYLLA_CONSISTENCY=CONSISTENCY,
        SIETCH_SCYLLA_REQUEST_TIMEOUT_SECONDS="10",
        SIETCH_METRICS_PORT="0",
    )
    return subprocess.run(
        [sys.executable, "-m", "bot", "verify", "--guild", str(guild_id), "--sample", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
