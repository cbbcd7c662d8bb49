"""The flag file (`config/flags.yaml`): its model, loader, change log, rollout bucketing and watcher."""

from bot.routing.flags.bucketing import in_rollout, normalized
from bot.routing.flags.diff import describe_changes
from bot.routing.flags.errors import FlagFileError, FlagProblem
from bot.routing.flags.loader import MAX_BYTES, load_flags, parse_flags
from bot.routing.flags.model import AutoRollbackPolicy, CommandFlags, FlagFile, FrozenMapping, Stickiness, WritesMode
from bot.routing.flags.watcher import FlagWatcher

__all__ = [
    "MAX_BYTES",
    "AutoRollbackPolicy",
    "CommandFlags",
    "FlagFile",
    "FlagFileError",
    "FlagProblem",
    "FlagWatcher",
    "FrozenMapping",
    "Stickiness",
    "WritesMode",
    "describe_changes",
    "in_rollout",
    "load_flags",
    "normalized",
    "parse_flags",
]
