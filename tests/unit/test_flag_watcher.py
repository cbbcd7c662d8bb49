"""The flag file watcher notices every way an admin or a deployment replaces the file, and nothing else."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.routing.flags.watcher import FlagWatcher

INTERVAL = 0.1
NOTICE_WITHIN = 5.0
# Polls to wait before saying "nothing more was called": a change is reported on its second poll.
QUIET_POLLS = 6


class Counter:
    """Counts events; a test waits for a count and fails, naming `what`, when it is not reached in time."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self._bumped = asyncio.Event()

    def bump(self) -> None:
        self.count += 1
        self._bumped.set()

    async def reach(self, expected: int) -> None:
        try:
            async with asyncio.timeout(NOTICE_WITHIN):
                while self.count < expected:
                    self._bumped.clear()
                    await self._bumped.wait()
        except TimeoutError:
            pytest.fail(f"{self.what}: {self.count} after {NOTICE_WITHIN}s, expected at least {expected}")


class Calls(Counter):
    """Counts callbacks; async like the real reload."""

    def __init__(self) -> None:
        super().__init__("calls to on_change")

    async def __call__(self) -> None:
        self.bump()


class Polls(Counter):
    """Counts the watcher's finished polls, so a test waits for polls rather than for a guessed time."""

    def __init__(self, watcher: FlagWatcher) -> None:
        super().__init__(f"finished polls of {watcher.path.name}")
        poll = watcher._poll

        async def counted() -> None:
            try:
                await poll()
            finally:
                self.bump()

        watcher._poll = counted  # type: ignore[method-assign]

    async def more(self, polls: int = QUIET_POLLS) -> None:
        """Wait until `polls` more polls have finished: time enough for a spurious call to show up."""
        await self.reach(self.count + polls)


@dataclass
class Watched:
    calls: Calls
    polls: Polls
    watcher: FlagWatcher


@pytest.fixture
def flags_path(tmp_path: Path) -> Path:
    path = tmp_path / "flags.yaml"
    path.write_text("default_backend: postgres\n", encoding="utf-8")
    return path


async def watching(path: Path, on_change: Callable[[], object]) -> AsyncIterator[tuple[FlagWatcher, Polls]]:
    watcher = FlagWatcher(path, on_change, interval=INTERVAL)
    polls = Polls(watcher)
    watcher.start()
    try:
        yield watcher, polls
    finally:
        await watcher.stop()


async def watch(path: Path) -> AsyncIterator[Watched]:
    counter = Calls()
    async for watcher, polls in watching(path, counter):
        yield Watched(counter, polls, watcher)


@pytest.fixture
async def watched(flags_path: Path) -> AsyncIterator[Watched]:
    async for w in watch(flags_path):
        yield w


async def test_nothing_changes_nothing_is_called(watched: Watched) -> None:
    await watched.polls.more()
    assert watched.calls.count == 0


async def test_in_place_edit_is_noticed_once(flags_path: Path, watched: Watched) -> None:
    with open(flags_path, "a", encoding="utf-8") as file:
        file.write("kill: []\n")
    await watched.calls.reach(1)
    await watched.polls.more()
    assert watched.calls.count == 1


async def test_same_size_same_mtime_edit_is_noticed_by_its_hash(flags_path: Path, watched: Watched) -> None:
    before = flags_path.stat()
    flags_path.write_text("default_backend: postgrex\n", encoding="utf-8")  # same length as before
    os.utime(flags_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert flags_path.stat().st_size == before.st_size
    await watched.calls.reach(1)


async def test_replace_by_rename_is_noticed(flags_path: Path, watched: Watched) -> None:
    temporary = flags_path.with_name(".flags.yaml.tmp")
    temporary.write_text("default_backend: postgres\nkill: []\n", encoding="utf-8")
    os.replace(temporary, flags_path)
    await watched.calls.reach(1)
    await watched.polls.more()
    assert watched.calls.count == 1


async def test_symlink_swap_is_noticed(tmp_path: Path) -> None:
    """Like a Kubernetes ConfigMap: the path is a symlink, re-pointed atomically at a new file."""
    (tmp_path / "v1.yaml").write_text("default_backend: postgres\n", encoding="utf-8")
    (tmp_path / "v2.yaml").write_text("default_backend: postgres\nkill: []\n", encoding="utf-8")
    link = tmp_path / "flags.yaml"
    link.symlink_to("v1.yaml")
    async for w in watch(link):
        new_link = tmp_path / ".flags.yaml.new"
        new_link.symlink_to("v2.yaml")
        os.replace(new_link, link)
        await w.calls.reach(1)
        await w.polls.more()
        assert w.calls.count == 1


async def test_a_missing_file_is_waited_out_and_its_return_noticed(
    flags_path: Path, watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    flags_path.unlink()
    await watched.polls.more()
    assert watched.calls.count == 0
    assert "flag file missing" in caplog.text
    flags_path.write_text("default_backend: scylla\n", encoding="utf-8")
    await watched.calls.reach(1)


async def test_a_file_missing_at_start_is_noticed_when_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "later.yaml"
    async for w in watch(path):
        await w.polls.more()  # a few polls that find no file
        path.write_text("default_backend: postgres\n", encoding="utf-8")
        await w.calls.reach(1)


async def test_a_raising_callback_is_logged_and_watching_goes_on(
    flags_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    called = Counter("calls to the raising on_change")

    def explode() -> None:  # a plain function: sync callbacks are supported too
        seen.append(flags_path.read_text(encoding="utf-8"))
        called.bump()
        raise RuntimeError("reload blew up")

    async for _ in watching(flags_path, explode):
        with caplog.at_level(logging.ERROR, logger="bot.routing.flags.watcher"):
            flags_path.write_text("default_backend: scylla\n", encoding="utf-8")
            await called.reach(1)
            flags_path.write_text("default_backend: postgres\nkill: []\n", encoding="utf-8")
            await called.reach(2)
        assert seen == ["default_backend: scylla\n", "default_backend: postgres\nkill: []\n"]
        assert "reload blew up" in caplog.text


async def test_check_now_calls_even_without_a_change(watched: Watched) -> None:
    await watched.watcher.check_now()
    assert watched.calls.count == 1
    await watched.polls.more()
    assert watched.calls.count == 1


async def test_a_change_handled_by_check_now_is_not_reported_again(flags_path: Path, watched: Watched) -> None:
    flags_path.write_text("default_backend: scylla\n", encoding="utf-8")
    await watched.watcher.check_now()
    await watched.polls.more()
    assert watched.calls.count == 1


async def test_stop_ends_the_polling(flags_path: Path, watched: Watched) -> None:
    await watched.watcher.stop()
    polled = watched.polls.count
    # A second watcher on the same file is the clock: once it has noticed the change and polled on,
    # a watcher still polling would have called too.
    async for control in watch(flags_path):
        flags_path.write_text("default_backend: scylla\n", encoding="utf-8")
        await control.calls.reach(1)
        await control.polls.more()
    assert (watched.calls.count, watched.polls.count) == (0, polled)
