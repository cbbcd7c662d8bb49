"""Records the Discord emulator keeps: snowflakes, guilds, roles, members, messages and interactions."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1420070400000
EPHEMERAL = 1 << 6
LOADING = 1 << 7  # set on the "Bot is thinking..." message a type 5 defer creates
ADMINISTRATOR = 1 << 3
ALL_PERMISSIONS = (1 << 53) - 1  # bits 0..52 (BYPASS_SLOWMODE is 1 << 52)
# @everyone: view channel, send messages, embed links, read history, use application commands
EVERYONE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 16) | (1 << 31)
JOINED_AT = "2024-01-01T00:00:00+00:00"

_increment = itertools.count()


def snowflake() -> int:
    """A current snowflake: ms since the Discord epoch << 22, plus a 12-bit increment."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (next(_increment) & 0xFFF)


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


def role_payload(role_id: int, name: str, permissions: int, position: int) -> dict[str, Any]:
    return {
        "id": str(role_id),
        "name": name,
        "permissions": str(permissions),
        "position": position,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "icon": None,
        "unicode_emoji": None,
        "flags": 0,
    }


@dataclass
class Role:
    id: int
    name: str
    position: int  # @everyone is 0; a member may only manage roles below its own highest one
    permissions: int = 0

    def payload(self) -> dict[str, Any]:
        return role_payload(self.id, self.name, self.permissions, self.position)


@dataclass
class Guild:
    """`roles` holds the roles made with `add_role`; @everyone (id = guild id) and the permission roles
    of `DiscordEmulator.member` exist in every guild besides. `members` maps user id -> role ids."""

    id: int
    name: str
    owner_id: int
    channel_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    bot_roles: set[int] = field(default_factory=set)
    members: dict[int, set[int]] = field(default_factory=dict)
    left: set[int] = field(default_factory=set)  # users who left: no longer members, even implicitly


@dataclass
class Member:
    """The invoking user; `permissions` is what Discord computes and sends as `member.permissions`."""

    id: int
    name: str
    permissions: int = 0
    roles: list[int] = field(default_factory=list)

    def user_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.name,
            "avatar": None,
            "public_flags": 0,
        }

    def payload(self, *, with_user: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.roles],
            "joined_at": JOINED_AT,
            "nick": None,
            "avatar": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "permissions": str(self.permissions),
        }
        if with_user:
            data["user"] = self.user_payload()
        return data


@dataclass(eq=False)
class Message:
    """A message as the channel shows it now (edits are applied in place)."""

    id: int
    channel_id: int
    guild_id: int | None
    author: dict[str, Any]
    application_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    interaction_user_id: int | None = None  # ephemeral messages are seen (and clicked) by this user only
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    deleted: bool = False
    via_webhook: bool = True  # interaction responses are posted through the interaction's webhook

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    def apply(self, body: dict[str, Any], *, edit: bool = True) -> None:
        """Apply a create/edit body. The ephemeral bit never changes after the first response."""
        if "content" in body:
            self.content = body["content"] or ""
        if "embeds" in body:
            self.embeds = list(body["embeds"] or [])
        if "components" in body:
            self.components = list(body["components"] or [])
        if "flags" in body:
            self.flags = (int(body["flags"] or 0) & ~EPHEMERAL) | (self.flags & EPHEMERAL)
        self.flags &= ~LOADING
        if edit:
            self.edited_timestamp = iso_now()

    def find_component(self, custom_id: str) -> dict[str, Any] | None:
        stack = list(self.components)
        while stack:
            comp = stack.pop()
            if comp.get("custom_id") == custom_id:
                return comp
            stack.extend(comp.get("components") or [])
            if comp.get("accessory"):
                stack.append(comp["accessory"])
        return None

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "type": self.type,
            "content": self.content,
            "embeds": self.embeds,
            "components": self.components,
            "attachments": [],
            "flags": self.flags,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "pinned": False,
            "mention_everyone": False,
            "tts": False,
            "mentions": [],
            "mention_roles": [],
            "author": self.author,
        }
        if self.via_webhook:
            data["webhook_id"] = data["application_id"] = str(self.application_id)
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        return data


@dataclass(eq=False)
class Interaction:
    """One dispatched interaction and everything the bot did with it."""

    id: int
    token: str
    type: int  # 2 application command, 3 message component
    name: str  # command name, or the clicked custom_id
    guild: Guild
    user: Member
    dispatched_at: float  # event-loop time
    source: Message | None = None  # the clicked message, for components
    shard: int | None = None  # the shard whose connection it was delivered to, and that connection's session
    session_id: str | None = None
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    callback_types: list[int] = field(default_factory=list)  # every callback attempt, accepted or not
    responded_at: float | None = None  # seconds from dispatch to the first callback attempt
    deferred: bool = False
    ack_type: int | None = None  # type of the accepted initial response
    loading: bool = False  # a type 5 defer whose loading message was not yet edited
    rejections: list[tuple[int, int]] = field(default_factory=list)  # (HTTP status, Discord code) answered
    violations: list[str] = field(default_factory=list)
    expired: bool = False  # the response deadline passed without an accepted initial response
    _deadline: asyncio.TimerHandle | None = field(default=None, repr=False)
    _visible: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def done(self, timeout: float = 5) -> Message:
        """Wait for a visible original message: type 4/7, or a type 5/6 defer followed by an edit."""
        try:
            await asyncio.wait_for(self._visible.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"interaction {self.name!r} has no visible answer after {timeout}s: "
                f"callbacks={self.callback_types} rejections={self.rejections} "
                f"violations={self.violations}"
            ) from None
        assert self.original is not None
        return self.original
