"""The fault suite runs the real bot the way the command tests do."""

from tests.cogs.conftest import both, emulator, guilds, harness  # noqa: F401  (fixtures)
