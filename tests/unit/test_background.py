"""Background work never dies: a round that raises anything is retried with a bounded backoff, a loop
that ends with an error is started again, and /healthz hears of every success and failure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.app.background import BackgroundWork
from bot.app.health import Heartbeats
from bot.rounds import Rounds, backoff, run_rounds


class Observed:
    def __init__(self) -> None:
        self.failed: list[str] = []
        self.succeeded: list[str] = []

    def loop_failed(self, name: str) -> None:
        self.failed.append(name)

    def loop_succeeded(self, name: str, at: float) -> None:
        self.succeeded.append(name)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("failures", [1, 10, 1_024, 10_000, 10**9])
def test_the_backoff_is_bounded_however_long_the_outage(failures: int) -> None:
    wait = backoff(30.0, failures, 60.0)
    assert 0 < wait <= 60.0 * 1.2


async def test_a_round_that_raises_anything_is_retried_until_it_succeeds() -> None:
    errors: list[BaseException] = [OverflowError("x"), KeyError("y"), RuntimeError("z"), ZeroDivisionError()]
    calls = 0
    stop = asyncio.Event()

    async def round_() -> None:
        nonlocal calls
        calls += 1
        if errors:
            raise errors.pop(0)
        stop.set()

    watch = Heartbeats(["work"], Observed())
    await asyncio.wait_for(run_rounds(round_, Rounds("work", 0.001, max_backoff=0.01), stop, watch), 5)
    assert calls == 5
    healthy, loops = watch.report()
    assert healthy and loops["work"]["failures_in_a_row"] == 0 and loops["work"]["last_success"] is not None


async def test_a_thousand_failures_in_a_row_and_the_round_still_runs_and_catches_up() -> None:
    calls = 0
    stop = asyncio.Event()
    observed = Observed()

    async def round_() -> None:
        nonlocal calls
        calls += 1
        if calls <= 1_500:
            raise ConnectionError("the store is away")
        stop.set()

    await asyncio.wait_for(
        run_rounds(round_, Rounds("relay", 1e-6, max_backoff=1e-5), stop, Heartbeats(["relay"], observed)), 60
    )
    assert calls == 1_501 and observed.failed.count("relay") == 1_500 and observed.succeeded == ["relay"]


async def test_a_nudge_starts_the_next_round_early_but_not_while_failing() -> None:
    wake, stop = asyncio.Event(), asyncio.Event()
    started: list[float] = []

    async def round_() -> None:
        started.append(asyncio.get_running_loop().time())

    task = asyncio.create_task(run_rounds(round_, Rounds("relay", 60.0, wake=wake), stop))
    await asyncio.sleep(0.05)
    wake.set()
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert len(started) == 2  # the first at once, the second on the nudge, not 60 s later


async def test_a_loop_whose_run_ends_with_an_error_is_started_again() -> None:
    runs = 0

    class Flaky:
        async def run(self, stop: asyncio.Event, watch: Any = None) -> None:
            nonlocal runs
            runs += 1
            if runs < 3:
                raise RuntimeError("lost")
            watch.succeeded("role-sync")
            await stop.wait()

    observed = Observed()
    work = BackgroundWork(None, None, Flaky(), observed, drain_seconds=0)  # type: ignore[arg-type]
    work.start()
    for _ in range(200):
        if runs >= 3:
            break
        await asyncio.sleep(0.05)
    await work.stop()
    assert runs == 3 and observed.failed == ["role-sync", "role-sync"] and observed.succeeded == ["role-sync"]


def test_health_turns_bad_when_a_loop_has_not_succeeded_for_the_configured_time() -> None:
    clock = Clock()
    beats = Heartbeats(["outbox-relay", "role-sync"], Observed(), stale_after_seconds=600, clock=clock)
    assert beats.report()[0]  # just started: each loop has its time to succeed
    beats.succeeded("outbox-relay")
    beats.succeeded("role-sync")
    clock.now += 300
    beats.succeeded("role-sync")
    beats.failed("outbox-relay", ConnectionError("cql down"))
    clock.now += 301
    healthy, loops = beats.report()
    assert not healthy
    assert loops["outbox-relay"]["healthy"] is False and loops["outbox-relay"]["failures_in_a_row"] == 1
    assert loops["outbox-relay"]["last_error"] == "ConnectionError: cql down"
    assert loops["role-sync"]["healthy"] is True and loops["role-sync"]["seconds_since_success"] == 301
    beats.succeeded("outbox-relay")
    assert beats.report()[0]


@pytest.mark.parametrize("abandon", [True, False])
async def test_a_long_round_that_may_be_abandoned_is_cancelled_at_stop(abandon: bool) -> None:
    """A large board's rebuild takes minutes: stopping the process does not wait for it (the README bounds a
    shutdown at about 20 s); rounds that must finish what they started still do."""
    stop, entered = asyncio.Event(), asyncio.Event()
    cancelled: list[bool] = []
    finished: list[bool] = []

    async def long_round() -> None:
        entered.set()
        try:
            await asyncio.sleep(0.3 if not abandon else 3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        finished.append(True)

    loop = asyncio.create_task(run_rounds(long_round, Rounds("rebuild", 10.0, abandon_on_stop=abandon), stop))
    await entered.wait()
    stop.set()
    await asyncio.wait_for(loop, 5.0)
    assert (cancelled, finished) == (([True], []) if abandon else ([], [True]))


async def test_an_abandonable_round_that_fails_is_retried_as_any_other() -> None:
    stop, calls = asyncio.Event(), []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("the store went away")
        stop.set()

    await asyncio.wait_for(run_rounds(flaky, Rounds("rebuild", 0.001, 0.002, abandon_on_stop=True), stop), 5.0)
    assert len(calls) == 3


@pytest.mark.parametrize("while_", ["running", "winding-down"])
async def test_cancelling_the_loop_of_an_abandonable_round_cancels_both(while_: str) -> None:
    """The app cancels the loop's task when a shutdown overruns its bound: the loop must end cancelled too,
    not return as if it had stopped, even when the cancel lands while the round is still winding down."""
    stop, entered, winding = asyncio.Event(), asyncio.Event(), asyncio.Event()
    cancelled: list[bool] = []

    async def long_round() -> None:
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            if while_ == "winding-down":
                winding.set()
                await asyncio.sleep(3600)
            raise

    loop = asyncio.create_task(run_rounds(long_round, Rounds("rebuild", 10.0, abandon_on_stop=True), stop))
    await entered.wait()
    if while_ == "winding-down":
        stop.set()
        await winding.wait()
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loop, 5.0)
    assert loop.cancelled() and cancelled == [True]
