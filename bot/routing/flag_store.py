"""Holds the flag file in force: loaded at start, swapped whole on a good reload, kept on a bad one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path

from bot.routing.flags import AutoRollbackPolicy, FlagFile, FlagFileError, describe_changes, load_flags

log = logging.getLogger(__name__)


class FlagStore:
    def __init__(
        self,
        path: str | Path,
        *,
        backends: Collection[str],
        commands: Collection[str],
        fallback_backend: str,
        on_reload: Callable[[bool], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.backends = tuple(backends)
        self.commands = tuple(commands)
        self._on_reload = on_reload
        self.last_error: str | None = None
        self.loaded_at: datetime | None = None
        self._lock = asyncio.Lock()
        try:
            self._current = load_flags(self.path, backends=self.backends, commands=self.commands)
            self.loaded_at = datetime.now(UTC)
        except FlagFileError as exc:
            # No good file yet: every command goes to the default backend, and that must be loud.
            self._current = FlagFile.default(fallback_backend)
            self.last_error = str(exc)
            log.error(
                "flag file rejected at start; every command goes to %s until it is fixed:\n%s", fallback_backend, exc
            )

    @property
    def current(self) -> FlagFile:
        """The configuration in force. One reference: a reader sees the old file or the new, never a mix."""
        return self._current

    def auto_rollback(self) -> AutoRollbackPolicy:
        return self._current.auto_rollback

    def writes_mode(self) -> str | None:
        """The file's `writes` mode, or None when it leaves the choice to the settings."""
        return self._current.writes

    async def reload(self) -> tuple[bool, list[str]]:
        """Re-read the file. Returns (accepted, changes) or (False, [the error])."""
        async with self._lock:
            try:
                new = await asyncio.to_thread(load_flags, self.path, backends=self.backends, commands=self.commands)
            except FlagFileError as exc:
                self.last_error = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC: {exc}"
                log.error("flag file rejected; the last good configuration stays in force:\n%s", exc)
                if self._on_reload:
                    self._on_reload(False)
                return False, [str(exc)]
            changes = describe_changes(self._current, new)
            self._current = new
            self.last_error = None
            self.loaded_at = datetime.now(UTC)
            if changes:
                log.warning("flag file changed:\n  %s", "\n  ".join(changes))
            if self._on_reload:
                self._on_reload(True)
            return True, changes
