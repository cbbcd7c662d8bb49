"""Several `sietch run` processes, one Discord shard each, on one PostgreSQL and one CQL keyspace.

Every interaction reaches the process owning its guild's shard and is answered once; the outbox is copied
once; a board is rebuilt once per change; latches set or cleared anywhere are seen by every process; a
process killed holding a rebuild lease leaves nothing the others cannot take over, and once restarted
serves its shard again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.postgres.backend import PostgresBackend
from backends.postgres.export import PostgresCopySource
from backends.postgres.latches import LatchTable
from backends.postgres.leases import lock_key
from backends.protocol import BOARDS, Community, ScoreUpdate, TenantContext
from backends.scylla.migrations import migrate as migrate_cql
from backends.scylla.session import CqlSession, CqlSettings, connect
from backends.scylla.snapshots import current_version
from backends.scylla.tables import Tables
from bot.replication.backfill import backfill
from bot.replication.rebuilds import lease_name
from tests.emulator import DiscordEmulator, Interaction
from tests.emulator.models import ADMINISTRATOR
from tests.environ import sietch_environ
from tests.wiring import app

ROOT = Path(__file__).parents[2]
SHARDS = 3
GUILDS_PER_SHARD = 2
MEMBERS = 300
FIRST_USER = 7000
WITHIN = 45.0  # seconds an awaited state may take on a loaded machine; every wait ends once its state holds
COMMANDS = {"position", "threshold", "leaderboard", "backends"}

ANSWERED = re.compile(r"command=\w+ backend=\w+ guild=(\d+) outcome=(\w+)")
RELAYED = re.compile(r"relayed events=(\d+)")
BUILT = re.compile(r"snapshot built guild=(\d+) board=(\w+)")


@dataclass
class Bot:
    """One `sietch run` process; its log goes to a file the test reads whenever it looks."""

    shard: int
    log_path: Path
    process: asyncio.subprocess.Process

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def answers(self) -> Counter[tuple[int, str]]:
        """(guild, outcome) of every command this process answered."""
        return Counter((int(m[1]), m[2]) for m in ANSWERED.finditer(self.log()))

    def relayed(self) -> int:
        return sum(int(m[1]) for m in RELAYED.finditer(self.log()))

    def built(self) -> Counter[tuple[int, str]]:
        return Counter((int(m[1]), m[2]) for m in BUILT.finditer(self.log()))

    @property
    def running(self) -> bool:
        return self.process.returncode is None


@dataclass
class Fleet:
    emulator: DiscordEmulator
    dsn: str
    cql: CqlSettings
    flags: Path
    logs: Path
    bots: dict[int, Bot] = field(default_factory=dict)  # the live process of each shard
    gone: list[Bot] = field(default_factory=list)  # killed ones: what they logged still counts

    @staticmethod
    def application(shard: int) -> str:
        """The name each process's PostgreSQL sessions carry, so the test can tell whose a lock is."""
        return f"sietch-shard-{shard}"

    async def start(self, shard: int) -> Bot:
        env = sietch_environ(
            make_conninfo(self.dsn, application_name=self.application(shard)),
            self.cql,
            DISCORD_TOKEN=self.emulator.token,
            SIETCH_DISCORD_API_BASE=self.emulator.base_url,
            SIETCH_DISCORD_SHARD_COUNT=str(SHARDS),
            SIETCH_DISCORD_SHARD_IDS=str(shard),
            SIETCH_DISCORD_GUILD_READY_TIMEOUT="0.05",
            SIETCH_POSTGRES_POOL_MAX_SIZE="4",
            SIETCH_SCYLLA_REQUEST_TIMEOUT_SECONDS="5",
            SIETCH_FLAGS_PATH=str(self.flags),
            SIETCH_METRICS_PORT="0",
            # Rounds far more often than in production, so the processes contend for the same work.
            SIETCH_RECALCULATION_INTERVAL_SECONDS="0.3",
            SIETCH_WRITES_RETRY_INTERVAL_SECONDS="0.1",
        )
        path = self.logs / f"shard-{shard}-{len(self.gone) + len(self.bots)}.log"
        with path.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=ROOT, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        self.bots[shard] = bot = Bot(shard, path, process)
        return bot

    def every_bot(self) -> list[Bot]:
        return [*self.gone, *self.bots.values()]

    def logs_tail(self) -> str:
        return "\n".join(f"--- shard {b.shard} ({b.log_path.name}):\n{b.log()[-3000:]}" for b in self.every_bot())

    async def kill(self, shard: int) -> Bot:
        bot = self.bots.pop(shard)
        bot.process.send_signal(signal.SIGKILL)
        await bot.process.wait()
        self.gone.append(bot)
        return bot

    async def stop(self) -> None:
        running = [b for b in self.bots.values() if b.running]
        for bot in running:
            bot.process.send_signal(signal.SIGTERM)
        for bot in running:
            try:
                await asyncio.wait_for(bot.process.wait(), 30)
            except TimeoutError:
                bot.process.kill()
                await bot.process.wait()


async def until(check: Callable[[], Awaitable[bool] | bool], what: str, fleet: Fleet, *, every: float = 0.02) -> None:
    """Wait until `check()` holds, looking `every` seconds; fail, with every process's log, after WITHIN."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN
    while True:
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return
        if loop.time() > deadline:
            pytest.fail(f"not within {WITHIN}s: {what}\n{fleet.logs_tail()}")
        await asyncio.sleep(every)


@pytest.fixture
async def keyspace(cql_node: CqlSettings) -> AsyncIterator[tuple[CqlSettings, CqlSession]]:
    """A keyspace of this test's own: each round a bot looks at every community of its copy, and other
    tests' communities would only slow the rounds down."""
    settings = dataclasses.replace(cql_node, keyspace=f"sietch_procs_{uuid.uuid4().hex[:8]}")
    cluster, session = await asyncio.to_thread(connect, settings)
    cql = CqlSession(session)
    try:
        await migrate_cql(cql, settings.keyspace, settings.replication)
        yield settings, cql
    finally:
        await asyncio.to_thread(session.execute, f"DROP KEYSPACE IF EXISTS {settings.keyspace}", timeout=120)
        await asyncio.to_thread(cluster.shutdown)


@pytest.fixture
async def fleet(postgres_dsn: str, keyspace: tuple[CqlSettings, CqlSession], tmp_path: Path) -> AsyncIterator[Fleet]:
    emulator = DiscordEmulator(shard_count=SHARDS)
    await emulator.start()
    flags = tmp_path / "flags.yaml"
    flags.write_text("default_backend: postgres\n")
    fleet = Fleet(emulator, postgres_dsn, keyspace[0], flags, tmp_path)
    try:
        yield fleet
    finally:
        await fleet.stop()
        await emulator.stop()


def guilds_on_every_shard(emulator: DiscordEmulator) -> dict[int, list[int]]:
    """GUILDS_PER_SHARD fresh guild ids for each shard."""
    by_shard: dict[int, list[int]] = {s: [] for s in range(SHARDS)}
    while any(len(ids) < GUILDS_PER_SHARD for ids in by_shard.values()):
        guild_id = random.getrandbits(62) | (1 << 60)
        if len(ids := by_shard[emulator.shard_of(guild_id)]) < GUILDS_PER_SHARD:
            ids.append(guild_id)
    return by_shard


async def seed(pool: AsyncConnectionPool[Any], cql: tuple[CqlSettings, CqlSession], guild_ids: list[int]) -> None:
    """Each guild configured, with members, and copied to the keyspace (snapshots built) before any bot runs."""
    container = app(pool, cql=cql[1], keyspace=cql[0].keyspace)
    admin, source = container.community_writes(), container.copy_source()
    replica = container.replicas()["scylla"]
    rng = random.Random(11)

    async def one(guild_id: int) -> None:
        await admin.upsert_community(Community(guild_id, name=f"guild {guild_id}"))
        rows = [
            MemberRow(
                discord_user_id=FIRST_USER + i,
                nym=f"member{i}",
                conviction=Decimal(rng.randint(1, 10**6)),
                activity=Decimal(rng.randint(1, 10**4)),
            )
            for i in range(MEMBERS)
        ]
        await admin.import_members(guild_id, rows)
        await backfill(source, replica, guild_id)

    await asyncio.gather(*(one(g) for g in guild_ids))


async def profile_ids(source: PostgresBackend, guild_id: int) -> list[UUID]:
    async with source.connection() as conn:
        cur = await conn.execute("SELECT profile_id FROM profiles WHERE community_id = %s", (guild_id,))
        return [row["profile_id"] for row in await cur.fetchall()]


async def change_scores(source: PostgresBackend, profiles: dict[int, list[UUID]], rng: random.Random) -> int:
    """One score-update transaction per guild, all at once, through the outbox; returns the events written."""

    async def change(guild_id: int) -> int:
        updates = [
            ScoreUpdate(profile_id, board, Decimal(rng.randint(1, 10**6)), "manual_adjustment")
            for profile_id in rng.sample(profiles[guild_id], 2)
            for board in BOARDS
        ]
        await source.apply_score_updates(TenantContext(guild_id), updates, enqueue=True)
        return len(updates)

    return sum(await asyncio.gather(*(change(g) for g in profiles)))


async def boards_current(cql: CqlSession, keyspace: str, source: PostgresCopySource, guild_ids: list[int]) -> bool:
    """Every board's live snapshot is built from the latest scores PostgreSQL has."""
    for guild_id in guild_ids:
        latest = await source.score_version(guild_id)
        for board in BOARDS:
            snapshot = await current_version(cql, Tables(keyspace), guild_id, board)
            if snapshot is None or snapshot.score_version != latest:
                return False
    return True


async def live_builds(cql: CqlSession, keyspace: str, guild_id: int, board: str) -> list[int]:
    """The score version of every snapshot of the board built to the end (abandoned builds are not live)."""
    rows = await cql.execute(
        f"SELECT state, score_version FROM {Tables(keyspace).versions} WHERE community_id = ? AND board = ?",
        (guild_id, board),
    )
    return sorted(r.score_version for r in rows if r.state == "live")


async def lease_holder(dsn: str, keys: dict[tuple[int, int], int]) -> tuple[str, int] | None:
    """(application, guild) of a bot session holding a rebuild lease of one of `keys`, or None.

    `keys` maps an advisory lock's (classid, objid), the halves pg_locks shows of a bigint key, to its guild.
    """
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT a.application_name, l.classid::bigint, l.objid::bigint FROM pg_locks l"
            " JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.granted"
        )
        for application, high, low in await cur.fetchall():
            if (high, low) in keys and application.startswith("sietch-shard-"):
                return application, keys[(high, low)]
    return None


async def sessions_of(dsn: str, application: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application,))
        row = await cur.fetchone()
        return int(row[0]) if row else 0


def lock_halves(name: str) -> tuple[int, int]:
    key = lock_key(name) & (2**64 - 1)
    return key >> 32, key & 0xFFFFFFFF


def answered_once(emulator: DiscordEmulator, interactions: list[Interaction]) -> None:
    for inter in interactions:
        assert inter.shard == emulator.shard_of(inter.guild.id), inter
        assert len(inter.callback_types) == 1 and inter.rejections == [], inter


async def ask(emulator: DiscordEmulator, guild_ids: list[int], *commands: str) -> list[Interaction]:
    """Each command once in each guild, at once; returns the interactions once all are answered."""
    member = emulator.member(FIRST_USER, "member0")
    asked = [emulator.invoke(c, guild_id=g, user=member) for g in guild_ids for c in commands]
    await asyncio.gather(*(i.done(timeout=WITHIN) for i in asked))
    answered_once(emulator, asked)
    return asked


def auto_rollback_field(message_embeds: list[dict[str, Any]]) -> str:
    fields = message_embeds[0]["fields"]
    return str(next(f["value"] for f in fields if f["name"] == "Auto-rollback"))


async def test_processes_share_the_shards_and_the_background_work(
    fleet: Fleet, pool: AsyncConnectionPool[Any], keyspace: tuple[CqlSettings, CqlSession]
) -> None:
    emulator, cql, ks = fleet.emulator, keyspace[1], keyspace[0].keyspace
    by_shard = guilds_on_every_shard(emulator)
    guild_ids = [g for ids in by_shard.values() for g in ids]
    await seed(pool, keyspace, guild_ids)
    for guild_id in guild_ids:
        emulator.add_guild(guild_id, name=f"guild {guild_id}")
    container = app(pool, cql=cql, keyspace=ks)
    source, copy_source = container.postgres_backend(), container.copy_source()
    profiles = {g: await profile_ids(source, g) for g in guild_ids}
    rng = random.Random(5)

    for shard in range(SHARDS):
        await fleet.start(shard)
    await emulator.wait_for_shards(set(range(SHARDS)), timeout=90)
    await emulator.wait_for_commands(COMMANDS, timeout=WITHIN)
    assert {tuple(i["shard"]) for i in emulator.identifies} == {(s, SHARDS) for s in range(SHARDS)}

    # Interactions: each goes to the process of its guild's shard only, and is answered once, by it.
    await ask(emulator, guild_ids, "position", "threshold")
    expected = {s: Counter({(g, "ok"): 2 for g in by_shard[s]}) for s in range(SHARDS)}
    await until(
        lambda: all(fleet.bots[s].answers() == expected[s] for s in range(SHARDS)),
        "each process logs the answers of its own shard's guilds, and only those",
        fleet,
    )

    # The outbox: events written while every process relays are copied once in all.
    await until(lambda: _pending_is_zero(copy_source), "the outbox empty before the test writes", fleet)
    before = {s: fleet.bots[s].relayed() for s in range(SHARDS)}
    versions_before = {(g, b): await live_builds(cql, ks, g, b) for g in guild_ids for b in BOARDS}
    events = 0
    for _ in range(4):
        events += await change_scores(source, profiles, rng)
    await until(lambda: _pending_is_zero(copy_source), "the outbox drained", fleet)

    def relayed_now() -> dict[int, int]:
        return {s: fleet.bots[s].relayed() - before[s] for s in range(SHARDS)}

    await until(lambda: sum(relayed_now().values()) >= events, f"{events} events relayed", fleet)
    assert sum(relayed_now().values()) == events, f"copied per process: {relayed_now()}; written: {events}"

    # Rebuilds: every board reaches the latest scores.
    await until(lambda: boards_current(cql, ks, copy_source, guild_ids), "every board rebuilt", fleet)

    # Latches live in PostgreSQL: one tripped elsewhere reaches every process, as does clearing it.
    admin = emulator.member(FIRST_USER + 1, "admin", permissions=ADMINISTRATOR)
    reason = f"tripped by another process {uuid.uuid4().hex[:6]}"
    await LatchTable(source.pool).trip("position", "scylla", reason)

    async def every_process_shows(text: str) -> bool:
        asked = [emulator.invoke("backends", "status", guild_id=ids[0], user=admin) for ids in by_shard.values()]
        shown = [auto_rollback_field((await i.done(timeout=WITHIN)).embeds) for i in asked]
        answered_once(emulator, asked)
        return all(text in field for field in shown)

    await until(lambda: every_process_shows(reason), "every process shows the latch", fleet, every=0.25)
    cleared = emulator.invoke("backends", "clear", guild_id=by_shard[0][0], user=admin)
    await cleared.done(timeout=WITHIN)
    await until(lambda: every_process_shows("none"), "every process shows the latch cleared", fleet, every=0.25)

    # Each change of a board was built once: never two snapshots from the same scores.
    for (guild_id, board), earlier in versions_before.items():
        built = await live_builds(cql, ks, guild_id, board)
        assert len(built) > len(earlier), (guild_id, board, built)
        by_process = {b.log_path.name: b.built()[(guild_id, board)] for b in fleet.every_bot()}
        assert len(set(built)) == len(built), f"{guild_id} {board}: built twice from one version {built} {by_process}"

    # A process killed while it holds a rebuild lease: the others take its work over.
    keys = {lock_halves(lease_name("scylla", g)): g for g in guild_ids}
    writes = asyncio.create_task(_keep_changing(source, profiles, rng, 6))
    holder: tuple[str, int] | None = None

    async def found_holder() -> bool:
        nonlocal holder
        holder = await lease_holder(fleet.dsn, keys)
        return holder is not None

    await until(found_holder, "a process holds a rebuild lease", fleet)
    assert holder is not None
    application = holder[0]
    victim = int(application.rsplit("-", 1)[1])
    killed = await fleet.kill(victim)
    await until(lambda: victim not in emulator.connected_shards, "the emulator sees the shard gone", fleet)
    # PostgreSQL ends a session whose client is gone, and its locks with it.
    await until(lambda: _no_sessions(fleet.dsn, application), "the killed process's sessions ended", fleet)

    survivors = [g for s in fleet.bots for g in by_shard[s]]
    await ask(emulator, survivors, "position")
    # One more change everywhere: the survivors must take every lease, the killed process's included.
    events += await writes + await change_scores(source, profiles, rng)
    await until(lambda: _pending_is_zero(copy_source), "the survivors drained the outbox", fleet)
    await until(lambda: boards_current(cql, ks, copy_source, guild_ids), "the survivors rebuilt every board", fleet)

    # Restarted, the process serves its shard again, on a new session.
    old_sessions = {i.session_id for i in emulator.interactions.values() if i.shard == victim}
    restarted = await fleet.start(victim)
    await emulator.wait_for_shards({victim}, timeout=90)
    back = await ask(emulator, by_shard[victim], "position")
    assert all(i.session_id not in old_sessions for i in back)
    await until(
        lambda: restarted.answers() == Counter({(g, "ok"): 1 for g in by_shard[victim]}),
        "the restarted process answers its shard",
        fleet,
    )

    await fleet.stop()
    for bot in fleet.every_bot():
        log = bot.log()
        assert "Traceback" not in log, log
        if bot is not killed:
            assert bot.process.returncode == 0, log
    assert emulator.violations == [] and emulator.unknown_routes == []
    answered_once(emulator, list(emulator.interactions.values()))
    assert sum(b.relayed() for b in fleet.every_bot()) >= events


async def _pending_is_zero(source: PostgresCopySource) -> bool:
    return await source.pending() == 0


async def _no_sessions(dsn: str, application: str) -> bool:
    return await sessions_of(dsn, application) == 0


async def _keep_changing(
    source: PostgresBackend, profiles: dict[int, list[UUID]], rng: random.Random, rounds: int
) -> int:
    events = 0
    for _ in range(rounds):
        events += await change_scores(source, profiles, rng)
    return events


async def test_a_shard_outside_the_count_is_refused_in_one_line(postgres_dsn: str) -> None:
    env = sietch_environ(postgres_dsn, SIETCH_DISCORD_SHARD_COUNT="2", SIETCH_DISCORD_SHARD_IDS="0,2")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 1
    assert stderr.decode().splitlines() == [
        "sietch: discord.shard_ids: shard 2 is outside 0..1 (discord.shard_count is 2)"
    ]
