"""DiscordEmulator: a loopback Discord API (REST under /api/v10 + gateway websocket) for the real nextcord.

Point nextcord at it with `nextcord.http.Route.BASE = emulator.base_url`; everything else follows from
`GET /gateway`. Each rule it enforces follows Discord's API documentation (interactions, messages,
application commands, member roles, DMs, rate limits); the comments name the rule where the reason is not
obvious. Interaction routes live in webhooks.py, guild roles and members in guild_routes.py, DMs in
dm_routes.py.

Sharding as on Discord: with `shard_count` N, each connection IDENTIFYs as `[shard_id, N]` and receives the
events of the guilds with `(guild_id >> 22) % N == shard_id` only; each interaction records the shard
(and session) it was delivered to. Sessions, RESUME, op 7 / op 9 and IDENTIFY pacing live in sessions.py.

Limits every request meets, as Discord's (developers/topics/rate-limits.mdx; knobs are constructor
arguments and attributes of the same name, defaulting to Discord's numbers):

* global rate limit: `global_limit` (50) requests per `global_window` (1 s) per bot token, on every route
  but the interaction ones (`/interactions/...` callbacks and `/webhooks/{app}/{token}` follow-ups, which
  Discord leaves out of the global limit). Over it: 429 `global: true`; a request repeated before that
  429's retry_after is a violation.
* invalid requests: every 401, 403 and 429 answer (but 429s of scope `shared`) counts toward
  `invalid_request_limit` (10,000) per `invalid_request_window` (600 s); past it the client is banned for
  `ban_duration` (3600 s): every REST request, interaction callbacks included, gets Cloudflare's
  plain-text 429 (no `Via` header, which nextcord reads as a ban and does not retry). The ban is a
  violation. `invalid_requests` and `banned` show the state; `rate_limited` counts every 429 answered.
* the first response to an interaction must come within `response_deadline` (3 s): one that has none
  by then is a violation, whether or not a late answer follows. `fail_callbacks(...)` makes the next
  callbacks answer 5xx without applying them.
"""

from __future__ import annotations

import asyncio
import copy
import math
import secrets
from typing import Any

from aiohttp import web

from . import gateway
from .dm_routes import DirectMessageRoutes
from .guild_routes import GuildRoutes
from .models import ADMINISTRATOR, Guild, Interaction, Member, Message, role_payload, snowflake
from .options import build_options
from .ratelimit import GlobalLimit, InvalidRequests
from .rules import command_problems, form_error
from .sessions import GatewaySessions
from .webhooks import InteractionRoutes, error_response, json_response, read_body

DEFAULT_APP_ID = 1100000000000000001
DEFAULT_OWNER_ID = 1100000000000000002
MAX_GLOBAL_CHAT_INPUT = 100
BOT_AUTH_PREFIXES = ("users", "applications", "guilds", "channels")  # interactions and webhooks: token in path
API = "/api/v10"
INTERACTION_PREFIXES = (API + "/interactions/", API + "/webhooks/")  # outside the global rate limit


class DiscordEmulator(GatewaySessions, InteractionRoutes, GuildRoutes, DirectMessageRoutes):
    def __init__(
        self,
        *,
        token: str = "emulator-token",
        app_id: int = DEFAULT_APP_ID,
        response_deadline: float = 3.0,
        shard_count: int = 1,
        max_concurrency: int = 1,
        global_limit: int = 50,
        global_window: float = 1.0,
        invalid_request_limit: int = 10_000,
        invalid_request_window: float = 600.0,
        ban_duration: float = 3600.0,
        dm_open_limit: int = 10,
        dm_open_window: float = 10.0,
        dm_message_limit: int = 5,
        dm_message_window: float = 5.0,
    ) -> None:
        """`shard_count`: what GET /gateway/bot recommends and every IDENTIFY must use; each connection
        then gets the events of the guilds on its shard only. The other knobs are described in the module
        docstring, sessions.py (`max_concurrency`) and dm_routes.py (`dm_*`)."""
        self.token = token
        self.shard_count = shard_count
        self.app_id = app_id
        self.response_deadline = response_deadline  # seconds; Discord: 3
        self.token_lifetime = 15 * 60.0  # seconds; interaction tokens live 15 minutes
        self.bot_name = "Sietch"
        self.base_url = ""
        self.gateway_url = ""
        self.guilds: dict[int, Guild] = {}
        self.commands: dict[str, dict[str, Any]] = {}
        self.guild_commands: dict[int, dict[str, dict[str, Any]]] = {}
        self.interactions: dict[int, Interaction] = {}
        self.messages: dict[int, Message] = {}
        self.violations: list[str] = []
        self.unknown_routes: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.rate_limited = 0  # 429s answered, of every kind
        self._global = GlobalLimit(global_limit, global_window)
        self._invalid_log = InvalidRequests(invalid_request_limit, invalid_request_window, ban_duration)
        self.callback_failures: list[int] = []  # statuses the next interaction callbacks answer, in order
        self._deadlines: set[asyncio.TimerHandle] = set()
        self._members: dict[int, Member] = {}
        self._everywhere: set[int] = set()  # users made with member(): in every guild until they leave
        self._permission_roles: dict[int, int] = {}  # permission bits -> role id, present in every guild
        self._runner: web.AppRunner | None = None
        self._init_sessions(max_concurrency)
        self._init_guild_routes()
        self._init_dm_routes(dm_open_limit, dm_open_window, dm_message_limit, dm_message_window)

    # ---- knobs (attributes, settable after construction) -------------------------------------------

    @property
    def global_limit(self) -> int:
        return self._global.limit

    @global_limit.setter
    def global_limit(self, value: int) -> None:
        self._global.limit = value

    @property
    def global_window(self) -> float:
        return self._global.period

    @global_window.setter
    def global_window(self, value: float) -> None:
        self._global.period = value

    @property
    def invalid_request_limit(self) -> int:
        return self._invalid_log.limit

    @invalid_request_limit.setter
    def invalid_request_limit(self, value: int) -> None:
        self._invalid_log.limit = value

    @property
    def invalid_request_window(self) -> float:
        return self._invalid_log.window

    @invalid_request_window.setter
    def invalid_request_window(self, value: float) -> None:
        self._invalid_log.window = value

    @property
    def ban_duration(self) -> float:
        return self._invalid_log.ban_duration

    @ban_duration.setter
    def ban_duration(self, value: float) -> None:
        self._invalid_log.ban_duration = value

    @property
    def invalid_requests(self) -> int:
        """401, 403 and non-shared 429 answers within the last `invalid_request_window` seconds."""
        return self._invalid_log.count()

    @property
    def banned(self) -> bool:
        """Whether the (Cloudflare) ban for too many invalid requests is on now."""
        return self._invalid_log.banned()

    def fail_callbacks(self, *statuses: int) -> None:
        """The next interaction callbacks (`POST /interactions/{id}/{token}/callback`) answer these 5xx
        statuses, one each, in order, without being applied: the interaction stays unanswered unless the
        client retries in time."""
        if not all(500 <= s <= 599 for s in statuses):
            raise ValueError(f"server errors only (5xx), got {statuses}")
        self.callback_failures.extend(statuses)

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        api = "/api/v10"
        cmds = api + "/applications/{app}/commands"
        gcmds = api + "/applications/{app}/guilds/{guild}/commands"
        hook = api + "/webhooks/{app}/{token}"
        app.router.add_get("/ws", self._websocket)
        app.router.add_get(api + "/users/@me", self._get_me)
        app.router.add_get(api + "/gateway", self._get_gateway)
        app.router.add_get(api + "/gateway/bot", self._get_bot_gateway)
        for base in (cmds, gcmds):
            app.router.add_get(base, self._list_commands)
            app.router.add_post(base, self._upsert_command)
            app.router.add_get(base + "/{cmd}", self._command_route)
            app.router.add_delete(base + "/{cmd}", self._command_route)
        app.router.add_post(api + "/interactions/{iid}/{token}/callback", self._callback)
        app.router.add_post(hook, self._followup)
        for method in ("GET", "PATCH", "DELETE"):
            app.router.add_route(method, hook + "/messages/{mid}", self._message_route)
        self._add_guild_routes(app.router, api)
        self._add_dm_routes(app.router, api)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}{api}"
        self.gateway_url = f"ws://127.0.0.1:{port}/ws"

    async def stop(self) -> None:
        for handle in self._deadlines:
            handle.cancel()
        self._deadlines.clear()
        for conn in list(self._connections):
            await conn.ws.close(code=1001, message=b"emulator stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        return await gateway.serve(self, request)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if not request.path.startswith(API + "/"):  # the gateway websocket
            response: web.StreamResponse = await handler(request)
            return response
        if self._invalid_log.banned():
            return self._banned_response()
        response = await self._answer(request, handler)
        if response.status == 429:
            self.rate_limited += 1
        scope = response.headers.get("X-RateLimit-Scope")
        if InvalidRequests.counts(response.status, scope) and self._invalid_log.record():
            log = self._invalid_log
            self.violations.append(
                f"banned: more than {log.limit} invalid requests (401, 403, 429) within {log.window:g}s, the "
                f"last {request.method} {request.path} -> {response.status}; every request is refused for "
                f"{log.ban_duration:g}s"
            )
        return response

    async def _answer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        bot_route = request.path.startswith(tuple(f"{API}/{p}" for p in BOT_AUTH_PREFIXES))
        if bot_route and auth != f"Bot {self.token}":
            return error_response(401, 0, "401: Unauthorized")
        if not request.path.startswith(INTERACTION_PREFIXES):
            key = auth or f"ip {request.remote}"  # without a token Discord limits the address
            verdict = self._global.take(key, (request.method, request.path))
            if verdict is not None and verdict.early_by is not None:
                self.violations.append(
                    f"global rate limit: {request.method} {request.path} came again {verdict.early_by:.3f}s "
                    f"before the retry_after of its global 429 had passed"
                )
            if verdict is not None and verdict.retry_after is not None:
                limited = json_response(verdict.too_many(), 429)
                limited.headers.update(verdict.headers)
                return limited
        response: web.StreamResponse = await handler(request)
        return response

    def _banned_response(self) -> web.Response:
        """What Cloudflare answers a banned client: a plain-text 429 (error 1015), without Discord's `Via`."""
        remaining = math.ceil(self._invalid_log.remaining())
        return web.Response(
            status=429,
            text="error code: 1015",
            headers={"Retry-After": str(remaining), "Cache-Control": "private, max-age=0, no-store"},
        )

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unknown_routes.append(f"{request.method} {request.path}")
        return error_response(404, 0, "404: Not Found")

    # ---- bot REST routes -------------------------------------------------------------------------

    def bot_user(self) -> dict[str, Any]:
        return gateway.user_payload(self.app_id, self.bot_name)

    async def _get_me(self, request: web.Request) -> web.Response:
        return json_response(self.bot_user())

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway_url})

    def _command_store(self, request: web.Request) -> dict[str, dict[str, Any]] | None:
        if int(request.match_info["app"]) != self.app_id:
            return None
        guild = request.match_info.get("guild")
        return self.commands if guild is None else self.guild_commands.setdefault(int(guild), {})

    async def _list_commands(self, request: web.Request) -> web.Response:
        store = self._command_store(request)
        if store is None:
            return error_response(404, 10002, "Unknown Application")
        return json_response(list(store.values()))

    async def _command_route(self, request: web.Request) -> web.Response:
        store = self._command_store(request) or {}
        name = next((n for n, c in store.items() if c["id"] == request.match_info["cmd"]), None)
        if name is None:
            return error_response(404, 10063, "Unknown application command")
        if request.method == "DELETE":
            del store[name]
            return web.Response(status=204)
        return json_response(store[name])

    async def _upsert_command(self, request: web.Request) -> web.Response:
        """POST = upsert by name: 201 when new, 200 when replaced. The body is echoed unchanged plus ids."""
        store = self._command_store(request)
        if store is None:
            return error_response(404, 10002, "Unknown Application")
        body = await read_body(request)
        problems = command_problems(body)
        if problems:
            self.violations.append(f"command {body.get('name')!r} rejected: {problems}")
            return json_response(form_error(problems), 400)
        existing = store.get(body["name"])
        chat_inputs = sum(1 for c in store.values() if c.get("type", 1) == 1)
        if existing is None and body.get("type", 1) == 1 and chat_inputs >= MAX_GLOBAL_CHAT_INPUT:
            self.violations.append(f"command {body['name']!r}: more than {MAX_GLOBAL_CHAT_INPUT} commands")
            return error_response(400, 30032, "Maximum number of application commands reached")
        command = copy.deepcopy(body)
        command["id"] = existing["id"] if existing else str(snowflake())
        command["application_id"] = str(self.app_id)
        command["version"] = str(snowflake())
        if "guild" in request.match_info:
            command["guild_id"] = request.match_info["guild"]
        store[body["name"]] = command
        return json_response(command, 200 if existing else 201)

    # ---- test-facing API -------------------------------------------------------------------------

    def add_guild(self, guild_id: int, name: str = "Guild", owner_id: int = DEFAULT_OWNER_ID) -> None:
        guild = Guild(guild_id, name, owner_id, channel_id=snowflake())
        self.guilds[guild_id] = guild
        if (conn := self._connection_for(guild_id)) is not None:
            conn.send(0, gateway.guild_create_payload(self, guild), "GUILD_CREATE")

    def member(self, user_id: int, name: str, *, permissions: int = 0) -> Member:
        """A user. Non-zero permissions come from a role present in every guild, so nextcord's
        cached `permissions_for` (used by application_checks) agrees with `member.permissions`."""
        roles = []
        if permissions:
            if permissions not in self._permission_roles:
                role_id = self._permission_roles[permissions] = snowflake()
                role = role_payload(role_id, f"perms {permissions}", permissions, 1)
                for guild in self.guilds.values():
                    if (conn := self._connection_for(guild.id)) is not None:
                        conn.send(0, {"guild_id": str(guild.id), "role": role}, "GUILD_ROLE_CREATE")
            roles.append(self._permission_roles[permissions])
        member = Member(user_id, name, permissions, roles)
        self._members[user_id] = member
        self._everywhere.add(user_id)
        return member

    def shard_of(self, guild_id: int | None) -> int:
        """The shard a guild's events go to; events without a guild (DMs) go to shard 0, as on Discord."""
        return 0 if guild_id is None else (guild_id >> 22) % self.shard_count

    def guilds_of(self, shard_id: int) -> list[Guild]:
        return [g for g in self.guilds.values() if self.shard_of(g.id) == shard_id]

    async def wait_for_commands(self, names: set[str], timeout: float = 10) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not names <= self._registered_names():
            if loop.time() > deadline:
                missing = sorted(names - self._registered_names())
                raise TimeoutError(f"commands not registered after {timeout}s: {missing}")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # let the client store the ids from the last POST response

    def _registered_names(self) -> set[str]:
        names = set(self.commands)
        for store in self.guild_commands.values():
            names |= set(store)
        return names

    def invoke(
        self, name: str, *path: str, guild_id: int, user: Member, opened_to_everyone: bool = False, **options: Any
    ) -> Interaction:
        """`opened_to_everyone`: the server's admins granted the command to all members in their server
        settings, which Discord allows whatever `default_member_permissions` says."""
        guild = self._guild(guild_id)
        command = self.guild_commands.get(guild_id, {}).get(name) or self.commands.get(name)
        if command is None or command.get("type", 1) != 1:
            raise LookupError(f"/{name} is not a registered slash command; registered: {sorted(self.commands)}")
        if not opened_to_everyone and not self._may_use(command, user, guild):
            raise PermissionError(
                f"{user.name} (permissions {user.permissions}) may not use /{name} "
                f"(default_member_permissions {command.get('default_member_permissions')})"
            )
        tree, resolved = build_options(command, path, options, self._members)
        data: dict[str, Any] = {"id": command["id"], "name": name, "type": 1}
        if tree:
            data["options"] = tree
        if resolved:
            data["resolved"] = resolved
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return self._dispatch_interaction(2, " ".join((name, *path)), guild, user, data)

    def click(
        self,
        message: Message,
        custom_id: str,
        *,
        guild_id: int,
        user: Member,
        values: list[str] | None = None,
    ) -> Interaction:
        """Press a button (or pick `values` in a select menu) on a message the bot sent."""
        guild = self._guild(guild_id)
        if message.deleted or message.guild_id != guild_id:
            raise ValueError(f"message {message.id} is deleted or not in guild {guild_id}")
        if message.ephemeral and message.interaction_user_id != user.id:
            raise PermissionError("an ephemeral message is only visible to the user who invoked the command")
        component = message.find_component(custom_id)
        if component is None:
            raise LookupError(f"no component {custom_id!r} on message {message.id}")
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
        if component["type"] != 2:
            data["values"] = list(values or [])
        return self._dispatch_interaction(3, custom_id, guild, user, data, message)

    # ---- helpers -------------------------------------------------------------------------------------

    def _guild(self, guild_id: int) -> Guild:
        if guild_id not in self.guilds:
            raise LookupError(f"unknown guild {guild_id}; call add_guild first")
        return self.guilds[guild_id]

    @staticmethod
    def _may_use(command: dict[str, Any], user: Member, guild: Guild) -> bool:
        required = command.get("default_member_permissions")
        if required is None or user.permissions & ADMINISTRATOR or user.id == guild.owner_id:
            return True
        bits = int(required)
        return bits != 0 and user.permissions & bits == bits  # "0": admins only

    def _dispatch_interaction(
        self,
        kind: int,
        name: str,
        guild: Guild,
        user: Member,
        data: dict[str, Any],
        source: Message | None = None,
    ) -> Interaction:
        conn = self._connection_for(guild.id)
        if conn is None:
            shard = self.shard_of(guild.id)
            raise RuntimeError(f"no bot is connected to the emulator's gateway for shard {shard} (guild {guild.id})")
        inter = Interaction(snowflake(), secrets.token_urlsafe(48), kind, name, guild, user, self._now(), source)
        inter.shard, inter.session_id = conn.shard_id, conn.session_id
        self.interactions[inter.id] = inter
        conn.send(0, gateway.interaction_payload(self.app_id, inter, data), "INTERACTION_CREATE")
        handle = asyncio.get_running_loop().call_later(self.response_deadline, self._deadline_passed, inter)
        inter._deadline = handle
        self._deadlines.add(handle)
        return inter

    def _deadline_passed(self, inter: Interaction) -> None:
        if inter._deadline is not None:
            self._deadlines.discard(inter._deadline)
        if inter.ack_type is None and not inter.expired:
            inter.expired = True
            self._violate(
                inter,
                f"no initial response within the {self.response_deadline:g}s deadline (the user sees "
                f"'The application did not respond'); callbacks so far: {inter.callback_types}",
            )

    def _new_message(self, inter: Interaction, body: dict[str, Any], type_: int) -> Message:
        message = Message(
            snowflake(), inter.guild.channel_id, inter.guild.id, self.bot_user(), self.app_id,
            type=type_, interaction_user_id=inter.user.id,
        )  # fmt: skip
        message.apply(body, edit=False)
        message.flags = int(body.get("flags") or 0)
        self.messages[message.id] = message
        return message
