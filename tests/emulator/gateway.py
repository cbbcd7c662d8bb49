"""Gateway side of the emulator: the websocket, and the READY, GUILD_CREATE, INTERACTION_CREATE payloads."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import deque
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

HELLO, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HEARTBEAT_ACK = 10, 1, 2, 6, 7, 9, 11
REPLAY_LIMIT = 10_000  # dispatches a session keeps for RESUME; older ones are lost (op 9 on such a RESUME)
INVALIDATING_CLOSES = (1000, 1001)  # a client closing with these ends its session (gateway.mdx, "Resuming")


class Session:
    """A gateway session: its sequence and the dispatches sent in it, which outlive one connection.

    Detached (no connection) but resumable, it keeps numbering and storing dispatches, which a RESUME replays.
    """

    def __init__(self, shard: tuple[int, int] | None) -> None:
        self.session_id = secrets.token_hex(16)
        self.shard = shard  # [id, count] as identified; None: unsharded
        self.seq = 0
        self.conn: Connection | None = None
        self.resumable = True
        self.dispatched: deque[tuple[int, str]] = deque(maxlen=REPLAY_LIMIT)

    @property
    def shard_id(self) -> int:
        return self.shard[0] if self.shard else 0

    def send(self, op: int, d: Any, t: str | None = None) -> None:
        """Dispatch (op 0) an event in this session; other opcodes go to the connection only."""
        if op != 0:
            if self.conn is not None:
                self.conn.send(op, d)
            return
        self.seq += 1
        text = json.dumps({"op": 0, "d": d, "s": self.seq, "t": t})
        self.dispatched.append((self.seq, text))
        if self.conn is not None:
            self.conn.put(text)

    def replay_after(self, seq: int) -> list[str] | None:
        """The dispatches after `seq`, or None when some of them are no longer kept (or seq is unknown)."""
        if seq > self.seq:
            return None
        missed = [text for s, text in self.dispatched if s > seq]
        if len(missed) != self.seq - seq:
            return None
        return missed


class Connection:
    """A connected client. Frames go through a queue so that sync code (invoke, add_guild) can dispatch."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.session: Session | None = None
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()

    @property
    def identified(self) -> bool:
        return self.session is not None

    @property
    def shard_id(self) -> int:
        return self.session.shard_id if self.session else 0

    @property
    def session_id(self) -> str | None:
        return self.session.session_id if self.session else None

    def send(self, op: int, d: Any, t: str | None = None) -> None:
        if op == 0:
            assert self.session is not None, "dispatch before IDENTIFY"
            self.session.send(op, d, t)
            return
        self.put(json.dumps({"op": op, "d": d, "s": None, "t": None}))  # nextcord needs `s`, even if null

    def put(self, text: str) -> None:
        self._queue.put_nowait(text)

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
            op, d = frame.get("op"), frame.get("d")
            if op == HEARTBEAT:
                conn.send(HEARTBEAT_ACK, None)
            elif op in (IDENTIFY, RESUME) and conn.identified:
                emulator.violations.append(f"gateway: op {op} on a connection already identified")
                await ws.close(code=4005, message=b"Already authenticated.")
                break
            elif op in (IDENTIFY, RESUME) and (not isinstance(d, dict) or d.get("token") != emulator.token):
                await ws.close(code=4004, message=b"Authentication failed.")
                break
            elif op == IDENTIFY:
                assert isinstance(d, dict)
                emulator.identifies.append(d)
                problem = shard_problem(d.get("shard"), emulator.shard_count)
                if problem:
                    emulator.violations.append(f"IDENTIFY refused: {problem}")
                    await ws.close(code=4010, message=b"Invalid shard.")
                    break
                emulator._on_identify(conn, d)
            elif op == RESUME:
                assert isinstance(d, dict)
                emulator.resumes.append(d)
                emulator._on_resume(conn, d)
    finally:
        emulator._connections.discard(conn)
        emulator._on_disconnect(conn, ws.close_code)
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


def ready_payload(emulator: DiscordEmulator, session: Session) -> dict[str, Any]:
    payload = {
        "v": 10,
        "user": emulator.bot_user(),
        "guilds": [{"id": str(g.id), "unavailable": True} for g in emulator.guilds_of(session.shard_id)],
        "session_id": session.session_id,
        "resume_gateway_url": emulator.gateway_url,
        "application": {"id": str(emulator.app_id), "flags": 0},
        "private_channels": [],
        "relationships": [],
        "user_settings": {},
        "session_type": "normal",
    }
    if session.shard is not None:
        payload["shard"] = list(session.shard)
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
