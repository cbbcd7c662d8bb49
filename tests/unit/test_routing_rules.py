"""Every routing rule, on a real Router over real flag files, breakers and latches, with a fake clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from bot.routing.breaker import CircuitBreaker, State
from bot.routing.flag_store import FlagStore
from bot.routing.flags import normalized
from bot.routing.readiness import Readiness
from bot.routing.rollback import REFRESH_SECONDS, RollbackMonitor
from bot.routing.router import COMMANDS, Router

BACKENDS = ("postgres", "scylla", "memory")
# Snowflake-sized guild and user ids, spread out so their buckets cover 1..100.
GUILDS = [100_000_000_000_000_000 + 7919 * i for i in range(2000)]
USERS = [200_000_000_000_000_000 + 104_729 * i for i in range(2000)]
GUILD = GUILDS[0]
FAILURES = 3  # the breakers open after this many failures
WINDOW = 10.0
COOL_DOWN = 5.0
# Small numbers so a handful of calls trips a latch; window_seconds cannot be below 10.
SMALL_ROLLBACK = """
auto_rollback:
  error_rate: 0.5
  mismatch_rate: 0.2
  min_volume: 4
  window_seconds: 10
"""
SCYLLA_EVERYWHERE = (
    "default_backend: postgres\ncommands:\n  position: {backend: scylla}\n  threshold: {backend: scylla}\n"
)


class Clock:
    """Seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MemoryLatches:
    """The shared latch table (a database table in production) as a dict; `saved` fires on each trip."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], str] = {}
        self.saved = asyncio.Event()

    async def all(self) -> dict[tuple[str, str], str]:
        return dict(self.rows)

    async def trip(self, command: str, backend: str, reason: str) -> None:
        self.rows.setdefault((command, backend), reason)
        self.saved.set()

    async def clear(self, command: str | None = None, backend: str | None = None) -> int:
        keys = [k for k in self.rows if command in (None, k[0]) and backend in (None, k[1])]
        for key in keys:
            del self.rows[key]
        return len(keys)

    async def wait_saved(self) -> None:
        try:
            await asyncio.wait_for(self.saved.wait(), 5)
        except TimeoutError:
            pytest.fail(f"no latch reached the latch table within 5s; table: {self.rows}")


@dataclass
class CopyReadiness:
    """Readiness stand-in: the (backend, guild) pairs whose copy is not fit to serve, and why."""

    reasons: dict[tuple[str, int], str] = field(default_factory=dict)
    asked: list[tuple[str, int]] = field(default_factory=list)

    async def check(self, backend: str, guild_id: int) -> str | None:
        self.asked.append((backend, guild_id))
        return self.reasons.get((backend, guild_id))


@dataclass
class Routing:
    path: Path
    clock: Clock
    latches: MemoryLatches
    readiness: CopyReadiness
    router: Router

    @property
    def rollback(self) -> RollbackMonitor:
        return self.router.rollback

    def breaker(self, backend: str) -> CircuitBreaker:
        return self.router.breakers[backend]

    async def set_flags(self, text: str) -> None:
        self.path.write_text(text, encoding="utf-8")
        accepted, changes = await self.router.flags.reload()
        assert accepted, changes

    async def route(
        self, guild_id: int = GUILD, user_id: int | None = None, command: str = "position"
    ) -> tuple[str, str]:
        decision = await self.router.route(command, guild_id, user_id)
        return decision.backend, decision.reason

    def open_breaker(self, backend: str) -> None:
        for _ in range(FAILURES):
            self.breaker(backend).record_failure()
        assert self.breaker(backend).state == "open"


def routing(
    tmp_path: Path,
    flags: str,
    *,
    registry: tuple[str, ...] = BACKENDS,
    reference: str | None = None,
    chance: float = 0.5,
) -> Routing:
    """A Router as the container builds it, with in-memory stand-ins only for the databases."""
    path = tmp_path / "flags.yaml"
    path.write_text(flags, encoding="utf-8")
    clock = Clock()
    store = FlagStore(path, backends=registry, commands=COMMANDS, fallback_backend=registry[0])
    assert store.last_error is None, store.last_error
    latches = MemoryLatches()
    readiness = CopyReadiness()
    breakers = {
        name: CircuitBreaker(name, failures=FAILURES, window_seconds=WINDOW, cool_down_seconds=COOL_DOWN, clock=clock)
        for name in registry
    }
    router = Router(
        registry,
        store,
        breakers,
        RollbackMonitor(latches, store.auto_rollback, clock),
        cast(Readiness, readiness),
        reference=reference,
        chance=lambda: chance,
    )
    return Routing(path, clock, latches, readiness, router)


def rollout_flags(rollout: int, stickiness: str = "community") -> str:
    return (
        "default_backend: postgres\ncommands:\n"
        f"  position: {{backend: scylla, rollout: {rollout}, stickiness: {stickiness}}}\n"
    )


def rollout_reason(rollout: int, key: int) -> tuple[bool, str]:
    """(inside, reason) as the router must say it, from the key's bucket in the `position` group."""
    bucket = normalized("position", str(key))
    inside = bucket <= rollout
    return inside, f"rollout {rollout}% bucket {bucket}" + ("" if inside else " (outside)")


# ---- rollout and stickiness ---------------------------------------------------------------------------


@pytest.mark.parametrize("rollout", [10, 25, 50, 100])
async def test_rollout_serves_its_share_of_guilds_by_their_bucket(tmp_path: Path, rollout: int) -> None:
    r = routing(tmp_path, rollout_flags(rollout))
    served = 0
    for guild in GUILDS:
        inside, reason = rollout_reason(rollout, guild)
        assert await r.route(guild) == ("scylla" if inside else "postgres", reason)
        served += inside
    assert abs(100 * served / len(GUILDS) - rollout) <= 3, f"{served} of {len(GUILDS)} guilds at {rollout}%"


async def test_raising_the_rollout_only_adds_guilds(tmp_path: Path) -> None:
    r = routing(tmp_path, rollout_flags(10))
    inside: dict[int, set[int]] = {}
    for rollout in (10, 25, 50, 100):
        await r.set_flags(rollout_flags(rollout))
        inside[rollout] = {g for g in GUILDS if (await r.route(g))[0] == "scylla"}
    assert set() < inside[10] < inside[25] < inside[50] < inside[100] == set(GUILDS)


async def test_rollout_zero_keeps_every_guild_outside(tmp_path: Path) -> None:
    r = routing(tmp_path, rollout_flags(0))
    for guild in GUILDS[:200]:
        assert await r.route(guild) == ("postgres", rollout_reason(0, guild)[1])


async def test_community_stickiness_gives_every_member_of_a_guild_the_same_backend(tmp_path: Path) -> None:
    r = routing(tmp_path, rollout_flags(25))
    seen = set()
    for guild in GUILDS[:40]:
        inside, reason = rollout_reason(25, guild)
        expected = ("scylla" if inside else "postgres", reason)
        assert {await r.route(guild, user) for user in [None, *USERS[:100]]} == {expected}
        seen.add(expected[0])
    assert seen == {"scylla", "postgres"}  # both sides of the rollout were checked


async def test_user_stickiness_decides_per_user_whatever_the_guild(tmp_path: Path) -> None:
    r = routing(tmp_path, rollout_flags(25, "user"))
    served = 0
    for user in USERS:
        inside, reason = rollout_reason(25, user)
        expected = ("scylla" if inside else "postgres", reason)
        assert await r.route(GUILDS[0], user) == expected
        assert await r.route(GUILDS[1], user) == expected
        served += inside
    assert abs(100 * served / len(USERS) - 25) <= 3, f"{served} of {len(USERS)} users at 25%"


async def test_user_stickiness_without_a_user_goes_to_the_default(tmp_path: Path) -> None:
    r = routing(tmp_path, rollout_flags(100, "user"))
    assert await r.route(GUILD, None) == ("postgres", "rollout by user without a user")


@pytest.mark.parametrize(
    "commands",
    [
        pytest.param("  position: {shadow: 0}\n", id="no-backend"),
        pytest.param("  position: {backend: memory, rollout: 100}\n", id="backend-is-the-default"),
        pytest.param("  threshold: {backend: scylla}\n", id="command-not-listed"),
    ],
)
async def test_a_command_not_rolled_out_is_served_by_the_default(tmp_path: Path, commands: str) -> None:
    r = routing(tmp_path, f"default_backend: memory\ncommands:\n{commands}")
    assert await r.route(GUILD, 7) == ("memory", "default")


# ---- guild overrides and the kill switch --------------------------------------------------------------


@pytest.mark.parametrize("stickiness", ["community", "user"])
async def test_a_guild_override_wins_over_the_rollout(tmp_path: Path, stickiness: str) -> None:
    inside = next(g for g in GUILDS if rollout_reason(50, g)[0])
    outside = next(g for g in GUILDS if not rollout_reason(50, g)[0])
    r = routing(
        tmp_path,
        "default_backend: postgres\ncommands:\n  position:\n    backend: scylla\n    rollout: 50\n"
        f'    stickiness: {stickiness}\n    guilds: {{"{inside}": postgres, "{outside}": memory}}\n',
    )
    for user in (None, *USERS[:50]):  # whoever asks, with or without a user id
        assert await r.route(inside, user) == ("postgres", "guild override")
        assert await r.route(outside, user) == ("memory", "guild override")
    assert (await r.route(GUILDS[-1], USERS[0]))[1].startswith("rollout 50% bucket ")  # others follow the rollout


async def test_a_killed_backend_is_never_chosen_and_the_default_takes_over(tmp_path: Path) -> None:
    r = routing(
        tmp_path,
        "default_backend: postgres\nkill: [scylla]\ncommands:\n"
        f'  position: {{backend: scylla, shadow: 100, guilds: {{"{GUILDS[1]}": scylla, "{GUILDS[2]}": memory}}}}\n',
        chance=0.0,
    )
    for guild in GUILDS[:300]:
        decision = await r.router.route("position", guild)
        if guild == GUILDS[2]:
            assert (decision.backend, decision.reason) == ("memory", "guild override")
            assert decision.fallbacks == ("postgres",) and decision.shadow == "postgres"
        else:
            assert (decision.backend, decision.reason) == ("postgres", "kill switch")
            assert decision.fallbacks == ("memory",) and decision.shadow == "memory"


# ---- fallbacks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("registry", "reference", "default", "chosen", "fallbacks"),
    [
        pytest.param(BACKENDS, None, "postgres", "scylla", ("postgres", "memory"), id="default-is-reference"),
        pytest.param(BACKENDS, None, "memory", "scylla", ("memory", "postgres"), id="default-before-reference"),
        pytest.param(BACKENDS, "scylla", "memory", "postgres", ("memory", "scylla"), id="named-reference-second"),
        pytest.param(("memory", "scylla", "postgres"), "postgres", "postgres", "postgres", ("memory", "scylla")),
        pytest.param(("scylla", "memory", "postgres"), "postgres", "postgres", "postgres", ("scylla", "memory")),
    ],
)
async def test_fallbacks_are_the_default_then_the_reference_then_registry_order(
    tmp_path: Path,
    registry: tuple[str, ...],
    reference: str | None,
    default: str,
    chosen: str,
    fallbacks: tuple[str, ...],
) -> None:
    r = routing(
        tmp_path,
        f'default_backend: {default}\ncommands:\n  position: {{guilds: {{"{GUILD}": {chosen}}}}}\n',
        registry=registry,
        reference=reference,
    )
    decision = await r.router.route("position", GUILD)
    assert (decision.backend, decision.reason) == (chosen, "guild override")
    assert decision.fallbacks == fallbacks and decision.fallback == fallbacks[0]


async def test_fallback_off_leaves_no_fallbacks(tmp_path: Path) -> None:
    r = routing(tmp_path, "default_backend: postgres\ncommands:\n  position: {backend: scylla, fallback: false}\n")
    decision = await r.router.route("position", GUILD)
    assert (decision.backend, decision.fallbacks, decision.fallback) == ("scylla", (), None)


async def test_the_decision_carries_the_time_budget(tmp_path: Path) -> None:
    r = routing(tmp_path, "default_backend: postgres\ntime_budget_ms: 1200\n")
    assert (await r.router.route("threshold", GUILD)).budget_seconds == pytest.approx(1.2)


# ---- shadow reads -------------------------------------------------------------------------------------

# Registry order puts memory before scylla, so "the first other backend" and "the rollout target" differ.
SHADOW_REGISTRY = ("postgres", "memory", "scylla")


@pytest.mark.parametrize(
    ("default", "position", "backend", "shadow"),
    [
        pytest.param("postgres", "{backend: scylla, shadow: 100}", "scylla", "postgres", id="other-serves"),
        # The fallbacks start with the default (memory); the shadow still compares with the reference.
        pytest.param("memory", "{backend: scylla, shadow: 100}", "scylla", "postgres", id="other-serves-default-apart"),
        pytest.param("postgres", "{backend: scylla, rollout: 0, shadow: 100}", "postgres", "scylla", id="target"),
        pytest.param("postgres", "{shadow: 100}", "postgres", "memory", id="no-target-first-other"),
        pytest.param(
            "postgres", f'{{shadow: 100, guilds: {{"{GUILD}": memory}}}}', "memory", "postgres", id="override"
        ),
    ],
)
async def test_shadow_compares_with_the_reference_or_when_it_serves_with_the_rollout_target(
    tmp_path: Path, default: str, position: str, backend: str, shadow: str
) -> None:
    r = routing(
        tmp_path,
        f"default_backend: {default}\ncommands:\n  position: {position}\n",
        registry=SHADOW_REGISTRY,
        chance=0.0,
    )
    decision = await r.router.route("position", GUILD)
    assert (decision.backend, decision.shadow) == (backend, shadow)


@pytest.mark.parametrize(
    ("chance", "share", "shadow"),
    [(0.99, 10, None), (0.05, 10, "postgres"), (0.0, 0, None), (0.99, 100, "postgres")],
)
async def test_shadow_runs_for_its_share_of_requests(
    tmp_path: Path, chance: float, share: int, shadow: str | None
) -> None:
    r = routing(
        tmp_path,
        f"default_backend: postgres\ncommands:\n  position: {{backend: scylla, shadow: {share}}}\n",
        chance=chance,
    )
    assert (await r.router.route("position", GUILD)).shadow == shadow


# ---- circuit breaker ----------------------------------------------------------------------------------


def breaker(clock: Clock, changes: list[tuple[str, State]] | None = None) -> CircuitBreaker:
    on_change = (lambda name, state: changes.append((name, state))) if changes is not None else None
    return CircuitBreaker(
        "scylla",
        failures=FAILURES,
        window_seconds=WINDOW,
        cool_down_seconds=COOL_DOWN,
        clock=clock,
        on_change=on_change,
    )


def test_breaker_opens_after_n_failures_within_the_window() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(FAILURES - 1):
        b.record_failure()
        clock.advance(1)
    assert b.state == "closed" and b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow()


def test_failures_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    b = breaker(clock)
    for step in (0.0, 5.0, 6.0):  # at the third, the first is 11 s old: out of the 10 s window
        clock.advance(step)
        b.record_failure()
    assert b.state == "closed"
    b.record_failure()  # three within the window now
    assert b.state == "open"


def test_an_open_breaker_lets_one_trial_through_after_the_cool_down() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(FAILURES):
        b.record_failure()
    clock.advance(COOL_DOWN - 0.5)
    assert b.state == "open" and not b.allow()
    clock.advance(0.5)
    assert b.state == "half_open"
    assert [b.allow(), b.allow(), b.allow()] == [True, False, False]


def test_a_successful_trial_closes_the_breaker_and_forgets_old_failures() -> None:
    clock = Clock()
    changes: list[tuple[str, State]] = []
    b = breaker(clock, changes)
    for _ in range(FAILURES):
        b.record_failure()
    clock.advance(COOL_DOWN)
    assert b.allow()
    b.record_success()
    assert b.state == "closed" and b.allow() and b.allow()
    for _ in range(FAILURES - 1):
        b.record_failure()
    assert b.state == "closed"  # a fresh count, not the failures from before it opened
    assert changes == [("scylla", "open"), ("scylla", "half_open"), ("scylla", "closed")]


def test_a_failed_trial_opens_the_breaker_for_another_cool_down() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(FAILURES):
        b.record_failure()
    clock.advance(COOL_DOWN)
    assert b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow()
    clock.advance(COOL_DOWN - 0.5)
    assert b.state == "open"
    clock.advance(0.5)
    assert b.state == "half_open" and b.allow()


@pytest.mark.parametrize(
    ("command", "broken", "backend", "fallbacks"),
    [
        ("position", "scylla", "postgres", ("scylla", "memory")),
        ("leaderboard", "postgres", "scylla", ("postgres", "memory")),
    ],
)
async def test_an_open_breaker_sends_the_command_to_the_next_backend(
    tmp_path: Path, command: str, broken: str, backend: str, fallbacks: tuple[str, ...]
) -> None:
    r = routing(tmp_path, SCYLLA_EVERYWHERE)
    r.open_breaker(broken)
    decision = await r.router.route(command, GUILD)
    assert (decision.backend, decision.reason) == (backend, "breaker open")
    # The open backend stays listed; serving skips a fallback whose breaker is open.
    assert decision.fallbacks == fallbacks


async def test_looking_does_not_use_up_the_half_open_trial(tmp_path: Path) -> None:
    r = routing(tmp_path, SCYLLA_EVERYWHERE)
    in_rollout = ("scylla", "rollout 100% bucket " + str(normalized("position", str(GUILD))))
    r.open_breaker("scylla")
    assert (await r.router.route("position", GUILD, consume_trial=False)).reason == "breaker open"
    r.clock.advance(COOL_DOWN)
    for _ in range(3):
        decision = await r.router.route("position", GUILD, consume_trial=False)
        assert (decision.backend, decision.reason) == in_rollout
    assert r.breaker("scylla").state == "half_open"
    assert await r.route() == in_rollout  # the trial call
    assert await r.route() == ("postgres", "breaker open")  # only one trial at a time
    r.breaker("scylla").record_success()
    assert await r.route() == in_rollout


# ---- auto-rollback latches ----------------------------------------------------------------------------


async def test_the_latch_trips_once_the_error_rate_passes_the_policy_over_min_volume(tmp_path: Path) -> None:
    r = routing(tmp_path, SCYLLA_EVERYWHERE + SMALL_ROLLBACK)
    for ok in (False, False, False):  # 100 % errors, but below min_volume 4
        r.rollback.record_call("position", "scylla", ok=ok)
    assert r.rollback.latched("position", "scylla") is None
    r.rollback.record_call("position", "scylla", ok=True)  # 3/4 > 0.5
    assert r.rollback.latched("position", "scylla") == "error rate 3/4 over 10s"
    await r.latches.wait_saved()
    assert r.latches.rows == {("position", "scylla"): "error rate 3/4 over 10s"}
    assert r.rollback.latched("threshold", "scylla") is None


async def test_an_error_rate_at_the_policy_does_not_trip(tmp_path: Path) -> None:
    r = routing(tmp_path, SCYLLA_EVERYWHERE + SMALL_ROLLBACK)
    for ok in (False, True, False, True, True, False):  # 2/4, 2/5, 3/6: never above 0.5
        r.rollback.record_call("position", "scylla", ok=ok)
    assert r.rollback.latches == {}


async def test_errors_older_than_the_window_do_not_count(tmp_path: Path) -> None:
    r = routing(tmp_path, SCYLLA_EVERYWHERE + SMALL_ROLLBACK)
    for _ in range(3):
        r.rollback.record_call("position", "scylla", ok=False)
    r.clock.advance(10.5)
    r.rollback.record_call("position", "scylla", ok=False)  # the only one left in the window
    assert r.rollback.latches == {}


async def test_stale_shadow_results_never_count_and_mismatches_do(tmp_path: Path) -> None:
    r = routing(tmp_path, SCYLLA_EVERYWHERE + SMALL_ROLLBACK)
    for _ in range(20):
        r.rollback.record_shadow("position", "scylla", "stale")
    for result in ("match", "match", "match"):
        r.rollback.record_shadow("position", "scylla", result)
    assert r.rollback.latches == {}
    r.rollback.record_shadow("position", "scylla", "mismatch")  # 1/4 > 0.2; 1/24 had stale counted
    assert r.rollback.latches == {("position", "scylla"): "shadow mismatch rate 1/4 over 10s"}


async def test_a_tripped_latch_reroutes_survives_a_reload_and_clear_lifts_it(tmp_path: Path) -> None:
    r = routing(tmp_path, SCYLLA_EVERYWHERE + SMALL_ROLLBACK)
    in_rollout = ("scylla", "rollout 100% bucket " + str(normalized("position", str(GUILD))))
    assert await r.route() == in_rollout
    for _ in range(4):
        r.rollback.record_call("position", "scylla", ok=False)
    await r.latches.wait_saved()
    rolled_back = ("postgres", "auto-rollback (error rate 4/4 over 10s)")
    assert await r.route() == rolled_back
    assert (await r.route(command="threshold"))[0] == "scylla"  # only the tripped command moves

    await r.set_flags(SCYLLA_EVERYWHERE + SMALL_ROLLBACK + "time_budget_ms: 900\n")
    r.clock.advance(REFRESH_SECONDS)
    assert await r.route() == rolled_back

    assert await r.rollback.clear("position", "scylla") == 1
    assert r.latches.rows == {}
    assert await r.route() == in_rollout


async def test_a_latch_outranks_a_guild_override(tmp_path: Path) -> None:
    r = routing(tmp_path, f'default_backend: postgres\ncommands:\n  position: {{guilds: {{"{GUILD}": scylla}}}}\n')
    r.latches.rows[("position", "scylla")] = "shadow mismatch rate 9/50 over 300s"
    assert await r.route() == ("postgres", "auto-rollback (shadow mismatch rate 9/50 over 300s)")


async def test_a_latch_with_nowhere_else_to_go_leaves_the_command_in_place(tmp_path: Path) -> None:
    r = routing(tmp_path, "default_backend: postgres\nkill: [scylla]\n", registry=("postgres", "scylla"))
    r.latches.rows[("position", "postgres")] = "error rate 50/50 over 300s"
    assert await r.route() == ("postgres", "default")


async def test_latches_set_and_cleared_elsewhere_are_seen_after_the_refresh_interval(tmp_path: Path) -> None:
    r = routing(tmp_path, SCYLLA_EVERYWHERE)
    in_rollout = ("scylla", "rollout 100% bucket " + str(normalized("position", str(GUILD))))
    assert await r.route() == in_rollout  # reads the (empty) table now
    r.latches.rows[("position", "scylla")] = "error rate 30/50 over 300s"  # another process trips it
    r.clock.advance(REFRESH_SECONDS - 0.5)
    assert await r.route() == in_rollout  # not re-read yet
    r.clock.advance(0.5)
    assert await r.route() == ("postgres", "auto-rollback (error rate 30/50 over 300s)")
    await r.latches.clear()  # the CLI clears it
    r.clock.advance(REFRESH_SECONDS)
    assert await r.route() == in_rollout


# ---- readiness ----------------------------------------------------------------------------------------


async def test_a_backend_not_ready_for_a_guild_is_not_chosen_for_it(tmp_path: Path) -> None:
    r = routing(tmp_path, SCYLLA_EVERYWHERE)
    r.readiness.reasons[("scylla", GUILDS[0])] = "not ready: never backfilled"
    assert await r.route(GUILDS[0]) == ("postgres", "not ready: never backfilled")
    assert (await r.route(GUILDS[1]))[0] == "scylla"  # another guild's copy is ready


async def test_readiness_is_not_asked_of_a_backend_whose_breaker_is_open(tmp_path: Path) -> None:
    r = routing(tmp_path, SCYLLA_EVERYWHERE)
    r.readiness.reasons[("scylla", GUILD)] = "not ready: backfill not finished"
    r.open_breaker("scylla")
    assert await r.route() == ("postgres", "breaker open")
    assert ("scylla", GUILD) not in r.readiness.asked


async def test_a_reroute_for_an_open_breaker_still_honours_readiness(tmp_path: Path) -> None:
    r = routing(tmp_path, "default_backend: scylla\ncommands:\n  position: {backend: scylla}\n")
    r.readiness.reasons[("memory", GUILD)] = "not ready: never backfilled"
    r.open_breaker("scylla")
    # postgres, the reference, is next; memory is never chosen for a guild it never copied
    assert await r.route() == ("postgres", "breaker open")
    r.open_breaker("postgres")
    assert (await r.route())[0] == "scylla"  # every breaker open, memory not ready: the least harmful


async def test_a_reroute_skips_a_latched_backend_and_one_that_is_not_ready(tmp_path: Path) -> None:
    r = routing(tmp_path, SCYLLA_EVERYWHERE + SMALL_ROLLBACK)
    for _ in range(4):
        r.rollback.record_call("position", "scylla", ok=False)
    await r.latches.saved.wait()
    r.open_breaker("postgres")
    r.readiness.reasons[("memory", GUILD)] = "not ready: behind (version 1 of 2)"
    backend, reason = await r.route()
    assert backend == "postgres" and reason.startswith("auto-rollback")  # an open breaker beats wrong data


async def test_may_fall_back_to_refuses_latched_not_ready_and_open_backends(tmp_path: Path) -> None:
    r = routing(tmp_path, SCYLLA_EVERYWHERE + SMALL_ROLLBACK)
    assert await r.router.may_fall_back_to("position", "memory", GUILD)
    r.readiness.reasons[("memory", GUILD)] = "not ready: never backfilled"
    assert not await r.router.may_fall_back_to("position", "memory", GUILD)
    r.open_breaker("postgres")
    assert not await r.router.may_fall_back_to("position", "postgres", GUILD)
    for _ in range(4):
        r.rollback.record_call("threshold", "scylla", ok=False)
    await r.latches.saved.wait()
    assert not await r.router.may_fall_back_to("threshold", "scylla", GUILD)
    assert await r.router.may_fall_back_to("position", "scylla", GUILD)
