"""Direct messages: opening a DM channel and posting to it, with Discord's rules.

Rules (discord-api-docs `developers/resources/user.mdx` "Create DM", `developers/resources/message.mdx`,
`developers/topics/opcodes-and-status-codes.mdx`, `developers/topics/rate-limits.mdx`):

* the DM channel of a user is the same on every call (Discord reuses it); `dm_opens[user_id]` counts the
  calls, so a test can tell a bot that reuses its channels from one that opens one per message.
* opening DMs is rate limited per bot: `dm_open_limit` (10) calls per `dm_open_window` (10 s), every
  call counted, a reopening too. Discord does not publish this number; 10 per 10 s is a conservative
  reading of the 40003 "You are opening direct messages too fast" bots get when they DM in bulk. Over it:
  429 with code 40003, `retry_after` and the route's X-RateLimit-* headers (nextcord waits them out).
* messages to a DM channel are rate limited per channel, like every channel: `dm_message_limit` (5) per
  `dm_message_window` (5 s), with X-RateLimit-* headers on every answer and a 429 past it.
* a bot may only message users who share a guild with it (else 403 50278 "Cannot send messages to this
  user due to having no mutual guilds") and have not closed their DMs (else 403 50007 "Cannot send
  messages to this user"); opening the channel still succeeds.

A request made again before the retry_after of its 429 is a violation. Messages to guild channels are not
emulated and stay in `unknown_routes`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from .models import Guild, Member, Message, snowflake
from .ratelimit import RouteLimit, Verdict
from .rules import form_error, is_empty_message, message_problems
from .webhooks import error_response, json_response, read_body


class DirectMessageRoutes:
    """Mixin for DiscordEmulator; relies on its user registry and `shares_guild` (GuildRoutes)."""

    guilds: dict[int, Guild]
    messages: dict[int, Message]
    violations: list[str]
    app_id: int
    _members: dict[int, Member]

    def bot_user(self) -> dict[str, Any]:
        raise NotImplementedError  # provided by DiscordEmulator

    def shares_guild(self, user_id: int) -> bool:
        raise NotImplementedError  # provided by GuildRoutes

    async def _unknown(self, request: web.Request) -> web.Response:
        raise NotImplementedError  # provided by DiscordEmulator

    def _init_dm_routes(self, open_limit: int, open_window: float, message_limit: int, message_window: float) -> None:
        self.dm_open_limit, self.dm_open_window = open_limit, open_window
        self.dm_message_limit, self.dm_message_window = message_limit, message_window
        self.dm_opens: Counter[int] = Counter()  # user id -> accepted POST /users/@me/channels for them
        self._dm_open_bucket = RouteLimit("POST /users/@me/channels")
        self._dm_message_bucket = RouteLimit("POST /channels/{channel_id}/messages")
        self._dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self._dm_recipients: dict[int, int] = {}  # DM channel id -> user id
        self._closed_dms: set[int] = set()
        self._dms: dict[int, list[Message]] = {}  # user id -> messages the bot sent them

    def _add_dm_routes(self, router: web.UrlDispatcher, api: str) -> None:
        router.add_post(api + "/users/@me/channels", self._open_dm)
        router.add_post(api + r"/channels/{channel:\d+}/messages", self._channel_message)

    # ---- test-facing API -------------------------------------------------------------------------

    def close_dms(self, user_id: int, closed: bool = True) -> None:
        """The user turned off DMs from server members (or blocked the bot); `closed=False` reopens."""
        if closed:
            self._closed_dms.add(user_id)
        else:
            self._closed_dms.discard(user_id)

    def dms_to(self, user_id: int) -> list[dict[str, Any]]:
        """The messages the bot sent the user, oldest first, as Discord returns them."""
        return [message.payload() for message in self._dms.get(user_id, [])]

    # ---- routes ----------------------------------------------------------------------------------

    async def _open_dm(self, request: web.Request) -> web.Response:
        """POST /users/@me/channels {"recipient_id"}: the user's DM channel, created on first use."""
        verdict = self._dm_open_bucket.take(0, self.dm_open_limit, self.dm_open_window)  # one bucket per bot
        self._early(request, verdict)
        if verdict.retry_after is not None:
            body429 = verdict.too_many(message="You are opening direct messages too fast.", code=40003)
            return self._with_headers(json_response(body429, 429), verdict)
        return self._with_headers(await self._open_dm_channel(request), verdict)

    async def _open_dm_channel(self, request: web.Request) -> web.Response:
        body = await read_body(request)
        try:
            user_id = int(body.get("recipient_id") or 0)
        except (TypeError, ValueError):
            user_id = 0
        user = self._members.get(user_id)
        if user is None:
            return error_response(404, 10013, "Unknown User")
        channel_id = self._dm_channels.get(user_id)
        if channel_id is None:
            channel_id = self._dm_channels[user_id] = snowflake()
            self._dm_recipients[channel_id] = user_id
        self.dm_opens[user_id] += 1
        last = self._dms.get(user_id)
        return json_response(
            {
                "id": str(channel_id),
                "type": 1,
                "last_message_id": str(last[-1].id) if last else None,
                "recipients": [user.user_payload()],
            }
        )

    async def _channel_message(self, request: web.Request) -> web.Response:
        """POST /channels/{channel}/messages, for DM channels only."""
        channel_id = int(request.match_info["channel"])
        user_id = self._dm_recipients.get(channel_id)
        if user_id is None:
            if any(guild.channel_id == channel_id for guild in self.guilds.values()):
                return await self._unknown(request)
            return error_response(404, 10003, "Unknown Channel")
        verdict = self._dm_message_bucket.take(channel_id, self.dm_message_limit, self.dm_message_window)
        self._early(request, verdict)
        if verdict.retry_after is not None:
            return self._with_headers(json_response(verdict.too_many(), 429), verdict)
        return self._with_headers(await self._post_dm(request, channel_id, user_id), verdict)

    async def _post_dm(self, request: web.Request, channel_id: int, user_id: int) -> web.Response:
        body = await read_body(request)
        problems = message_problems(body)
        if problems:
            self.violations.append(f"DM to {user_id} rejected: " + "; ".join(f"{p}: {m}" for p, m in problems))
            return json_response(form_error(problems), 400)
        if is_empty_message(body):
            self.violations.append(f"DM to {user_id} rejected: empty message")
            return error_response(400, 50006, "Cannot send an empty message")
        if not self.shares_guild(user_id):
            return error_response(403, 50278, "Cannot send messages to this user due to having no mutual guilds")
        if user_id in self._closed_dms:
            return error_response(403, 50007, "Cannot send messages to this user")
        message = Message(snowflake(), channel_id, None, self.bot_user(), self.app_id, via_webhook=False)
        message.apply(body, edit=False)
        message.flags = int(body.get("flags") or 0)
        self.messages[message.id] = message
        self._dms.setdefault(user_id, []).append(message)
        return json_response(message.payload())

    def _early(self, request: web.Request, verdict: Verdict) -> None:
        if verdict.early_by is not None:
            self.violations.append(
                f"rate limit: {request.method} {request.path} came {verdict.early_by:.3f}s before the "
                f"retry_after of an earlier 429 had passed"
            )

    @staticmethod
    def _with_headers(response: web.Response, verdict: Verdict) -> web.Response:
        response.headers.update(verdict.headers)
        return response
