"""Discord's member-role and DM routes, through nextcord's HTTP client (which waits out 429s itself,
by the Retry-After Discord gives, per route bucket). Only REST: no privileged intent is needed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nextcord
from cachetools import LRUCache

# Discord's JSON error codes a sync or an alert acts on.
UNKNOWN_MEMBER = 10007
UNKNOWN_ROLE = 10011
MISSING_PERMISSIONS = 50013
CANNOT_DM = 50007
NO_MUTUAL_GUILDS = 50278
UNKNOWN_CHANNEL = 10003
DM_CHANNELS_KEPT = 10_000


class MemberGatewayError(Exception):
    """A route refused: `code` is Discord's JSON error code (0 when there was none), `status` the HTTP one."""

    def __init__(self, status: int, code: int, text: str) -> None:
        super().__init__(f"{status} {code}: {text}")
        self.status = status
        self.code = code


class DiscordMembers:
    """Implements `bot.roles.sync.MemberGateway` on a logged-in nextcord HTTP client (the bot's own)."""

    def __init__(self, http: Callable[[], Any]) -> None:
        self._http = http  # read when used: the bot's client logs in after this is built
        # Each member's DM channel, opened once: Discord limits how fast DMs are opened.
        self._channels: LRUCache[int, int] = LRUCache(DM_CHANNELS_KEPT)

    async def add_role(self, guild_id: int, user_id: int, role_id: int, reason: str) -> None:
        await self._call(self._http().add_role, guild_id, user_id, role_id, reason=reason)

    async def remove_role(self, guild_id: int, user_id: int, role_id: int, reason: str) -> None:
        await self._call(self._http().remove_role, guild_id, user_id, role_id, reason=reason)

    async def send_dm(self, user_id: int, content: str) -> None:
        http = self._http()
        channel = self._channels.get(user_id)
        if channel is not None:
            try:
                await self._call(http.send_message, channel, content, allowed_mentions=None)
                return
            except MemberGatewayError as exc:
                if exc.code != UNKNOWN_CHANNEL:
                    raise
        opened = await self._call(http.start_private_message, user_id)
        self._channels[user_id] = int(opened["id"])
        await self._call(http.send_message, int(opened["id"]), content, allowed_mentions=None)

    @staticmethod
    async def _call(route: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await route(*args, **kwargs)
        except nextcord.HTTPException as exc:
            raise MemberGatewayError(exc.status, exc.code, exc.text) from exc
