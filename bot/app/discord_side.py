"""What `sietch run` attaches once its Discord client exists: the member-role and DM routes, for the role
sync and the alerts (both built before the client)."""

from __future__ import annotations

from typing import Any

from bot.app.container import Container, resolved
from bot.discord.members import DiscordMembers


async def attach_discord(container: Container, bot: Any) -> DiscordMembers:
    members = DiscordMembers(lambda: bot.http)  # read when used: the client logs in after this
    (await resolved(container.role_sync)).gateway = members
    (await resolved(container.alert_sender)).dms = members
    return members
