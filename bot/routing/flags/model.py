"""The flag file as immutable values: `FlagFile`, its per-command `CommandFlags` and `AutoRollbackPolicy`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

Stickiness = Literal["community", "user"]
WritesMode = Literal["postgres", "dual"]

DEFAULT_TIME_BUDGET_MS = 1500


class FrozenMapping[K, V](Mapping[K, V]):
    """A read-only mapping that can be hashed, so the frozen dataclasses holding one stay hashable.

    `types.MappingProxyType` would be read-only too, but hashing it raises, and a frozen dataclass
    hashes its fields.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        self._items: dict[K, V] = dict(items)

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._items == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMapping({self._items!r})"


@dataclass(frozen=True)
class CommandFlags:
    """How one command is routed. `backend` None means `default_backend` serves it (and rollout is 0)."""

    backend: str | None = None
    # Percent (0..100) of bucketed keys served by `backend`; everyone else gets `default_backend`.
    rollout: int = 0
    # What the rollout percentage sticks to: the guild (everyone in it agrees) or the user.
    stickiness: Stickiness = "community"
    # Guild id -> backend; wins over the rollout.
    guilds: Mapping[int, str] = field(default_factory=FrozenMapping[int, str])
    # On an error or timeout, answer from the other backend.
    fallback: bool = True
    # Percent (0..100) of requests also run on the other backend and compared, off the user's path.
    shadow: int = 0

    def __post_init__(self) -> None:
        # Callers (tests, the router's own defaults) may pass a dict; keep the value immutable anyway.
        if not isinstance(self.guilds, FrozenMapping):
            object.__setattr__(self, "guilds", FrozenMapping(self.guilds))


@dataclass(frozen=True)
class AutoRollbackPolicy:
    """When the router stops rolling a command out: rates over a sliding window, once there is volume."""

    error_rate: float = 0.2
    mismatch_rate: float = 0.05
    min_volume: int = 50
    window_seconds: int = 300


@dataclass(frozen=True)
class FlagFile:
    """One accepted flag file. Swapping the whole object is how a reload stays atomic for readers."""

    default_backend: str
    # None: the settings file's `writes.mode` decides.
    writes: WritesMode | None = None
    # Backends switched off everywhere; never contains `default_backend`.
    kill: tuple[str, ...] = ()
    # Per call, before falling back (milliseconds).
    time_budget_ms: int = DEFAULT_TIME_BUDGET_MS
    auto_rollback: AutoRollbackPolicy = field(default_factory=AutoRollbackPolicy)
    commands: Mapping[str, CommandFlags] = field(default_factory=FrozenMapping[str, CommandFlags])

    def __post_init__(self) -> None:
        # As in CommandFlags: a dict or list passed in is frozen, so a swapped-in FlagFile never changes.
        if not isinstance(self.commands, FrozenMapping):
            object.__setattr__(self, "commands", FrozenMapping(self.commands))
        if not isinstance(self.kill, tuple):
            object.__setattr__(self, "kill", tuple(self.kill))

    def for_command(self, name: str) -> CommandFlags:
        """The command's flags; a command the file does not list gets the defaults (served by default_backend)."""
        return self.commands.get(name, _UNLISTED)

    @classmethod
    def default(cls, backend: str) -> FlagFile:
        """Everything on `backend`: what runs when the file is unusable at start-up."""
        return cls(default_backend=backend)


_UNLISTED = CommandFlags()
