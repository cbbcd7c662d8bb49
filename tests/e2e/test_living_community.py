"""The living community through `sietch run`, the real nextcord client and the emulator: score updates
enter by both doors (HTTP and `sietch scores apply`), move members across F and N, and the guild's roles
and the members' alert DMs follow; replays change nothing; bad batches are refused with the right status
and write nothing."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from backends.members import MemberRow
from backends.postgres.community_writes import CommunityWrites
from backends.protocol import Community
from tests.e2e.test_run import emulator, free_port, read_log_until, start_bot
from tests.e2e.test_scores_cli import run as sietch
from tests.emulator import DiscordEmulator

__all__ = ["emulator"]  # the fixture, shared with test_run

WITHIN = 20.0
USERS = list(range(101, 109))  # positions 1..8 by conviction 80, 70, ... 10


async def until(check: Callable[[], Any], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN
    while True:
        if (await check()) if asyncio.iscoroutinefunction(check) else check():
            return
        if loop.time() > deadline:
            pytest.fail(f"not within {WITHIN}s: {what}")
        await asyncio.sleep(0.1)


async def score_version(dsn: str, guild: int) -> int:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT score_version FROM communities WHERE community_id = %s", (guild,))
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def test_feed_moves_members_and_roles_and_alerts_follow(
    emulator: DiscordEmulator, postgres_dsn: str, pool: object, new_guild_id: int, tmp_path: Path
) -> None:
    guild, other = new_guild_id, new_guild_id + 1
    admin = CommunityWrites(pool)  # type: ignore[arg-type]
    # F = 4, N = 1, R = 2 (positions 3 and 4 at risk), W = 6.
    await admin.upsert_community(Community(guild, name="Arrakis", fedaykin=4, naib=1, at_risk=2, waitlist_end=6))
    await admin.import_members(
        guild, [MemberRow(discord_user_id=u, conviction=Decimal(80 - 10 * i)) for i, u in enumerate(USERS)]
    )
    await admin.upsert_community(Community(other, name="Caladan", fedaykin=1, naib=1, at_risk=0, waitlist_end=2))
    await admin.import_members(other, [MemberRow(discord_user_id=201, conviction=Decimal(5))])

    emulator.add_guild(guild, name="Arrakis")
    emulator.add_guild(other, name="Caladan")
    bot_role = emulator.add_role(guild, "Sietch", 10)
    emulator.give_bot_role(guild, bot_role)
    naib, fedaykin = emulator.add_role(guild, "Naib", 5), emulator.add_role(guild, "Fedaykin", 4)
    at_risk, waiting = emulator.add_role(guild, "At risk", 3), emulator.add_role(guild, "Waiting", 2)
    emulator.give_bot_role(other, emulator.add_role(other, "Sietch", 2))
    above_bot = emulator.add_role(other, "Council", 7)
    people = {u: emulator.add_member(guild, u, name=f"member{u}") for u in USERS}
    emulator.add_member(other, 201, name="member201")
    emulator.remove_member(guild, 106)  # position 6 (waiting pool) has left the server
    emulator.role_route_limit = 4  # per guild per second: the first sync alone needs more

    setup = sietch(
        postgres_dsn, "community", str(guild), "--naib-role", str(naib), "--fedaykin-role", str(fedaykin),
        "--at-risk-role", str(at_risk), "--waiting-role", str(waiting), "--new-ingest-token",
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr
    token = setup.stdout.strip().splitlines()[-1]
    assert token.startswith("sietch_") and "shown once" in setup.stderr
    assert sietch(postgres_dsn, "community", str(other), "--naib-role", str(above_bot)).returncode == 0

    def roles() -> dict[int, set[int]]:
        return {u: emulator.member_roles(guild, u) for u in USERS if u != 106}

    expected_start = {
        101: {naib, fedaykin}, 102: {fedaykin}, 103: {fedaykin, at_risk}, 104: {fedaykin, at_risk},
        105: {waiting}, 107: set(), 108: set(),
    }  # fmt: skip
    dry = sietch(postgres_dsn, "roles", "sync", str(guild), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"+ role {naib} for user 101" in dry.stdout and f"+ role {waiting} for user 105" in dry.stdout
    assert emulator.role_changes == []  # a dry run changes nothing

    port = free_port()
    process = await start_bot(
        emulator, postgres_dsn, emulator.token,
        SIETCH_FEED_PORT=str(port), SIETCH_ROLES_DEBOUNCE_SECONDS="0.5", SIETCH_ROLES_SWEEP_SECONDS="1",
        SIETCH_FEED_REQUESTS_PER_MINUTE="12",
    )  # fmt: skip
    log: list[str] = []
    url = f"http://127.0.0.1:{port}/v1/guilds/{guild}/scores"
    auth = {"Authorization": f"Bearer {token}"}
    try:
        await read_log_until(process, "score feed listening", log)
        await until(lambda: roles() == expected_start, f"the first sync's roles; now {roles()}")
        await until(lambda: emulator.member_roles(other, 201) == set(), "the other guild synced")
        for u in (104, 105, 103):
            answer = await emulator.invoke("alerts", "on", guild_id=guild, user=people[u]).done()
            assert "Alerts are **on**" in answer.embeds[0]["description"]
        emulator.close_dms(103)

        async with aiohttp.ClientSession() as http:
            # 105 jumps to the top: a naib seat; 104 drops out of the eligible set to the head of the pool.
            batch = [
                {"member": "105", "board": "conviction", "value": "100", "event_type": "token_hold", "tx_hash": "0xa1"}
            ]
            async with http.post(url, json=batch, headers=auth) as r:
                assert r.status == 200, await r.text()
                first = await r.json()
            moved = {
                105: {naib, fedaykin}, 101: {fedaykin}, 102: {fedaykin, at_risk}, 103: {fedaykin, at_risk},
                104: {waiting}, 107: set(), 108: set(),
            }  # fmt: skip
            await until(lambda: roles() == moved, f"roles after the HTTP batch; now {roles()}")
            await until(lambda: len(emulator.dms_to(104)) == 1 and len(emulator.dms_to(105)) == 1, "two alerts")
            assert "no longer in the eligible set" in emulator.dms_to(104)[0]["content"]
            assert "head of the waiting pool" in emulator.dms_to(104)[0]["content"]
            assert "Naib seat" in emulator.dms_to(105)[0]["content"]
            changes = len(emulator.role_changes)

            # The indexer retries the same batch: accepted, nothing applied again.
            async with http.post(url, json=batch, headers=auth) as r:
                assert r.status == 200 and (await r.json())["score_version"] == first["score_version"]

            # Refusals write nothing.
            before = await score_version(postgres_dsn, guild)
            async with http.post(url, json=batch, headers={"Authorization": "Bearer wrong"}) as r:
                wrong_token = (r.status, await r.text())
            async with http.post(url.replace(str(guild), "999999999"), json=batch, headers=auth) as r:
                unknown_guild = (r.status, await r.text())
            assert wrong_token == unknown_guild and wrong_token[0] == 401  # which one is not told
            bad = [
                batch[0] | {"tx_hash": "0xa2"},
                {"member": "102", "board": "karma", "value": "1", "event_type": "token_hold"},
            ]
            async with http.post(url, json=bad, headers=auth) as r:
                assert r.status == 422
                body = await r.json()
                assert body["problems"][0]["index"] == 1 and "board 'karma'" in body["problems"][0]["error"]
            async with http.post(url, data=b"[" + b" " * (1 << 20) + b"]", headers=auth) as r:
                assert r.status == 413
            assert await score_version(postgres_dsn, guild) == before

            # The file door: 103 (DMs closed) takes the naib seat; 104 is back in, at risk; 105 loses its seat.
            feed = tmp_path / "updates.jsonl"
            feed.write_text(
                json.dumps({"guild": str(guild), "member": "103", "board": "conviction", "value": 200,
                            "mode": "add", "event_type": "nft_ownership", "tx_hash": "0xb1"}) + "\n"
                + json.dumps({"guild": guild, "member": "104", "board": "conviction", "value": "75",
                              "event_type": "manual_adjustment"}) + "\n"
            )  # fmt: skip
            applied = await asyncio.to_thread(sietch, postgres_dsn, "scores", "apply", str(feed))
            assert applied.returncode == 0, applied.stderr
            after_file = {
                103: {naib, fedaykin}, 105: {fedaykin}, 101: {fedaykin, at_risk}, 104: {fedaykin, at_risk},
                102: {waiting}, 107: set(), 108: set(),
            }  # fmt: skip
            await until(lambda: roles() == after_file, f"roles after the file; now {roles()}")

            async def dms_closed_noted() -> bool:
                async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
                    cur = await conn.execute(
                        "SELECT enabled, note FROM alert_subscriptions"
                        " WHERE community_id = %s AND discord_user_id = 103",
                        (guild,),
                    )
                    row = await cur.fetchone()
                return row is not None and not row[0] and "DMs closed" in row[1]

            await until(dms_closed_noted, "103's alerts switched off with a note")
            # 104 re-entered and 105 lost its seat, but both had a DM minutes ago: one a day.
            assert len(emulator.dms_to(104)) == 1 and len(emulator.dms_to(105)) == 1
            assert emulator.dms_to(103) == []
            status = await emulator.invoke("alerts", "status", guild_id=guild, user=people[103]).done()
            assert "off" in status.embeds[0]["description"] and "DMs closed" in status.embeds[0]["description"]

            # Until the rate is spent: then 429 with Retry-After.
            statuses = []
            for _ in range(14):
                async with http.post(url, json=batch, headers=auth) as r:
                    statuses.append((r.status, r.headers.get("Retry-After")))
            assert statuses[-1][0] == 429 and int(statuses[-1][1] or 0) >= 1

        # What the bot cannot do is reported: a role above its own in the other guild.
        admin_user = emulator.member(9001, "admin", permissions=0x20)
        report = await emulator.invoke("roles", "status", guild_id=other, user=admin_user).done()
        refused = report.embeds[0]["fields"][1]
        assert "(1)" in refused["name"] and "highest role" in refused["value"]
        # Each change made once, with its reason in the audit log.
        assert len(emulator.role_changes) > changes
        assert all(reason and reason.startswith("Sietch: ") for *_, reason in emulator.role_changes)
        # More role changes than the route allows per second: the bot waited, either for the reset the
        # rate-limit headers announced or after a 429 for its Retry-After, never retrying early.
        assert len(emulator.role_changes) > 4 * 3
        assert emulator.violations == [] and emulator.unknown_routes == []
    finally:
        process.terminate()
        _, err = await asyncio.wait_for(process.communicate(), 30)
        if sys.exc_info()[0] is not None:
            print("".join(log) + err.decode())
