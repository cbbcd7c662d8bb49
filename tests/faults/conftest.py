"""The fault suite runs the real bot the way the command tests do."""

from tests.cogs.conftest import emulator, guilds  # noqa: F401  (fixtures)
