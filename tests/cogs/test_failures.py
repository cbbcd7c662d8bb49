"""What members see when things go wrong or slow: error embeds, deferred answers, rate limits."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest

from bot.domain import messages
from tests.cogs.conftest import BotHarness, flags_yaml

RED = 0xDC143C
WITHIN = 5.0  # seconds any awaited state gets before the test fails


async def until(ready: Callable[[], bool | Awaitable[bool]], what: str, within: float = WITHIN) -> None:
    """Poll `ready` until it holds; fail the test, naming `what`, once `within` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = ready()
        if await result if inspect.isawaitable(result) else result:
            return
        if loop.time() > deadline:
            pytest.fail(f"{what}: not within {within}s")
        await asyncio.sleep(0.02)


def is_error(message: Any, text: str) -> bool:
    (embed,) = message.embeds
    return bool(
        message.ephemeral and embed["title"] == "Error" and embed["color"] == RED and embed["description"] == text
    )


@pytest.mark.parametrize(
    ("command", "path"),
    [("position", ()), ("threshold", ()), ("leaderboard", ("conviction",))],
)
async def test_a_failing_backend_gets_the_error_embed_not_silence(
    harness: BotHarness, command: str, path: tuple[str, ...]
) -> None:
    await harness.configure()
    users = await harness.seed([10, 5])
    await harness.set_flags(flags_yaml(harness.backend, **{command: {"fallback": False}}))
    if harness.backend == "scylla":
        cql = harness.container.cql()
        await asyncio.to_thread(cql.session.cluster.shutdown)
    else:
        pool = harness.container.pool()
        await pool.close()
    message = await harness.call(command, *path, user=harness.user(users[0]))
    assert is_error(message, messages.FAILED[command])
    assert harness.emulator.violations == []


async def blocked_communities(dsn: str) -> psycopg.AsyncConnection[Any]:
    """Holds a lock that makes every read of the communities table wait: a slow database, for real."""
    conn = await psycopg.AsyncConnection.connect(dsn)
    await conn.execute("LOCK TABLE communities IN ACCESS EXCLUSIVE MODE")
    return conn


async def waiting_on_a_lock(dsn: str) -> bool:
    """Is some query waiting for a lock now? Asked on a connection of its own: a transaction keeps one
    snapshot of pg_stat_activity, so the lock holder's connection would keep seeing the same answer."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock')")
        row = await cur.fetchone()
    return bool(row and row[0])


POSTGRES_ONLY = pytest.mark.parametrize("harness", ["postgres"], indirect=True)


@POSTGRES_ONLY  # slowness made with a real PostgreSQL lock
async def test_a_slow_backend_is_deferred_then_answered(harness: BotHarness, postgres_dsn: str) -> None:
    await harness.configure()
    users = await harness.seed([10, 5])
    harness.container.dispatcher().defer_after = 0.2
    lock = await blocked_communities(postgres_dsn)
    interaction = harness.emulator.invoke("threshold", guild_id=harness.guild_id, user=harness.user(users[0]))
    await until(lambda: interaction.deferred, "a deferred answer while the database is locked")
    await lock.rollback()
    await lock.close()
    message = await interaction.done()
    assert interaction.deferred and interaction.callback_types == [5]
    assert not message.ephemeral and message.embeds[0]["title"] == "⛩️ The Threshold"
    assert harness.emulator.violations == []


@POSTGRES_ONLY
async def test_an_error_after_a_public_defer_is_answered_privately(harness: BotHarness, postgres_dsn: str) -> None:
    await harness.configure()
    users = await harness.seed([10, 5])
    harness.container.dispatcher().defer_after = 0.2
    lock = await blocked_communities(postgres_dsn)
    interaction = harness.emulator.invoke("threshold", guild_id=harness.guild_id, user=harness.user(users[0]))
    await until(lambda: interaction.deferred, "a public defer while the database is locked")
    await until(lambda: waiting_on_a_lock(postgres_dsn), "the bot's query waiting on the communities lock")
    # The bot's waiting query is cut off by the server: the backend fails after the public defer.
    await lock.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    await lock.rollback()
    await lock.close()
    await until(
        lambda: bool(interaction.followups) and interaction.original is not None and interaction.original.deleted,
        "a private follow-up, then the public placeholder deleted",
    )
    assert interaction.deferred
    assert interaction.original is not None and interaction.original.deleted
    (private,) = interaction.followups
    assert is_error(private, messages.FAILED["threshold"])
    assert harness.emulator.violations == []


async def test_a_member_over_the_rate_limit_is_told_when_to_retry(harness: BotHarness) -> None:
    await harness.configure(rate_limit_per_minute=2)
    users = await harness.seed([10])
    user = harness.user(users[0])
    for _ in range(2):
        assert not (await harness.call("threshold", user=user)).ephemeral
    limited = await harness.call("threshold", user=user)
    (embed,) = limited.embeds
    assert limited.ephemeral and embed["title"] == "Error"
    assert embed["description"].startswith("You are using commands too quickly. Please try again in ")
    assert not (await harness.call("threshold", user=harness.user(4242))).ephemeral  # others are not limited


async def test_no_answer_in_one_guild_shows_the_other_guilds_members(harness: BotHarness) -> None:
    other = harness.guild_id + 1
    await harness.configure()
    await harness.configure(other)
    mine = await harness.seed([100 - i for i in range(30)], first_user_id=1000)
    await harness.seed([9000 - i for i in range(30)], guild_id=other, first_user_id=2000)
    caller = harness.user(mine[0])
    seen = []
    for page in (1, 2, 3):
        message = await harness.call("leaderboard", "conviction", user=caller, page=page)
        seen.append(message.embeds[0]["description"])
    board = "\n".join(seen)
    assert board.count("member") == 30 and "K conviction" not in board  # no 9000-point member of the other guild
    threshold = (await harness.call("threshold", user=caller)).embeds[0]
    assert "Eligible: **30** members" in threshold["fields"][1]["value"]
    # A member of the other guild is a stranger here.
    stranger = await harness.call("position", user=harness.user(2000))
    assert is_error(stranger, messages.NOT_A_MEMBER)


async def test_a_flood_from_an_unconfigured_guild_is_rate_limited_before_any_lookup(harness: BotHarness) -> None:
    services = harness.container.services()
    lookups = 0

    def counting(original: Any) -> Any:
        async def counted(ctx: Any) -> Any:
            nonlocal lookups
            lookups += 1
            return await original(ctx)

        return counted

    for service in services.values():  # whichever backend the router picks for a guild nobody configured
        backend = service.backend
        backend.get_community = counting(backend.get_community)  # type: ignore[method-assign]
    answers = [await harness.call("position", user=harness.user(7)) for _ in range(15)]
    # the rate limit comes before any lookup: a guild nobody configured gets the default 10 a minute
    assert [is_error(a, messages.NOT_CONFIGURED) for a in answers[:10]] == [True] * 10
    assert all(a.embeds[0]["description"].startswith("You are using commands too quickly") for a in answers[10:])
    assert lookups == 10


@POSTGRES_ONLY
async def test_an_interaction_discord_gave_up_on_is_counted_not_raised(
    harness: BotHarness, postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A process too slow for Discord's window even to defer (finding: under overload every such command
    raised 10062 twice, the defer's task and the error reply's, and logged two tracebacks): one warning
    line, the outcome `expired`, nothing raised."""
    await harness.configure()
    users = await harness.seed([10, 5])
    harness.container.dispatcher().defer_after = 3.5  # past the window: even the defer comes too late
    caplog.set_level(logging.WARNING)
    lock = await blocked_communities(postgres_dsn)
    harness.emulator.invoke("threshold", guild_id=harness.guild_id, user=harness.user(users[0]))
    await until(lambda: waiting_on_a_lock(postgres_dsn), "the bot's query waiting on the communities lock")
    await asyncio.sleep(4.0)
    await lock.rollback()
    await lock.close()
    outcomes = harness.container.metrics().outcomes
    await until(lambda: any(o == "expired" for _, _, o in outcomes), "the command counted as expired")
    assert any("interaction expired before its answer command=threshold" in r.getMessage() for r in caplog.records)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert len(harness.emulator.violations) == 1  # the window passed unanswered: what this test makes happen
    harness.emulator.violations.clear()
