"""The flag file watcher notices every way an admin or a deployment replaces the file, and nothing else."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.routing.flags.watcher import FlagWatcher

INTERVAL = 0.1
NOTICE_WITHIN = 5.0
QUIET = 0.6  # six polls: long enough for a spurious call to show up


class Calls:
    """Counts callbacks; async like the real reload."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1

    async def reach(self, expected: int) -> None:
        async with asyncio.timeout(NOTICE_WITHIN):
            while self.count < expected:
                await asyncio.sleep(INTERVAL / 4)


@pytest.fixture
def flags_path(tmp_path: Path) -> Path:
    path = tmp_path / "flags.yaml"
    path.write_text("default_backend: postgres\n", encoding="utf-8")
    return path


async def watching(path: Path, on_change: Callable[[], object]) -> AsyncIterator[FlagWatcher]:
    watcher = FlagWatcher(path, on_change, interval=INTERVAL)
    watcher.start()
    try:
        yield watcher
    finally:
        await watcher.stop()


@pytest.fixture
async def calls(flags_path: Path) -> AsyncIterator[Calls]:
    counter = Calls()
    async for _ in watching(flags_path, counter):
        yield counter


async def test_nothing_changes_nothing_is_called(calls: Calls) -> None:
    await asyncio.sleep(QUIET)
    assert calls.count == 0


async def test_in_place_edit_is_noticed_once(flags_path: Path, calls: Calls) -> None:
    with open(flags_path, "a", encoding="utf-8") as file:
        file.write("kill: []\n")
    await calls.reach(1)
    await asyncio.sleep(QUIET)
    assert calls.count == 1


async def test_same_size_same_mtime_edit_is_noticed_by_its_hash(flags_path: Path, calls: Calls) -> None:
    before = flags_path.stat()
    flags_path.write_text("default_backend: postgrex\n", encoding="utf-8")  # same length as before
    os.utime(flags_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert flags_path.stat().st_size == before.st_size
    await calls.reach(1)


async def test_replace_by_rename_is_noticed(flags_path: Path, calls: Calls) -> None:
    temporary = flags_path.with_name(".flags.yaml.tmp")
    temporary.write_text("default_backend: postgres\nkill: []\n", encoding="utf-8")
    os.replace(temporary, flags_path)
    await calls.reach(1)
    await asyncio.sleep(QUIET)
    assert calls.count == 1


async def test_symlink_swap_is_noticed(tmp_path: Path) -> None:
    """Like a Kubernetes ConfigMap: the path is a symlink, re-pointed atomically at a new file."""
    (tmp_path / "v1.yaml").write_text("default_backend: postgres\n", encoding="utf-8")
    (tmp_path / "v2.yaml").write_text("default_backend: postgres\nkill: []\n", encoding="utf-8")
    link = tmp_path / "flags.yaml"
    link.symlink_to("v1.yaml")
    counter = Calls()
    async for _ in watching(link, counter):
        new_link = tmp_path / ".flags.yaml.new"
        new_link.symlink_to("v2.yaml")
        os.replace(new_link, link)
        await counter.reach(1)
        await asyncio.sleep(QUIET)
        assert counter.count == 1


async def test_a_missing_file_is_waited_out_and_its_return_noticed(
    flags_path: Path, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    flags_path.unlink()
    await asyncio.sleep(QUIET)
    assert calls.count == 0
    assert "flag file missing" in caplog.text
    flags_path.write_text("default_backend: scylla\n", encoding="utf-8")
    await calls.reach(1)


async def test_a_file_missing_at_start_is_noticed_when_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "later.yaml"
    counter = Calls()
    async for _ in watching(path, counter):
        await asyncio.sleep(QUIET)
        path.write_text("default_backend: postgres\n", encoding="utf-8")
        await counter.reach(1)


async def test_a_raising_callback_is_logged_and_watching_goes_on(
    flags_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def explode() -> None:  # a plain function: sync callbacks are supported too
        seen.append(flags_path.read_text(encoding="utf-8"))
        raise RuntimeError("reload blew up")

    async for _ in watching(flags_path, explode):
        with caplog.at_level(logging.ERROR, logger="bot.routing.flags.watcher"):
            flags_path.write_text("default_backend: scylla\n", encoding="utf-8")
            async with asyncio.timeout(NOTICE_WITHIN):
                while not seen:
                    await asyncio.sleep(INTERVAL / 4)
            flags_path.write_text("default_backend: postgres\nkill: []\n", encoding="utf-8")
            async with asyncio.timeout(NOTICE_WITHIN):
                while len(seen) < 2:
                    await asyncio.sleep(INTERVAL / 4)
        assert "reload blew up" in caplog.text


async def test_check_now_calls_even_without_a_change(flags_path: Path) -> None:
    counter = Calls()
    async for watcher in watching(flags_path, counter):
        await watcher.check_now()
        assert counter.count == 1
        await asyncio.sleep(QUIET)
        assert counter.count == 1


async def test_a_change_handled_by_check_now_is_not_reported_again(flags_path: Path) -> None:
    counter = Calls()
    async for watcher in watching(flags_path, counter):
        flags_path.write_text("default_backend: scylla\n", encoding="utf-8")
        await watcher.check_now()
        await asyncio.sleep(QUIET)
        assert counter.count == 1


async def test_stop_ends_the_polling(flags_path: Path) -> None:
    counter = Calls()
    async for watcher in watching(flags_path, counter):
        await watcher.stop()
        flags_path.write_text("default_backend: scylla\n", encoding="utf-8")
        await asyncio.sleep(QUIET)
        assert counter.count == 0
