"""`sietch run` as a real process: logs in to the emulator, registers commands, answers, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psycopg
import pytest

from backends.members import MemberRow
from backends.postgres.community_writes import CommunityWrites
from backends.protocol import Community
from tests.emulator import DiscordEmulator
from tests.environ import sietch_environ

ROOT = Path(__file__).parents[2]
WITHIN = 10.0  # seconds the bot gets to show an awaited state before the test fails


@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    emu = DiscordEmulator()
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_bot(emulator: DiscordEmulator, dsn: str, token: str, **extra: str) -> asyncio.subprocess.Process:
    env = sietch_environ(
        dsn, DISCORD_TOKEN=token, SIETCH_DISCORD_API_BASE=emulator.base_url, **{"SIETCH_METRICS_PORT": "0", **extra}
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def read_log_until(process: asyncio.subprocess.Process, text: str, log: list[str]) -> None:
    """Read the bot's stderr into `log` up to the first line holding `text`; fail, showing the log, when
    the line does not come within WITHIN seconds. `communicate()` afterwards returns the rest."""
    assert process.stderr is not None
    try:
        async with asyncio.timeout(WITHIN):
            while line := (await process.stderr.readline()).decode():
                log.append(line)
                if text in line:
                    return
    except TimeoutError:
        pytest.fail(f"no {text!r} in the bot's log within {WITHIN}s; so far:\n{''.join(log)}")
    pytest.fail(f"the bot's log ended without {text!r}:\n{''.join(log)}")


async def until_waiting_on_a_lock(dsn: str) -> None:
    """Wait until some query waits for a lock (on a connection of its own: a transaction would keep one
    snapshot of pg_stat_activity); fail after WITHIN seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN
    while True:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            cur = await conn.execute("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock')")
            row = await cur.fetchone()
        if row and row[0]:
            return
        if loop.time() > deadline:
            pytest.fail(f"no query waiting on the communities lock within {WITHIN}s: the bot never read the table")
        await asyncio.sleep(0.02)


async def test_run_logs_in_registers_commands_and_answers(
    emulator: DiscordEmulator, postgres_dsn: str, pool: object, new_guild_id: int, tmp_path: Path
) -> None:
    admin = CommunityWrites(pool)  # type: ignore[arg-type]
    await admin.upsert_community(Community(new_guild_id, name="Arrakis"))
    await admin.import_members(new_guild_id, [MemberRow(discord_user_id=77, nym="Stilgar", conviction=5)])  # type: ignore[arg-type]
    emulator.add_guild(new_guild_id)
    flags = tmp_path / "flags.yaml"
    flags.write_text("default_backend: postgres\n")
    port = free_port()
    # The watcher polls once an hour here, so only SIGHUP can make the bot re-read the file.
    process = await start_bot(
        emulator,
        postgres_dsn,
        emulator.token,
        SIETCH_FLAGS_PATH=str(flags),
        SIETCH_FLAGS_POLL_SECONDS="3600",
        SIETCH_METRICS_PORT=str(port),
    )
    log: list[str] = []
    try:
        await emulator.wait_for_commands({"position", "threshold", "leaderboard", "backends"}, timeout=30)
        assert emulator.identifies[0]["intents"] == 1  # GUILDS only: no privileged intent
        answer = await emulator.invoke("position", guild_id=new_guild_id, user=emulator.member(77, "Stilgar")).done()
        assert answer.embeds[0]["fields"][0]["value"] == "**#1**"
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as health:
            assert (await health.json())["status"] == "ok"
        flags.write_text("default_backend: postgres\ncommands:\n  threshold: {shadow: 0}\n")
        process.send_signal(signal.SIGHUP)
        await read_log_until(process, "commands.threshold", log)  # the change list of the reload
    finally:
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), timeout=20)
    stderr = "".join(log) + rest.decode()
    assert process.returncode == 0, stderr
    assert "flag file changed" in stderr and "commands.threshold" in stderr
    assert emulator.token not in stderr
    assert emulator.violations == [] and emulator.unknown_routes == []


async def test_run_with_a_refused_token_says_so_in_one_line(emulator: DiscordEmulator, postgres_dsn: str) -> None:
    process = await start_bot(emulator, postgres_dsn, "not-the-token")
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 1
    errors = [line for line in stderr.decode().splitlines() if line.startswith("sietch:")]
    assert errors == ["sietch: Discord refused DISCORD_TOKEN: check the token in the developer portal"]
    assert "Traceback" not in stderr.decode()


async def test_sigterm_answers_the_interactions_under_way_before_stopping(
    emulator: DiscordEmulator, postgres_dsn: str, pool: object, new_guild_id: int
) -> None:
    admin = CommunityWrites(pool)  # type: ignore[arg-type]
    await admin.upsert_community(Community(new_guild_id, name="Arrakis"))
    emulator.add_guild(new_guild_id)
    process = await start_bot(emulator, postgres_dsn, emulator.token)
    lock = None
    log: list[str] = []
    try:
        await emulator.wait_for_commands({"position", "threshold", "leaderboard", "backends"}, timeout=30)
        # A real lock makes the database slow: the answer is under way when the signal comes.
        lock = await psycopg.AsyncConnection.connect(postgres_dsn)
        await lock.execute("LOCK TABLE communities IN ACCESS EXCLUSIVE MODE")
        interaction = emulator.invoke("threshold", guild_id=new_guild_id, user=emulator.member(5, "Chani"))
        await until_waiting_on_a_lock(postgres_dsn)  # the bot's answer is under way
        process.send_signal(signal.SIGTERM)
        await read_log_until(process, "answering the interactions under way first", log)
        assert process.returncode is None, "the bot stopped before answering"
        await lock.rollback()
        message = await interaction.done(timeout=10)
        assert message.embeds[0]["title"] == "⛩️ The Threshold"
    finally:
        if lock is not None:
            await lock.close()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), timeout=30)
    stderr = "".join(log) + rest.decode()
    assert process.returncode == 0, stderr
    assert "answering the interactions under way first" in stderr
