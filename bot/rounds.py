"""Background work in rounds: a round every interval for as long as the process runs.

A round that raises anything is logged with its traceback, counted, and tried again after a backoff
that grows with the failures in a row and never passes `max_backoff` (nor overflows, however long the
outage); the round after a success comes `interval` after the previous one started. Whoever watches
(the app's /healthz) hears of each success and each failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from backends.protocol import BackendUnavailable

log = logging.getLogger(__name__)

TRACEBACK_EVERY = 100  # failures in a row past the first are logged in one line, with a traceback this often


class RoundWatch(Protocol):
    def succeeded(self, name: str) -> None: ...

    def failed(self, name: str, error: BaseException) -> None: ...


@dataclass(frozen=True)
class Rounds:
    name: str
    interval: float  # between the starts of two rounds; a round longer than that is followed at once
    max_backoff: float = 60.0
    first_at_once: bool = True  # else the first round waits one interval
    wake: asyncio.Event | None = None  # set to start the next round early (not while rounds are failing)
    # A round that may take minutes (a large board's rebuild) and is safe to leave half done is cancelled
    # when the process stops, so a shutdown keeps its bound; others finish the round they are in.
    abandon_on_stop: bool = False


def backoff(interval: float, failures: int, max_backoff: float) -> float:
    """The wait after `failures` failed rounds in a row: doubling from `interval`, at most `max_backoff`,
    with a fifth of jitter either way (processes failing together do not retry together)."""
    doubled = interval * float(2 ** min(failures, 30))  # the exponent is bounded: an int power, never an overflow
    return min(max_backoff, doubled) * random.uniform(0.8, 1.2)


async def run_rounds(
    round_: Callable[[], Awaitable[object]], rounds: Rounds, stop: asyncio.Event, watch: RoundWatch | None = None
) -> None:
    """Run `round_` in rounds until `stop` is set."""
    loop = asyncio.get_running_loop()
    failures = 0
    delay = 0.0 if rounds.first_at_once else rounds.interval
    while not stop.is_set():
        if delay > 0 and await _stopped(stop, None if failures else rounds.wake, delay):
            return
        started = loop.time()
        if rounds.wake is not None:
            rounds.wake.clear()
        try:
            if rounds.abandon_on_stop:
                if await _abandoned(round_, stop):
                    log.info("background round abandoned at stop work=%s", rounds.name)
                    return
            else:
                await round_()
        except Exception as exc:  # anything: a round that dies would stop this work for good
            failures += 1
            delay = backoff(rounds.interval, failures, rounds.max_backoff)
            # A store that is down or refused the round for contention (BackendUnavailable) says so in its
            # message; a traceback is for what nobody expected.
            detail = not isinstance(exc, BackendUnavailable) and (failures == 1 or failures % TRACEBACK_EVERY == 0)
            log.warning(
                "background round failed work=%s failures=%s retry_in=%.1fs error=%r",
                rounds.name,
                failures,
                delay,
                exc,
                exc_info=exc if detail else None,
            )
            if watch is not None:
                watch.failed(rounds.name, exc)
            continue
        if failures:
            log.info("background work recovered work=%s after_failures=%s", rounds.name, failures)
        failures = 0
        if watch is not None:
            watch.succeeded(rounds.name)
        delay = max(0.0, started + rounds.interval - loop.time())


async def _abandoned(round_: Callable[[], Awaitable[object]], stop: asyncio.Event) -> bool:
    """Run the round until it ends or `stop` is set, whichever comes first; True when it was cancelled
    for the stop. Its own error leaves as it came, and so does a cancel of the task that runs this."""
    work = asyncio.ensure_future(round_())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((work, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not work.done():
            work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work  # its error (if it ended with one) is raised here
        # The suppress above cannot tell the round's cancel from ours: a cancel of this task that lands while
        # the round winds down would otherwise be swallowed and the loop would return as if merely stopped.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
    return work.cancelled()


async def _stopped(stop: asyncio.Event, wake: asyncio.Event | None, delay: float) -> bool:
    """Wait `delay`, or less when stopped or woken; True when stopped."""
    waits = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waits.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await w
    return stop.is_set()
