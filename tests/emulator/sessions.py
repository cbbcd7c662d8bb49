"""Gateway sessions: IDENTIFY pacing, RESUME with replay, and the Reconnect / Invalid Session opcodes.

Rules (discord-api-docs `developers/events/gateway.mdx`, "Identifying", "Resuming", "Session Start Limit"):

* `max_concurrency` (1 for all but very large bots): one IDENTIFY per 5 s per rate-limit bucket
  `shard_id % max_concurrency`. An earlier one is answered with op 9 Invalid Session (d=false) and recorded
  as a violation. `GET /gateway/bot` reports the limit in `session_start_limit`, whose `total` (1000 a day)
  counts every accepted IDENTIFY; going past it is a violation (Discord resets the bot's token).
* A session outlives its connection unless the client closes with 1000/1001 or the session is invalidated:
  dispatches meanwhile are numbered and kept, and a RESUME {token, session_id, seq} replays those after
  `seq`, then dispatches RESUMED. An unknown session, or a `seq` whose events are no longer kept, gets
  op 9 (d=false).
* `reconnect(shard)` sends op 7: the client must reconnect and RESUME. `invalidate_session(shard,
  resumable)` sends op 9: with d=false the session is gone and the client must wait a random 1-5 s before a
  fresh IDENTIFY (an IDENTIFY of that shard sooner than 1 s is a violation); with d=true it may RESUME.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from . import gateway
from .gateway import INVALID_SESSION, RECONNECT, Connection, Session
from .models import Guild
from .webhooks import json_response

IDENTIFY_INTERVAL = 5.0  # seconds between IDENTIFYs of one max_concurrency bucket
SESSION_STARTS_PER_DAY = 1000
INVALID_SESSION_WAIT = 1.0  # the least of Discord's "random 1 to 5 seconds" before re-identifying
GRACE = 0.01


class GatewaySessions:
    """Mixin for DiscordEmulator: the sessions behind the gateway connections of gateway.py."""

    token: str
    shard_count: int
    gateway_url: str
    violations: list[str]
    guilds: dict[int, Guild]

    def guilds_of(self, shard_id: int) -> list[Guild]:
        raise NotImplementedError  # provided by DiscordEmulator

    def shard_of(self, guild_id: int | None) -> int:
        raise NotImplementedError  # provided by DiscordEmulator

    def _init_sessions(self, max_concurrency: int) -> None:
        self.max_concurrency = max_concurrency  # Discord: 1 unless the bot is in very many guilds
        self.identify_interval = IDENTIFY_INTERVAL
        self.session_start_total = SESSION_STARTS_PER_DAY
        self.identifies: list[dict[str, Any]] = []  # every IDENTIFY payload received, refused ones too
        self.identified_at: list[tuple[float, int]] = []  # (event-loop time, shard) of each accepted one
        self.resumes: list[dict[str, Any]] = []  # every RESUME payload received
        self.session_starts = 0
        self._first_start: float | None = None  # wall clock, for session_start_limit.reset_after
        self._bucket_identified: dict[int, float] = {}  # max_concurrency bucket -> last accepted IDENTIFY
        self._invalidated_at: dict[int, float] = {}  # shard -> when op 9 (d=false) told it to re-identify
        self._connections: set[Connection] = set()
        self._sessions: dict[str, Session] = {}
        self._shards: dict[int, Session] = {}  # shard id -> its newest live (or resumable) session

    # ---- test-facing API -------------------------------------------------------------------------

    @property
    def connected_shards(self) -> set[int]:
        """Shards whose session has a connection now."""
        return {shard for shard, session in self._shards.items() if session.conn is not None}

    async def wait_for_shards(self, shards: set[int], timeout: float = 10) -> None:
        """Wait until each shard has an identified (or resumed) connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not shards <= self.connected_shards:
            if loop.time() > deadline:
                raise TimeoutError(f"shards not connected after {timeout}s: {sorted(shards - self.connected_shards)}")
            await asyncio.sleep(0.01)

    def session_of(self, shard_id: int = 0) -> Session:
        session = self._shards.get(shard_id)
        if session is None:
            raise LookupError(f"shard {shard_id} has no session")
        return session

    def reconnect(self, shard_id: int = 0) -> Session:
        """Send op 7 Reconnect: the client must reconnect and RESUME. Dispatches from now on wait in the
        session for the RESUME (the emulator writes nothing more to the old connection)."""
        session = self._live(shard_id, "op 7")
        conn = session.conn
        assert conn is not None
        conn.send(RECONNECT, None)
        session.conn = None
        return session

    def invalidate_session(self, shard_id: int = 0, *, resumable: bool = False) -> Session:
        """Send op 9 Invalid Session with d=`resumable`. False: the session is over, and the client must
        IDENTIFY anew after 1-5 s. True: the client may RESUME it."""
        session = self._live(shard_id, "op 9")
        conn = session.conn
        assert conn is not None
        conn.send(INVALID_SESSION, resumable)
        session.conn = None
        if not resumable:
            self._end(session)
            self._invalidated_at[shard_id] = self._loop_time()
        return session

    # ---- gateway callbacks (gateway.serve) -------------------------------------------------------

    def _on_identify(self, conn: Connection, d: dict[str, Any]) -> None:
        shard = tuple(d["shard"]) if "shard" in d else None
        shard_id = shard[0] if shard else 0
        now = self._loop_time()
        told = self._invalidated_at.pop(shard_id, None)
        if told is not None and now - told < INVALID_SESSION_WAIT - GRACE:
            self.violations.append(
                f"gateway: shard {shard_id} IDENTIFYed {now - told:.2f}s after op 9 Invalid Session "
                f"(Discord asks for a random wait of 1 to 5 s)"
            )
        bucket = shard_id % self.max_concurrency
        last = self._bucket_identified.get(bucket)
        if last is not None and now - last < self.identify_interval - GRACE:
            self.violations.append(
                f"gateway: shard {shard_id} IDENTIFYed {now - last:.2f}s after the previous IDENTIFY of its "
                f"bucket (max_concurrency {self.max_concurrency}: one per {self.identify_interval:g}s) "
                f"-> op 9 Invalid Session"
            )
            self._invalidated_at[shard_id] = now
            conn.send(INVALID_SESSION, False)
            return
        self._bucket_identified[bucket] = now
        self.session_starts += 1
        if self._first_start is None:
            self._first_start = time.time()
        if self.session_starts > self.session_start_total:
            self.violations.append(
                f"gateway: {self.session_starts} session starts, over the {self.session_start_total} a day "
                f"of session_start_limit (Discord resets the bot's token)"
            )
        session = Session(shard)
        self._sessions[session.session_id] = session
        if (old := self._shards.get(shard_id)) is not None and old.conn is None:
            self._end(old)  # a detached session of this shard is not resumed once it identifies anew
        self._attach(conn, session)
        self.identified_at.append((now, shard_id))
        session.send(0, gateway.ready_payload(self, session), "READY")  # type: ignore[arg-type]
        for guild in self.guilds_of(shard_id):
            session.send(0, gateway.guild_create_payload(self, guild), "GUILD_CREATE")  # type: ignore[arg-type]

    def _on_resume(self, conn: Connection, d: dict[str, Any]) -> None:
        session = self._sessions.get(str(d.get("session_id")))
        seq = d.get("seq")
        missed = None
        if session is not None and session.resumable and isinstance(seq, int):
            missed = session.replay_after(seq)
        if session is None or missed is None:
            conn.send(INVALID_SESSION, False)
            if session is not None:
                self._end(session)
                self._invalidated_at[session.shard_id] = self._loop_time()
            return
        self._attach(conn, session)  # an older connection still open gets nothing more
        for text in missed:
            conn.put(text)
        session.send(0, {}, "RESUMED")

    def _on_disconnect(self, conn: Connection, close_code: int | None) -> None:
        session = conn.session
        if session is None or session.conn is not conn:
            return
        session.conn = None
        if close_code in gateway.INVALIDATING_CLOSES:
            self._end(session)

    # ---- helpers ---------------------------------------------------------------------------------

    def _attach(self, conn: Connection, session: Session) -> None:
        conn.session, session.conn = session, conn
        self._shards[session.shard_id] = session

    def _end(self, session: Session) -> None:
        session.resumable = False
        self._sessions.pop(session.session_id, None)
        if self._shards.get(session.shard_id) is session:
            del self._shards[session.shard_id]

    def _live(self, shard_id: int, what: str) -> Session:
        session = self._shards.get(shard_id)
        if session is None or session.conn is None:
            raise RuntimeError(f"{what}: shard {shard_id} has no connected session")
        return session

    def _connection_for(self, guild_id: int | None) -> Session | None:
        """The session a guild's events go to: connected, or detached and resumable (events wait for the
        RESUME); None when its shard has no session."""
        return self._shards.get(self.shard_of(guild_id))

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    async def _get_bot_gateway(self, request: web.Request) -> web.Response:
        day_ms = 86_400_000
        reset_after = 0 if self._first_start is None else max(0, day_ms - int((time.time() - self._first_start) * 1000))
        limit = {
            "total": self.session_start_total,
            "remaining": max(0, self.session_start_total - self.session_starts),
            "reset_after": reset_after,
            "max_concurrency": self.max_concurrency,
        }
        return json_response({"url": self.gateway_url, "shards": self.shard_count, "session_start_limit": limit})
