"""Polls the flag file and calls back when it changes: in-place saves, rename-over saves, symlink swaps.

Polling rather than inotify because file events are lost on Docker/WSL mounts and a Kubernetes
ConfigMap update swaps a symlink, which watchers of the file itself miss; a `stat` and a hash of a
small file each second cost nothing next to that.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Whatever the handler returns is ignored (a reload may return its outcome); an awaitable is awaited.
ChangeHandler = Callable[[], Awaitable[object]] | Callable[[], object]


@dataclass(frozen=True)
class FileSignature:
    """What identifies one version of the file. The hash catches two saves inside one mtime tick."""

    mtime_ns: int
    size: int
    inode: int
    device: int
    sha256: str


def read_signature(path: Path) -> FileSignature | None:
    """The signature of the file `path` leads to now (symlinks followed), or None if it cannot be opened.

    The stat is taken on the opened descriptor so that it and the hash describe the same file even if
    the path is swapped between the two.
    """
    try:
        with open(path, "rb") as file:
            stat = os.fstat(file.fileno())
            digest = hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return None
    return FileSignature(stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_dev, digest)


class FlagWatcher:
    """Calls `on_change` (sync or async) after the file at `path` changes, polling every `interval` seconds.

    A new version is reported once it has looked the same on two polls in a row, so a save that is
    still being written is not handed over half done. A missing file (mid-swap, or deleted) is logged
    and waited out; `on_change` runs when a file is back. Calls never overlap, and an exception from
    `on_change` is logged and never stops the watching.
    """

    def __init__(self, path: Path, on_change: ChangeHandler, interval: float = 1.0) -> None:
        self.path = Path(path)
        self.interval = interval
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._seen: FileSignature | None = None  # the version the caller last heard about
        self._pending: FileSignature | None = None  # a newer version waiting one more poll to settle
        self._missing = False

    def start(self) -> None:
        """Start polling (needs a running event loop). The file as it is now counts as already seen."""
        if self._task is not None:
            raise RuntimeError("FlagWatcher already started")
        self._seen = read_signature(self.path)
        self._note_presence(self._seen)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"flag-watcher {self.path}")

    async def stop(self) -> None:
        """Stop polling and wait for the task to end; a call to `on_change` in progress is cancelled."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # wait() rather than awaiting the task: it does not re-raise the task's CancelledError,
            # and a cancellation of stop() itself still propagates.
            await asyncio.wait([task])

    async def check_now(self) -> None:
        """Call `on_change` now, changed or not (SIGHUP, `/backends reload`); errors are logged, not raised."""
        async with self._lock:
            self._seen = await asyncio.to_thread(read_signature, self.path)
            self._pending = None
            await self._call("requested")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._poll()
            except Exception:
                log.exception("flag file poll failed, retrying path=%s", self.path)

    async def _poll(self) -> None:
        current = await asyncio.to_thread(read_signature, self.path)
        self._note_presence(current)
        async with self._lock:
            if current is None or current == self._seen:
                self._pending = None
                return
            if current != self._pending:
                self._pending = current
                return
            self._seen, self._pending = current, None
            await self._call("changed")

    async def _call(self, why: str) -> None:
        log.debug("flag file %s, calling back path=%s", why, self.path)
        try:
            result = self._on_change()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("flag file change handler failed; still watching path=%s", self.path)

    def _note_presence(self, signature: FileSignature | None) -> None:
        """Log when the file goes missing and when it is back, once each rather than on every poll."""
        if signature is None and not self._missing:
            log.warning("flag file missing or unreadable; current flags stay in force path=%s", self.path)
        elif signature is not None and self._missing:
            log.info("flag file is back path=%s", self.path)
        self._missing = signature is None
