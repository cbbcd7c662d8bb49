"""A fleet: a hundred communities on two `sietch run` shard processes with the default pools, roles
configured everywhere, score waves through both feed doors, thresholds changed on a fifth of them, one
member spamming a command and a few guilds whose admins put the bot's role below the roles it hands out.
Against the strict emulator (the global limit, invalid requests counted, Retry-After kept), every member
must reach the roles their position gives, no interaction is left unanswered or fails, no latch trips,
and the refused changes are not asked again."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from backends.members import MemberRow
from backends.postgres.community_writes import CommunityWrites
from backends.postgres.ingest import IngestDirectory
from backends.postgres.standing import StandingStore
from backends.protocol import Community
from backends.roles import RoleConfig
from tests.e2e.test_run import free_port, start_bot
from tests.e2e.test_scores_cli import run as sietch
from tests.emulator import DiscordEmulator

GUILDS = 100
MEMBERS = 10
F, N, R, W = 4, 1, 2, 7
REFUSING = 3  # guilds whose bot role sits below the roles it hands out
SETTLE_SECONDS = 240.0
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Guild:
    gid: int
    roles: dict[str, int]
    users: list[int]
    refusing: bool
    fedaykin: int = F
    token: str = ""
    scores: dict[int, Decimal] = field(default_factory=dict)

    def expected(self) -> dict[int, set[int]]:
        """The oracle: each member's roles from their position (scores are distinct: no ties)."""
        if self.refusing:
            return {u: set() for u in self.users}
        order = sorted(self.users, key=lambda u: -self.scores[u])
        want: dict[int, set[int]] = {}
        for position, user in enumerate(order, 1):
            roles: set[int] = set()
            if self.scores[user] > 0:
                if position <= self.fedaykin:
                    roles.add(self.roles["fedaykin"])
                    if position <= N:
                        roles.add(self.roles["naib"])
                    if position > R:
                        roles.add(self.roles["at_risk"])
                elif position <= W:
                    roles.add(self.roles["waiting"])
            want[user] = roles
        return want


async def _seed(emulator: DiscordEmulator, pool: Any, base: int, rng: random.Random) -> list[Guild]:
    admin, standing, ingest = CommunityWrites(pool), StandingStore(pool), IngestDirectory(pool)
    guilds = []
    for i in range(GUILDS):
        gid = base + i
        refusing = i < REFUSING
        emulator.add_guild(gid, name=f"guild {i}")
        roles = {
            k: emulator.add_role(gid, k, p) for k, p in (("naib", 5), ("fedaykin", 4), ("at_risk", 3), ("waiting", 2))
        }
        emulator.give_bot_role(gid, emulator.add_role(gid, "Sietch", 1 if refusing else 10))
        users = [10_000 * (i + 1) + j for j in range(MEMBERS)]
        for u in users:
            emulator.add_member(gid, u, name=f"m{u}")
        guild = Guild(gid, roles, users, refusing)
        guild.scores = {u: Decimal(rng.randrange(1, 10**6)) for u in users}
        await admin.upsert_community(Community(gid, name=f"guild {i}", fedaykin=F, naib=N, at_risk=R, waitlist_end=W))
        await admin.import_members(
            gid,
            [
                MemberRow(discord_user_id=u, conviction=guild.scores[u], joined_at=EPOCH + timedelta(seconds=j))
                for j, u in enumerate(users)
            ],
        )
        await standing.put_role_config(
            RoleConfig(gid, roles["naib"], roles["fedaykin"], roles["at_risk"], roles["waiting"])
        )
        guild.token = await ingest.new_token(gid)
        guilds.append(guild)
    return guilds


def _wrong(emulator: DiscordEmulator, guilds: list[Guild]) -> int:
    return sum(1 for g in guilds for u, roles in g.expected().items() if emulator.member_roles(g.gid, u) != roles)


async def _settle(emulator: DiscordEmulator, guilds: list[Guild], logs: list[Path], what: str) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while (wrong := _wrong(emulator, guilds)) > 0:
        if loop.time() - started > SETTLE_SECONDS:
            tail = "\n".join(p.read_text()[-3000:] for p in logs)
            pytest.fail(f"{what}: {wrong} members at the wrong roles after {SETTLE_SECONDS}s\n{tail}")
        await asyncio.sleep(0.5)
    return loop.time() - started


def _move(guild: Guild, rng: random.Random) -> list[dict[str, Any]]:
    """A wave in one guild: three members get new scores (the top, the entry and the pool reshuffle)."""
    items = []
    for user in rng.sample(guild.users, 3):
        guild.scores[user] = Decimal(rng.randrange(1, 10**6))
        items.append({"guild": str(guild.gid), "member": str(user), "board": "conviction",
                      "value": str(guild.scores[user]), "event_type": "token_hold"})  # fmt: skip
    return items


async def test_a_fleet_of_communities_settles_and_no_community_hurts_another(
    postgres_dsn: str, pool: Any, new_guild_id: int, tmp_path: Path
) -> None:
    rng = random.Random(7)
    emulator = DiscordEmulator(shard_count=2)
    await emulator.start()
    processes: list[asyncio.subprocess.Process] = []
    logs: list[Path] = []
    try:
        base = (new_guild_id >> 8) << 8
        guilds = await _seed(emulator, pool, base, rng)
        ports = [free_port(), free_port()]
        for shard, port in enumerate(ports):
            log = tmp_path / f"shard-{shard}.log"
            logs.append(log)
            process = await start_bot(
                emulator, postgres_dsn, emulator.token,
                SIETCH_DISCORD_SHARD_COUNT="2", SIETCH_DISCORD_SHARD_IDS=str(shard),
                SIETCH_FEED_PORT=str(port), SIETCH_ROLES_SWEEP_SECONDS="2", SIETCH_ROLES_DEBOUNCE_SECONDS="1",
                SIETCH_LOGGING_LEVEL="WARNING",
            )  # fmt: skip
            processes.append(process)
            asyncio.get_running_loop().create_task(_drain(process, log))
        await emulator.wait_for_shards({0, 1}, timeout=60)
        first = await _settle(emulator, guilds, logs, "the first sync")

        # Waves: the HTTP door of either process for half the guilds, one file for a third of them.
        async with aiohttp.ClientSession() as http:
            for k, guild in enumerate(guilds[:50]):
                url = f"http://127.0.0.1:{ports[k % 2]}/v1/guilds/{guild.gid}/scores"
                async with http.post(
                    url, json=_move(guild, rng), headers={"Authorization": f"Bearer {guild.token}"}
                ) as r:
                    assert r.status == 200, await r.text()
        lines = [json.dumps(item) for guild in guilds[50:80] for item in _move(guild, rng)]
        feed = tmp_path / "wave.jsonl"
        feed.write_text("\n".join(lines) + "\n")
        applied = await asyncio.to_thread(sietch, postgres_dsn, "scores", "apply", str(feed))
        assert applied.returncode == 0, applied.stderr
        # A threshold change on a fifth of them.
        for guild in guilds[80:]:
            guild.fedaykin = F + 1
            changed = await asyncio.to_thread(
                sietch, postgres_dsn, "community", str(guild.gid), "--fedaykin", str(F + 1)
            )
            assert changed.returncode == 0, changed.stderr
        # One member spamming /position (10 a minute allowed): refused, never compared, never latched.
        spammer = guilds[-1]
        member = emulator.member(spammer.users[0], "spammer")
        asked = [emulator.invoke("position", guild_id=spammer.gid, user=member) for _ in range(30)]
        answers = await asyncio.gather(*(i.done(timeout=30) for i in asked))
        refused = [a for a in answers if "too quickly" in a.embeds[0]["description"]]
        assert len(refused) == 20

        waves = await _settle(emulator, guilds, logs, "after the waves")
        invalid = emulator.invalid_requests
        # The refusing guilds' changes were tried once each and held back: more syncs ask nothing again.
        await asyncio.sleep(6)
        assert emulator.invalid_requests == invalid, "refused role changes were asked again"
        budget = REFUSING * MEMBERS * 4
        assert invalid <= budget, f"{invalid} invalid requests, budget {budget}"
        assert emulator.violations == [], emulator.violations[:10]
        assert not emulator.banned
        unanswered = [i for i in emulator.interactions.values() if not i.callback_types]
        assert unanswered == []
        async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
            cur = await conn.execute("SELECT count(*) FROM routing_latches")
            row = await cur.fetchone()
            assert row is not None and row[0] == 0
        print(f"fleet: first sync settled in {first:.1f}s, waves in {waves:.1f}s, invalid requests {invalid}")
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                pytest.fail("a bot process did not stop within 30 s of SIGTERM")
        await emulator.stop()


async def _drain(process: asyncio.subprocess.Process, log: Path) -> None:
    """Keep the process's output flowing into its log (a full pipe would stall it)."""
    assert process.stderr is not None
    with log.open("w") as out:
        while line := await process.stderr.readline():
            out.write(line.decode())
            out.flush()
