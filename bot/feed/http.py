"""The score feed's HTTP door, for indexers and webhooks.

    POST /v1/guilds/{guild}/scores
    Authorization: Bearer <the community's feed token>
    [{"member": "5678", "board": "conviction", "value": "12.5", "mode": "add", "event_type": "token_hold",
      "tx_hash": "0x..."}, ...]

Items are the file feed's objects (`bot.feed.items`); `guild` may be left out (the path names it) and must
match when given. The answer comes once the whole batch is durable in PostgreSQL, or nothing was written:

    200 {"accepted": n, "score_version": v}
    401 no token, a wrong token or an unknown guild (one answer for all three: which is not told)
    413 a body over the limit; 400 not JSON or not a list; 422 item problems, each with its index
    429 the community's request rate is spent, with Retry-After

    POST /v1/guilds/{guild}/badges
    [{"member": "5678", "action": "award", "type": "water_sharer", "reason": "..."}, ...]

Badge awards and revocations (`bot.feed.badges`) with the same token, limits, statuses and whole-or-nothing
rule, applied in order: 200 {"accepted": n, "badge_version": v}; a change that changes nothing (an award of
a held type) counts as accepted.

While a bulk write (a large `sietch scores apply`) has the community, a request that passed every check is
not kept waiting for its commit: it is held, durable before the answer, and applied whole after the bulk
write, in the order requests came (`backends.postgres.held_writes`):

    202 {"held": n, "write": id, "state": "queued", "status": "/v1/guilds/{guild}/writes/{id}"}, Location

    GET /v1/guilds/{guild}/writes/{id}
    200 {"write": id, "kind": "scores" | "badges", "items": n, "state": "queued" | "applied" | "refused",
         "score_version": v, "error": "...", "queued_at": ..., "done_at": ...}; 404 not a held write of the guild

A held request is refused then only for what changed meanwhile (a member removed, an `add` out of range):
nothing of it is written and the state says why. Outcomes are kept for a week.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from backends.protocol import BackendError, HeldWrite, InvalidInput, NotConfigured
from bot.domain import inputs
from bot.feed.apply import ItemProblem, MemberDirectory, ScoreFeed
from bot.feed.badges import BadgeFeed, parse_badge_item
from bot.feed.items import FeedItemError, loads, parse_item

log = logging.getLogger(__name__)

PROBLEMS_SHOWN = 100


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


class FeedServer:
    def __init__(
        self,
        feed: ScoreFeed,
        directory: MemberDirectory,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = 1 << 20,
        max_items: int = 5000,
        requests_per_minute: int = 600,
        idle_timeout_seconds: float = 15.0,
        read_timeout_seconds: float = 30.0,
        badges: BadgeFeed | None = None,
    ) -> None:
        """`port` 0 leaves the door closed (`start` does nothing). A connection that has not sent a whole
        request's headers within `idle_timeout_seconds` (idle between requests, or sending them slowly)
        is closed; a body not read whole within `read_timeout_seconds` is answered 408."""
        self.feed = feed
        self.badges = badges
        self.directory = directory
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.max_items = max_items
        self.requests_per_minute = requests_per_minute
        self.idle_timeout = idle_timeout_seconds
        self.read_timeout = read_timeout_seconds
        self._runner: web.AppRunner | None = None
        self._server: asyncio.base_events.Server | None = None

    def app(self) -> web.Application:
        # aiohttp refuses bodies past client_max_size itself (413) while reading them.
        app = web.Application(client_max_size=self.max_body_bytes, middlewares=[self._errors])
        app.router.add_post("/v1/guilds/{guild}/scores", self._post_scores)
        app.router.add_post("/v1/guilds/{guild}/badges", self._post_badges)
        app.router.add_get("/v1/guilds/{guild}/writes/{write}", self._get_write)
        return app

    async def start(self) -> None:
        if not self.port:
            return
        self._runner = web.AppRunner(self.app(), keepalive_timeout=self.idle_timeout)
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _watched(server(), self.idle_timeout), self.host, self.port, reuse_address=True
        )
        log.info("score feed listening host=%s port=%s", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return _answer(413, {"error": f"the body is over {self.max_body_bytes} bytes"})
        except web.HTTPException:
            raise
        except BackendError as exc:  # the database's failure, not the caller's: retry later
            log.warning("score feed could not write path=%s error=%s", request.path, exc)
            return _answer(503, {"error": "nothing could be stored now; nothing was written"}, {"Retry-After": "5"})

    async def _post_scores(self, request: web.Request) -> web.Response:
        read = await self._read_batch(request, "updates")
        return read if isinstance(read, web.Response) else await self._apply(*read)

    async def _post_badges(self, request: web.Request) -> web.Response:
        read = await self._read_batch(request, "changes")
        return read if isinstance(read, web.Response) else await self._apply_badges(*read)

    async def _get_write(self, request: web.Request) -> web.Response:
        guild = await self._admitted(request)
        if isinstance(guild, web.Response):
            return guild
        raw = request.match_info["write"]
        number = raw.isascii() and raw.isdigit() and len(raw) <= 18  # a bigint, as write ids are
        outcome = await self.feed.writer.held_outcome(guild, int(raw)) if number else None
        if outcome is None:
            return _answer(404, {"error": f"no held write {raw[:30]!r} of guild {guild}"})
        return _answer(
            200,
            {
                "write": outcome.write_id,
                "kind": outcome.kind,
                "items": outcome.items,
                "state": outcome.state,
                "score_version": outcome.score_version,
                "error": outcome.error,
                "queued_at": outcome.queued_at.isoformat(),
                "done_at": outcome.done_at and outcome.done_at.isoformat(),
            },
        )

    async def _admitted(self, request: web.Request) -> web.Response | int:
        """The request's guild, or the answer refusing it: token, then the community's request rate."""
        raw_guild = request.match_info["guild"]
        header = request.headers.get("Authorization", "")
        token = header[7:] if header[:7].lower() == "bearer " else ""
        try:
            guild = inputs.discord_id(raw_guild, "guild", "guild")
        except ValueError:
            guild = 0
        if not token or not guild or not await self.directory.token_matches(guild, token):
            return _answer(401, {"error": "unknown guild or wrong token"}, {"WWW-Authenticate": "Bearer"})
        wait = await self.directory.take_request(guild, self.requests_per_minute)
        if wait:
            retry = str(math.ceil(wait))
            return _answer(429, {"error": "too many requests", "retry_after": math.ceil(wait)}, {"Retry-After": retry})
        return guild

    async def _read_batch(self, request: web.Request, what: str) -> web.Response | tuple[int, list[Any]]:
        """The guild and the JSON list of a request, or the answer refusing it (token, rate, size, JSON)."""
        guild = await self._admitted(request)
        if isinstance(guild, web.Response):
            return guild
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return _answer(413, {"error": f"the body is over {self.max_body_bytes} bytes"})
        try:
            body = await asyncio.wait_for(request.read(), self.read_timeout)
        except TimeoutError:
            return _answer(408, {"error": f"the body did not arrive within {self.read_timeout:g} s"})
        try:
            data = loads(body)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than any update has
            return _answer(400, {"error": f"the body is not JSON: {type(exc).__name__}: {exc}"[:300]})
        if isinstance(data, dict) and set(data) == {what}:
            data = data[what]
        if not isinstance(data, list):
            return _answer(400, {"error": f'the body must be a JSON list of {what} (or {{"{what}": [...]}})'})
        if len(data) > self.max_items:
            return _answer(413, {"error": f"a batch holds at most {self.max_items} {what}, got {len(data)}"})
        return guild, data

    async def _apply_badges(self, guild: int, data: list[Any]) -> web.Response:
        if self.badges is None:
            return _answer(404, {"error": "badge changes are not taken here"})
        items, problems = [], []
        for index, raw in enumerate(data):
            try:
                items.append((index, parse_badge_item(raw)))
            except FeedItemError as exc:
                problems.append(ItemProblem(index, str(exc)))
        changes, unknown = await self.badges.resolve(guild, items)
        problems = sorted(problems + unknown, key=lambda p: p.index)
        if problems:
            return _refused(problems, "change")
        try:
            outcome = await self.badges.write_or_hold(guild, changes)
        except (InvalidInput, NotConfigured) as exc:  # a member removed since it was resolved
            return _answer(422, {"error": f"{exc}; nothing was written", "problems": []})
        if isinstance(outcome, HeldWrite):
            return _held(guild, outcome, len(changes))
        return _answer(200, {"accepted": len(changes), "badge_version": outcome.score_version})

    async def _apply(self, guild: int, data: list[Any]) -> web.Response:
        items, problems = [], []
        for index, raw in enumerate(data):
            if isinstance(raw, dict) and raw.get("guild") is None:
                raw = {**raw, "guild": str(guild)}
            try:
                items.append((index, parse_item(raw)))
            except FeedItemError as exc:
                problems.append(ItemProblem(index, str(exc)))
        updates, unknown = await self.feed.resolve(guild, items)
        problems = sorted(problems + unknown, key=lambda p: p.index)
        if problems:
            return _refused(problems)
        try:
            version = await self.feed.write_grouped(guild, updates)
        except (InvalidInput, NotConfigured) as exc:  # a member removed since it was resolved
            return _answer(422, {"error": f"{exc}; nothing was written", "problems": []})
        if isinstance(version, HeldWrite):
            return _held(guild, version, len(updates))
        return _answer(200, {"accepted": len(updates), "score_version": version})


def _watched(handler: RequestHandler, idle_timeout: float) -> RequestHandler:
    """The connection's handler, closed when it has not begun a request for `idle_timeout`: a client that
    connects and sends nothing, or its headers a byte at a time, cannot hold a connection for long."""
    loop = asyncio.get_running_loop()

    def check(seen: int) -> None:
        transport = handler.transport
        if transport is None or transport.is_closing():
            return
        # aiohttp counts the requests a connection began; one in progress has its own time limits.
        begun = handler._request_count
        if handler._request_in_progress or begun != seen:
            loop.call_later(idle_timeout, check, begun)
            return
        log.info("score feed closes an idle connection peer=%s", transport.get_extra_info("peername"))
        transport.close()

    loop.call_later(idle_timeout, check, 0)
    return handler


def _held(guild: int, held: HeldWrite, items: int) -> web.Response:
    status = f"/v1/guilds/{guild}/writes/{held.write_id}"
    body = {"held": items, "write": held.write_id, "state": "queued", "status": status}
    return _answer(202, body, {"Location": status})


def _refused(problems: list[ItemProblem], what: str = "update") -> web.Response:
    shown = [{"index": p.index, "error": p.message} for p in problems[:PROBLEMS_SHOWN]]
    return _answer(
        422,
        {"error": f"{len(problems)} {what}(s) refused; nothing was written", "count": len(problems), "problems": shown},
    )
