"""The score feed per community, not per process (findings: the rate limit counted per process, two doors
took twice the limit; idle and half-sent connections were held open forever; a file edited between the
check pass and the write pass was applied as it was at write time, now that it is read once: every line
applied is a line checked)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from psycopg_pool import AsyncConnectionPool

from bot.cli import score_commands
from bot.cli.main import main as sietch
from bot.feed.http import FeedServer
from tests.environ import sietch_environ
from tests.postgres.test_feed_http import open_door
from tests.wiring import app


async def test_two_doors_share_one_community_limit(pool: AsyncConnectionPool[Any], new_guild_id: int) -> None:
    async with open_door(pool, new_guild_id, requests_per_minute=6) as (first, info):
        # A second process's door on the same database.
        container = app(pool)
        second_door = FeedServer(container.score_feed(), container.ingest(), requests_per_minute=6)
        async with TestClient(TestServer(second_door.app())) as second:
            auth = {"Authorization": f"Bearer {info['tokens'][new_guild_id]}"}
            body = [{"member": "7", "board": "conviction", "value": "11", "event_type": "token_hold"}]
            statuses = []
            for i in range(10):
                door = (first, second)[i % 2]
                async with door.post(f"/v1/guilds/{new_guild_id}/scores", json=body, headers=auth) as answer:
                    statuses.append(answer.status)
                    if answer.status == 429:
                        assert 0 < int(answer.headers["Retry-After"]) <= 60
            # The other community's budget is its own.
            other = {"Authorization": f"Bearer {info['tokens'][new_guild_id + 1]}"}
            async with second.post(f"/v1/guilds/{new_guild_id + 1}/scores", json=body, headers=other) as answer:
                assert answer.status == 200
    # Six within the minute across both doors (a minute may turn over mid-test: then up to twelve).
    assert statuses.count(200) in range(6, 13) and statuses[:6] == [200] * 6 and 429 in statuses, statuses


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except TimeoutError:
        return False


async def test_idle_and_half_sent_connections_are_closed(
    pool: AsyncConnectionPool[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiohttp.server")
    container = app(pool)
    port = _free_port()
    door = FeedServer(container.score_feed(), container.ingest(), port=port, idle_timeout_seconds=0.5)
    await door.start()
    try:
        silent = await asyncio.open_connection("127.0.0.1", port)
        trickling = await asyncio.open_connection("127.0.0.1", port)
        trickling[1].write(b"POST /v1/guilds/1/scores HTTP/1.1\r\nHost: x\r\n")  # the rest never comes
        await trickling[1].drain()
        assert await _closed_within(silent[0], 5) and await _closed_within(trickling[0], 5)
        # A connection that sends a whole request is answered as before.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/guilds/1/scores HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[]")
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 401")
        writer.close()
    finally:
        await door.stop()
    # Each connection's handler takes the door's settings as they are (finding: a misplaced keep-alive
    # setting made aiohttp warn at every connection and drop it).
    assert [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"] == []


def test_a_file_edited_while_it_is_applied_has_every_line_checked(
    postgres_dsn: str,
    pool: Any,
    new_guild_id: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The file is read once: a line added while it is read is checked like the others, never applied
    unchecked (the finding: lines added between a check pass and a write pass were applied unchecked)."""
    guild = new_guild_id
    members = tmp_path / "members.csv"
    members.write_text("discord_user_id,conviction\n" + "".join(f"{100 + i},{10 * (i + 1)}\n" for i in range(5)))
    for name, value in sietch_environ(postgres_dsn, SIETCH_METRICS_PORT="0").items():
        monkeypatch.setenv(name, value)
    assert sietch(["import", str(guild), str(members)]) == 0
    feed = tmp_path / "updates.jsonl"

    def update(member: int, value: str) -> str:
        return json.dumps({"guild": str(guild), "member": str(member), "board": "conviction", "value": value,
                           "event_type": "token_hold"}) + "\n"  # fmt: skip

    feed.write_text(update(100, "55") + update(101, "66"))
    parsed = score_commands._parsed

    def edited_while_read(path: Path) -> Any:
        for n, entry in enumerate(parsed(path)):
            if n == 0:
                with feed.open("a") as more:
                    more.write(update(999, "1"))  # no such member
            yield entry

    monkeypatch.setattr(score_commands, "_parsed", edited_while_read)
    assert sietch(["scores", "apply", str(feed)]) == 1
    err = capsys.readouterr().err
    assert "1 bad line(s), nothing was applied" in err and "line 3: member 999 is not a member" in err
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute(
            "SELECT p.discord_user_id, s.conviction FROM scores s JOIN profiles p USING (profile_id)"
            " WHERE s.community_id = %s ORDER BY 1",
            (guild,),
        ).fetchall()
    assert [(u, Decimal(c)) for u, c in rows] == [(100 + i, Decimal(10 * (i + 1))) for i in range(5)]
