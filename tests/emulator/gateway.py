"""Gateway side of the emulator: the websocket, and the READY, GUILD_CREATE, INTERACTION_CREATE payloads."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .models import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    EVERYONE_PERMISSIONS,
    JOINED_AT,
    Guild,
    Interaction,
    role_payload,
)

if TYPE_CHECKING:
    from .server import DiscordEmulator

HELLO, HEARTBEAT, IDENTIFY, RESUME, INVALID_SESSION, HEARTBEAT_ACK = 10, 1, 2, 6, 9, 11


class Connection:
    """A connected client. Frames go through a queue so that sync code (invoke, add_guild) can dispatch."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.seq = 0
        self.session_id = secrets.token_hex(16)
        self.identified = False
        self.shard: tuple[int, int] | None = None  # [id, count] as identified; None: unsharded
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()

    @property
    def shard_id(self) -> int:
        return self.shard[0] if self.shard else 0

    def send(self, op: int, d: Any, t: str | None = None) -> None:
        frame = {"op": op, "d": d, "s": None, "t": None}  # nextcord needs the `s` key, even if null
        if op == 0:
            self.seq += 1
            frame["s"], frame["t"] = self.seq, t
        self._queue.put_nowait(json.dumps(frame))

    async def writer(self) -> None:
        while (text := await self._queue.get()) is not None:
            try:
                await self.ws.send_str(text)
            except ConnectionError:
                return


async def serve(emulator: DiscordEmulator, request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    conn = Connection(ws)
    emulator._connections.add(conn)
    writer = asyncio.create_task(conn.writer())
    conn.send(HELLO, {"heartbeat_interval": 41250})
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            if frame.get("op") == HEARTBEAT:
                conn.send(HEARTBEAT_ACK, None)
            elif frame.get("op") == IDENTIFY:
                emulator.identifies.append(frame["d"])
                if frame["d"].get("token") != emulator.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                problem = shard_problem(frame["d"].get("shard"), emulator.shard_count)
                if problem:
                    emulator.violations.append(f"IDENTIFY refused: {problem}")
                    await ws.close(code=4010, message=b"Invalid shard.")
                    break
                if "shard" in frame["d"]:
                    conn.shard = (frame["d"]["shard"][0], frame["d"]["shard"][1])
                conn.identified = True
                emulator._on_identify(conn)
            elif frame.get("op") == RESUME:  # sessions are not kept: ask for a fresh IDENTIFY
                conn.send(INVALID_SESSION, False)
    finally:
        emulator._connections.discard(conn)
        if emulator._shards.get(conn.shard_id) is conn:
            del emulator._shards[conn.shard_id]
        conn._queue.put_nowait(None)
        await asyncio.gather(writer, return_exceptions=True)
    return ws


def shard_problem(shard: Any, count: int) -> str | None:
    """Why an IDENTIFY's `shard` is refused (Discord closes with 4010 "Invalid shard"), or None.

    A missing field is shard [0, 1]. Discord takes any count from its minimum up; the emulator routes
    guilds by its own count, so a client counting otherwise is refused rather than left missing events.
    """
    if shard is None:
        shard = [0, 1]
    if not (isinstance(shard, list) and len(shard) == 2 and all(type(n) is int for n in shard)):
        return f"shard must be [shard_id, num_shards], got {shard!r}"
    shard_id, num_shards = shard
    if not 0 <= shard_id < num_shards:
        return f"shard id {shard_id} is not within 0..{num_shards - 1}"
    if num_shards != count:
        return f"shard count {num_shards} differs from the emulator's shard_count {count}"
    return None


def ready_payload(emulator: DiscordEmulator, conn: Connection) -> dict[str, Any]:
    payload = {
        "v": 10,
        "user": emulator.bot_user(),
        "guilds": [{"id": str(g.id), "unavailable": True} for g in emulator.guilds_of(conn.shard_id)],
        "session_id": conn.session_id,
        "resume_gateway_url": emulator.gateway_url,
        "application": {"id": str(emulator.app_id), "flags": 0},
        "private_channels": [],
        "relationships": [],
        "user_settings": {},
        "session_type": "normal",
    }
    if conn.shard is not None:
        payload["shard"] = list(conn.shard)
    return payload


def guild_create_payload(emulator: DiscordEmulator, guild: Guild) -> dict[str, Any]:
    roles = [role_payload(guild.id, "@everyone", EVERYONE_PERMISSIONS, 0)]
    roles += [role_payload(rid, f"perms {bits}", bits, 1) for bits, rid in emulator._permission_roles.items()]
    roles += [role.payload() for role in guild.roles.values()]
    channel = {
        "id": str(guild.channel_id),
        "type": 0,
        "name": "general",
        "position": 0,
        "permission_overwrites": [],
        "guild_id": str(guild.id),
        "parent_id": None,
        "topic": None,
        "nsfw": False,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }
    bot_member: dict[str, Any] = {
        "user": emulator.bot_user(),
        "roles": [str(r) for r in sorted(guild.bot_roles)],
        "joined_at": JOINED_AT,
        "nick": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
    }
    return {
        "id": str(guild.id),
        "name": guild.name,
        "unavailable": False,
        "owner_id": str(guild.owner_id),
        "member_count": 2,
        "large": False,
        "joined_at": JOINED_AT,
        "icon": None,
        "preferred_locale": "en-US",
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "premium_tier": 0,
        "nsfw_level": 0,
        "system_channel_id": None,
        "afk_channel_id": None,
        "roles": roles,
        "channels": [channel],
        "members": [bot_member],
        "threads": [],
        "emojis": [],
        "stickers": [],
        "features": [],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
    }


def user_payload(user_id: int, name: str) -> dict[str, Any]:
    """The bot's own user (for a modern application the bot user id is the application id)."""
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "bot": True,
        "verified": True,
        "mfa_enabled": False,
        "flags": 0,
    }


def interaction_payload(app_id: int, inter: Interaction, data: dict[str, Any]) -> dict[str, Any]:
    """INTERACTION_CREATE `d` (receiving-and-responding.mdx, "Interaction Structure")."""
    member = inter.user.payload()
    if (roles := inter.guild.members.get(inter.user.id)) is not None:
        member["roles"] = [str(r) for r in sorted(roles)]
    if inter.user.permissions & ADMINISTRATOR or inter.user.id == inter.guild.owner_id:
        member["permissions"] = str(ALL_PERMISSIONS)  # permissions.mdx: admins and the owner get ALL
    payload: dict[str, Any] = {
        "id": str(inter.id),
        "application_id": str(app_id),
        "type": inter.type,
        "data": data,
        "guild_id": str(inter.guild.id),
        "channel_id": str(inter.guild.channel_id),
        "member": member,
        "token": inter.token,
        "version": 1,
        "app_permissions": str(EVERYONE_PERMISSIONS),
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(inter.guild.id)},
        "context": 0,
    }
    if inter.source is not None:
        payload["message"] = inter.source.payload()
    return payload
