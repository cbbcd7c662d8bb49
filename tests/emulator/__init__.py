"""Local Discord API emulator for end-to-end tests of the real nextcord client (see server.py)."""

from .models import Interaction, Member, Message
from .server import DiscordEmulator

__all__ = ["DiscordEmulator", "Interaction", "Member", "Message"]
