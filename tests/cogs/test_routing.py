"""The flag file at work in the running bot: moves within seconds, shadow reads, auto-rollback, /backends."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from backends.protocol import ScoreUpdate, TenantContext
from bot.routing.flags import FlagWatcher
from tests.cogs.conftest import BotHarness, flags_yaml
from tests.unit.test_flag_file import GENERATED, HAND_WRITTEN

ADMIN = 32  # Manage Server


async def eventually(condition: Any, timeout: float = 5.0) -> None:
    """The bot finishes its bookkeeping (metrics, shadow reads) just after Discord has the answer."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def served_counts(h: BotHarness, command: str) -> Counter[str]:
    return Counter({b: n for (c, b, o), n in h.container.metrics().outcomes.items() if c == command and o == "ok"})


async def served_by(h: BotHarness, command: str, *path: str, user: Any, **options: Any) -> tuple[str, Any]:
    """Which backend answered one interaction (from the bot's own metrics), and the message."""
    before = served_counts(h, command)
    message = await h.call(command, *path, user=user, **options)
    for _ in range(100):  # the bot counts the answer just after Discord has it
        after = served_counts(h, command)
        changed = [b for b in after if after[b] != before.get(b, 0)]
        if changed:
            break
        await asyncio.sleep(0.01)
    assert len(changed) == 1, f"expected one backend to serve /{command}, saw {changed}: {message.embeds}"
    return changed[0], message


async def test_editing_the_flag_file_moves_a_command_within_seconds(both: BotHarness) -> None:
    await both.configure(rate_limit_per_minute=1000)
    users = await both.seed([1000 - i for i in range(80)])
    user = both.user(users[3])
    watcher = FlagWatcher(both.flags_path, both.container.flag_store().reload, interval=0.2)
    watcher.start()
    failures: list[Any] = []
    try:
        assert (await served_by(both, "threshold", user=user))[0] == "postgres"
        for how, target in (("in place", "scylla"), ("by rename", "postgres"), ("in place", "scylla")):
            text = flags_yaml("postgres", threshold={"backend": target} if target == "scylla" else {})
            if how == "by rename":
                staged = both.flags_path.with_suffix(".new")
                staged.write_text(text)
                os.replace(staged, both.flags_path)
            else:
                both.flags_path.write_text(text)
            changed_at = time.monotonic()
            while True:
                backend, message = await served_by(both, "threshold", user=user)
                if message.ephemeral or message.embeds[0]["title"] != "⛩️ The Threshold":
                    failures.append(message.embeds)
                if backend == target:
                    break
                assert time.monotonic() - changed_at < 5, f"still served by {backend} 5 s after the save ({how})"
                await asyncio.sleep(0.1)
    finally:
        await watcher.stop()
    assert failures == []


async def test_a_malformed_file_is_rejected_and_the_last_good_one_serves(both: BotHarness) -> None:
    await both.configure(rate_limit_per_minute=1000)
    users = await both.seed([10, 9, 8])
    await both.set_flags(flags_yaml("postgres", position={"backend": "scylla"}))
    store = both.container.flag_store()
    # Every broken file of the flag-file unit tests (hand-written and generated), fed to the running bot.
    bad = [case.values[0] for case in (*HAND_WRITTEN, *GENERATED)]
    assert len(bad) >= 100
    for n, text in enumerate(bad):
        both.flags_path.write_text(text)
        accepted, problems = await store.reload()
        assert not accepted and store.last_error is not None, text
        assert re.search(r"flags\.yaml:\d+: ", problems[0]), problems
        assert store.current.for_command("position").backend == "scylla"
        if n % 20 == 0:
            backend, message = await served_by(both, "position", user=both.user(users[0]))
            assert backend == "scylla" and message.embeds[0]["fields"][0]["value"] == "**#1**"


async def test_shadow_reads_count_mismatches_and_stale_snapshots(both: BotHarness, caplog: Any) -> None:
    await both.configure(rate_limit_per_minute=1000)
    users = await both.seed([500 - i for i in range(100)])
    await both.set_flags(flags_yaml("postgres", threshold={"backend": "postgres", "shadow": 100}))
    metrics = both.container.metrics()
    user = both.user(users[0])

    await both.call("threshold", user=user)
    await eventually(lambda: metrics.shadow_results[("threshold", "scylla", "match")] == 1)

    # A wrong score planted in Scylla's live snapshot: the member still gets PostgreSQL's right answer.
    scylla = both.container.scylla_backend()
    pointer = await scylla.cql.execute(
        f"SELECT version FROM {scylla.t.pointer} WHERE community_id = ? AND board = ?", (both.guild_id, "conviction")
    )
    await scylla.cql.execute(
        f"UPDATE {scylla.t.by_rank} SET score = 1 WHERE community_id = ? AND board = ? AND version = ? AND bucket = 0"
        f" AND rank = 69",
        (both.guild_id, "conviction", pointer[0].version),
    )
    await asyncio.sleep(scylla.pointer_ttl)  # rank 69 is in the head each process keeps with the pointer
    caplog.set_level(logging.WARNING, logger="bot.routing.shadow")
    interaction = both.emulator.invoke("threshold", guild_id=both.guild_id, user=user)
    message = await interaction.done()
    assert interaction.responded_at is not None and interaction.responded_at < 3
    assert "**432 BGT**" in message.embeds[0]["fields"][0]["value"]  # score(69) from PostgreSQL
    await eventually(lambda: metrics.shadow_results[("threshold", "scylla", "mismatch")] == 1)
    assert any("shadow mismatch command=threshold" in r.getMessage() for r in caplog.records)

    # New scores not in Scylla's copy yet (its relay held): stale, not a mismatch.
    await scylla.recalculate(TenantContext(both.guild_id), "conviction")
    replica = both.container.relay().replicas["scylla"]
    held, put_states = asyncio.Event(), replica.put_states

    async def copy_later(*args: Any) -> None:
        await held.wait()
        await put_states(*args)

    replica.put_states = copy_later  # type: ignore[method-assign]
    service = both.container.services()["postgres"]
    ctx = TenantContext(both.guild_id)
    profile = await service.get_profile_for_user(ctx, users[99])
    update = ScoreUpdate(profile.profile_id, "conviction", Decimal(10_000), "token_hold")
    # Acknowledged once the copy has it (no relay runs here): in PostgreSQL meanwhile.
    write = asyncio.ensure_future(service.apply_score_updates(ctx, [update]))
    try:
        for _ in range(250):
            if (await service.get_score(ctx, profile.profile_id)).conviction == 10_000:  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.02)
        await both.call("threshold", user=user)
        await eventually(lambda: metrics.shadow_results[("threshold", "scylla", "stale")] == 1)
    finally:
        held.set()
        await write

    admin = both.user(users[1], permissions=ADMIN)
    status = await both.call("backends", "status", user=admin)
    fields = {f["name"]: f["value"] for f in status.embeds[0]["fields"]}
    assert fields["Shadow reads (this process)"] == "`/threshold` vs scylla: 1 match, 1 mismatch, 1 stale"


async def test_auto_rollback_trips_survives_a_reload_and_clears_on_the_admin_command(both: BotHarness) -> None:
    await both.configure(rate_limit_per_minute=1000)
    users = await both.seed([500 - i for i in range(20)])
    text = flags_yaml("postgres", position={"backend": "scylla", "shadow": 100}).replace(
        "commands:", "auto_rollback: {mismatch_rate: 0.1, min_volume: 3, window_seconds: 60}\ncommands:"
    )
    await both.set_flags(text)
    router = both.container.router()
    scylla = both.container.scylla_backend()
    pointer = await scylla.cql.execute(
        f"SELECT version FROM {scylla.t.pointer} WHERE community_id = ? AND board = ?", (both.guild_id, "conviction")
    )
    # Scylla answers every position wrong: plant it in the members' rows, which positions are read from.
    key = (both.guild_id, "conviction", pointer[0].version)
    where = "WHERE community_id = ? AND board = ? AND version = ? AND bucket = 0"  # 20 members: one partition
    for row in await scylla.cql.execute(f"SELECT profile_id, rank FROM {scylla.t.by_profile} {where}", key):
        await scylla.cql.execute(
            f"UPDATE {scylla.t.by_profile} SET score = ? {where} AND profile_id = ?",
            (1000 + row.rank, *key, row.profile_id),
        )
    metrics = both.container.metrics()
    for i in range(4):
        await both.call("position", user=both.user(users[i + 5]))
        await eventually(lambda i=i: sum(n for (c, _, _), n in metrics.shadow_results.items() if c == "position") > i)
    decision = await router.route("position", both.guild_id, users[0])
    assert decision.backend == "postgres" and decision.reason.startswith("auto-rollback")

    await both.set_flags(text)  # the same file again: the latch holds
    assert (await router.route("position", both.guild_id, users[0])).reason.startswith("auto-rollback")

    admin = both.user(424242, "admin", permissions=ADMIN)
    status = await both.call("backends", "status", user=admin)
    assert status.ephemeral
    fields = {f["name"]: f["value"] for f in status.embeds[0]["fields"]}
    assert "auto-rollback" in fields["Commands"] and "`/position` off scylla" in fields["Auto-rollback"]

    cleared = await both.call("backends", "clear", user=admin)
    assert cleared.ephemeral and "1 latch(es) cleared" in cleared.embeds[0]["description"]
    assert (await router.route("position", both.guild_id, users[0])).backend == "scylla"


async def test_backends_is_refused_to_members_without_manage_server(both: BotHarness) -> None:
    registered = both.emulator.commands["backends"]
    assert registered["default_member_permissions"] == "32"
    with pytest.raises(PermissionError):
        both.emulator.invoke("backends", "status", guild_id=both.guild_id, user=both.user(5, "member"))


async def test_backends_reload_reports_the_change_or_the_error(both: BotHarness) -> None:
    await both.configure(rate_limit_per_minute=1000)
    admin = both.user(424242, "admin", permissions=ADMIN)
    both.flags_path.write_text(flags_yaml("postgres", leaderboard={"backend": "scylla", "rollout": 30}))
    reply = await both.call("backends", "reload", user=admin)
    assert reply.ephemeral and "commands.leaderboard" in reply.embeds[0]["description"]
    both.flags_path.write_text("default_backend: postgres\ncommands:\n  leaderboard: {rollout: 300}\n")
    reply = await both.call("backends", "reload", user=admin)
    assert reply.embeds[0]["title"] == "Error" and "flags.yaml:3" in reply.embeds[0]["description"]
    status = await both.call("backends", "status", user=admin)
    fields = {f["name"]: f["value"] for f in status.embeds[0]["fields"]}
    assert "flags.yaml:3" in fields["Last reload error"]
    assert "`/leaderboard` → **" in fields["Commands"]


async def test_a_guild_whose_copy_is_missing_or_behind_is_served_by_postgres(both: BotHarness) -> None:
    from backends.protocol import Community

    await both.set_flags(flags_yaml("postgres", position={"backend": "scylla"}))
    router = both.container.router()
    admin = await both.admin()
    await admin.upsert_community(Community(both.guild_id))  # in PostgreSQL only: never backfilled
    decision = await router.route("position", both.guild_id, 1)
    assert (decision.backend, decision.reason) == ("postgres", "not ready: never backfilled")

    await both.configure()  # backfilled now
    router.readiness.forget()
    assert (await router.route("position", both.guild_id, 1)).backend == "scylla"

    # Written to PostgreSQL with the copy switched off: Scylla falls behind and nothing will catch it up.
    users = await both.seed([5])
    await both.set_flags(
        flags_yaml("postgres", position={"backend": "scylla"}).replace(
            "default_backend: postgres", "default_backend: postgres\nwrites: postgres"
        )
    )
    service = both.container.services()["postgres"]
    profile = await service.get_profile_for_user(TenantContext(both.guild_id), users[0])
    await service.apply_score_updates(
        TenantContext(both.guild_id), [ScoreUpdate(profile.profile_id, "conviction", Decimal(9), "token_hold")]
    )
    router.readiness.forget()
    decision = await router.route("position", both.guild_id, 1)
    assert (decision.backend, decision.reason) == (
        "postgres",
        "not ready: changed outside the outbox since the last backfill",
    )


async def test_a_member_past_the_rate_limit_reaches_no_shadow_breaker_or_latch(both: BotHarness) -> None:
    """One member's spam is refused before routing: the refusals are no answers, so they are never
    compared, and the latches (here set to trip at the first mismatch) stay clear for every guild."""
    await both.configure()  # the default: 10 commands a minute
    users = await both.seed([1000 - i for i in range(80)])
    await both.set_flags(
        flags_yaml("postgres", position={"backend": "postgres", "shadow": 100}).replace(
            "commands:",
            "auto_rollback: {mismatch_rate: 0.01, error_rate: 0.01, min_volume: 5, window_seconds: 60}\ncommands:",
        )
    )
    spammer = both.user(users[3])
    answers = [await both.call("position", user=spammer) for _ in range(70)]
    shadow = both.container.shadow()
    await shadow.idle()
    refused = [a for a in answers if a.embeds[0]["description"].startswith("You are using commands too quickly")]
    assert len(refused) == 60 and all(a.ephemeral for a in refused)
    results = both.container.metrics().shadow_results
    # The ten answers are compared (a few skipped when more than `shadow.concurrency` run at once): only
    # answers, and every comparison a match.
    assert set(results) <= {("position", "scylla", "match"), ("position", "scylla", "skipped")}, results
    assert sum(results.values()) == 10 and results[("position", "scylla", "match")] >= 1, results
    router = both.container.router()
    await router.rollback.refresh(force=True)
    assert router.rollback.latches == {}
    assert {name: b.state for name, b in router.breakers.items()} == {"postgres": "closed", "scylla": "closed"}
    outcomes = both.container.metrics().outcomes
    assert outcomes[("position", "none", "rate_limited")] == 60 and outcomes[("position", "postgres", "ok")] == 10
    # Another member of the same guild is served as before.
    assert (await served_by(both, "position", user=both.user(users[5])))[0] == "postgres"
