"""The migration page of a real `sietch run` process, as an admin's browser sees it: a command moving to
Scylla after a flag file edit, a latch sending it back, and who may open the page from where.

The browser is Debian's Chromium (`make browser` installs it); without one the browser test is skipped,
saying so. Screenshots go to `.run/test-artefacts/`.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nextcord
import pytest
from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.postgres.latches import LatchTable
from backends.protocol import Community
from backends.scylla.session import CqlSession, CqlSettings
from bot.app.migration_page import LISTED
from bot.replication.backfill import backfill
from tests.emulator import DiscordEmulator
from tests.environ import sietch_environ
from tests.wiring import app

ROOT = Path(__file__).parents[2]
ARTEFACTS = ROOT / ".run" / "test-artefacts"
WITHIN = 30.0  # seconds the page gets to show an awaited state
TOKEN = "page-token-for-the-test-7c1d"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class RunningBot:
    process: asyncio.subprocess.Process
    log_path: Path
    port: int

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
async def start(
    discord: tuple[DiscordEmulator, nextcord.Client], postgres_dsn: str, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Starts `sietch run` on the emulator with the given settings; stops every one started afterwards."""
    emulator = discord[0]
    started: list[RunningBot] = []

    async def run(cql: CqlSettings | None = None, **settings: str) -> RunningBot:
        port = free_port()
        env = sietch_environ(
            postgres_dsn,
            cql,
            DISCORD_TOKEN=emulator.token,
            SIETCH_DISCORD_API_BASE=emulator.base_url,
            SIETCH_METRICS_PORT=str(port),
            SIETCH_METRICS_REPORT_SECONDS="0.5",
            **settings,
        )
        log_path = tmp_path / f"bot-{len(started)}.log"
        with log_path.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=ROOT, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        bot = RunningBot(process, log_path, port)
        started.append(bot)
        await emulator.wait_for_commands({"position", "threshold", "leaderboard", "backends"}, timeout=WITHIN)
        return bot

    try:
        yield run
    finally:
        for bot in started:
            if bot.process.returncode is None:
                bot.process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(bot.process.wait(), 30)
                except TimeoutError:
                    bot.process.kill()
                    await bot.process.wait()


async def figures(port: int, **headers: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/migration.json", headers=headers) as r,
    ):
        assert r.status == 200, await r.text()
        return dict((await r.json())["figures"])


async def until_shown(bot: RunningBot, holds: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN
    while True:
        shown = await figures(bot.port)
        if holds(shown):
            return shown
        if loop.time() > deadline:
            pytest.fail(
                f"the page did not show {what} within {WITHIN}s:\n{json.dumps(shown, indent=1)}\n{bot.log()[-3000:]}"
            )
        await asyncio.sleep(0.25)


def command(shown: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in shown["commands"] if c["command"] == name)


def backend_row(shown: dict[str, Any], name: str, backend: str) -> dict[str, Any]:
    return next(b for b in command(shown, name)["backends"] if b["backend"] == backend)


def routes(shown: dict[str, Any], name: str) -> set[tuple[str, str]]:
    return {(r["backend"], r["reason"]) for r in command(shown, name)["routes"]}


async def browse(browser: str, url: str, out: Path, *args: str) -> str:
    """Chromium headless on `url`, given scripts a few seconds of virtual time; its stdout."""
    process = await asyncio.create_subprocess_exec(
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={out}",
        "--virtual-time-budget=5000",
        *args,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()[-3000:]
    return stdout.decode()


async def test_the_page_shows_a_command_moving_to_scylla_and_a_latch_sending_it_back(
    start: Callable[..., Any],
    discord: tuple[DiscordEmulator, nextcord.Client],
    pool: AsyncConnectionPool[Any],
    cql_node: CqlSettings,
    cql_session: CqlSession,
    new_guild_id: int,
    tmp_path: Path,
) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("no chromium or chromium-browser on PATH (`make browser` installs Debian's chromium)")
    emulator = discord[0]
    copied, not_copied = new_guild_id, new_guild_id + 1
    container = app(pool, cql=cql_session, keyspace=cql_node.keyspace)
    admin = container.community_writes()
    for guild_id in (copied, not_copied):
        await admin.upsert_community(Community(guild_id, name=f"guild {guild_id}"))
        await admin.import_members(guild_id, [MemberRow(discord_user_id=77, nym="Stilgar", conviction=5)])
        emulator.add_guild(guild_id)
    await backfill(container.copy_source(), container.replicas()["scylla"], copied)
    flags = tmp_path / "flags.yaml"
    flags.write_text("default_backend: postgres\n")
    bot = await start(cql_node, SIETCH_FLAGS_PATH=str(flags), SIETCH_FLAGS_POLL_SECONDS="0.2")
    member = emulator.member(77, "Stilgar")
    url = f"http://127.0.0.1:{bot.port}/migration"
    ARTEFACTS.mkdir(parents=True, exist_ok=True)

    # Before: PostgreSQL serves /position everywhere; its answer shows up in the latencies.
    await emulator.invoke("position", guild_id=copied, user=member).done(timeout=WITHIN)
    before = await until_shown(
        bot, lambda f: backend_row(f, "position", "postgres")["p50_ms"] is not None, "postgres's latency"
    )
    assert backend_row(before, "position", "scylla")["communities"] == 0
    assert ("postgres", "default") in routes(before, "position")
    copies = next(c for c in before["copies"] if c["backend"] == "scylla")
    # The session's database holds other tests' communities too: the page names the first LISTED by id.
    listed = {x["community"]: x["reason"] for x in copies["listed"]}
    assert copies["by_reason"].get("not ready: never backfilled", 0) >= 1
    assert str(copied) not in listed
    if len(listed) < LISTED or not_copied < max(int(g) for g in listed):
        assert listed.get(str(not_copied)) == "not ready: never backfilled"
    assert before["processes"]["reporting"] >= 1

    # The admin's edit: /position to Scylla for every community whose copy is ready.
    flags.write_text("default_backend: postgres\ncommands:\n  position: {backend: scylla, rollout: 100, shadow: 100}\n")
    moved = await until_shown(
        bot, lambda f: ("scylla", "rollout 100%") in routes(f, "position"), "/position routed to scylla"
    )
    assert ("postgres", "not ready: never backfilled") in routes(moved, "position")
    assert backend_row(moved, "position", "scylla")["communities"] >= 1
    await emulator.invoke("position", guild_id=copied, user=member).done(timeout=WITHIN)
    moved = await until_shown(
        bot,
        lambda f: (
            backend_row(f, "position", "scylla")["p50_ms"] is not None
            and command(f, "position")["shadow"]["compared"] >= 1
        ),
        "scylla's latency and a shadow comparison",
    )
    assert command(moved, "position")["shadow"]["match"] >= 1
    dom = await browse(browser, url, tmp_path / "chromium-1", "--dump-dom")
    assert "data-refreshed" in dom, "the page's script did not refresh it:\n" + dom[:3000]
    assert "moved to scylla</span> target scylla, rollout 100% by community" in dom
    await browse(
        browser,
        url,
        tmp_path / "chromium-2",
        f"--screenshot={ARTEFACTS / 'migration-moved.png'}",
        "--window-size=1280,1600",
    )

    # A latch, set as another process's auto-rollback would: /position goes back to PostgreSQL.
    reason = "shadow mismatch rate 9/50 over 300s"
    await LatchTable(pool).trip("position", "scylla", reason)
    try:
        latched = await until_shown(
            bot, lambda f: backend_row(f, "position", "scylla")["latched"] == reason, "the latch"
        )
        assert ("postgres", f"auto-rollback ({reason})") in routes(latched, "position")
        dom = await browse(browser, url, tmp_path / "chromium-3", "--dump-dom")
        assert f"auto-rollback latch: {reason}" in dom and "rolled back from scylla (latch)" in dom
        screenshot = ARTEFACTS / "migration-latched.png"
        await browse(browser, url, tmp_path / "chromium-4", f"--screenshot={screenshot}", "--window-size=1280,1600")
        assert screenshot.stat().st_size > 10_000
    finally:
        await LatchTable(pool).clear("position", "scylla")
    assert "Traceback" not in bot.log(), bot.log()
    assert TOKEN not in bot.log()


async def test_the_page_answers_only_on_the_configured_address(start: Callable[..., Any]) -> None:
    bot = await start(SIETCH_METRICS_HOST="127.0.0.1")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{bot.port}/migration") as page:
            assert page.status == 200 and "Sietch: the migration" in await page.text()
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(f"http://127.0.0.2:{bot.port}/migration", timeout=aiohttp.ClientTimeout(total=5)):
                pass
        if (other := this_machines_address()) is not None:
            with pytest.raises(aiohttp.ClientConnectionError):
                async with http.get(f"http://{other}:{bot.port}/migration", timeout=aiohttp.ClientTimeout(total=5)):
                    pass


async def test_on_every_address_the_page_needs_the_token_and_metrics_do_not(start: Callable[..., Any]) -> None:
    bot = await start(SIETCH_METRICS_HOST="0.0.0.0", SIETCH_METRICS_PAGE_TOKEN=TOKEN)
    base = f"http://127.0.0.1:{bot.port}"
    refused = [
        ("/migration", {}),
        ("/migration.json", {}),
        ("/migration?token=wrong", {}),
        ("/migration.json", {"Authorization": "Bearer wrong"}),
        ("/migration.json", {"Authorization": f"Basic {TOKEN}"}),
    ]
    async with aiohttp.ClientSession() as http:
        for path, headers in refused:
            async with http.get(base + path, headers=headers) as r:
                body = await r.text()
                assert r.status == 401, (path, headers, r.status)
                assert "communities" not in body and "position" not in body, body
        async with http.get(f"{base}/migration?token={TOKEN}") as r:
            assert r.status == 200 and "/position" in await r.text()
        async with http.get(f"{base}/migration.json", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200 and (await r.json())["figures"]["commands"][0]["command"] == "position"
        for path in ("/metrics", "/healthz"):
            async with http.get(base + path) as r:
                assert r.status == 200, path
    assert TOKEN not in bot.log()


async def test_a_page_open_to_other_machines_without_a_token_stops_the_bot_in_one_line(postgres_dsn: str) -> None:
    env = sietch_environ(postgres_dsn, SIETCH_METRICS_HOST="0.0.0.0", DISCORD_TOKEN="unused")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 1
    [line] = stderr.decode().splitlines()
    assert line.startswith("sietch: metrics.host is '0.0.0.0'") and "SIETCH_METRICS_PAGE_TOKEN" in line


def this_machines_address() -> str | None:
    """An address of this machine that is not loopback, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address
