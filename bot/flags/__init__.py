"""The flag file (`config/flags.yaml`): its model, loader, change log, rollout bucketing and watcher."""

from bot.flags.bucketing import in_rollout, normalized
from bot.flags.diff import describe_changes
from bot.flags.errors import FlagFileError, FlagProblem
from bot.flags.loader import MAX_BYTES, load_flags, parse_flags
from bot.flags.model import AutoRollbackPolicy, CommandFlags, FlagFile, FrozenMapping, Stickiness, WritesMode
from bot.flags.watcher import FlagWatcher

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
