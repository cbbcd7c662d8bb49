"""Guild REST routes: roles, members and member-role changes, with Discord's rules.

Rules (discord-api-docs `developers/resources/guild.mdx`, `developers/topics/permissions.mdx`): adding or
removing a member's role answers 204 whether or not the member held it, and takes an `X-Audit-Log-Reason`
(URL-encoded); a bot may only manage roles below its own highest role (it is assumed to have Manage
Roles), else 403 50013. The member-role route is rate limited per guild (its major parameter) when
`role_route_limit` is set.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal
from urllib.parse import unquote

from aiohttp import web

from . import gateway
from .models import EVERYONE_PERMISSIONS, Guild, Member, Role, snowflake
from .ratelimit import RouteLimit
from .webhooks import error_response, json_response

MEMBER_ROLE_ROUTE = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"
RoleChange = tuple[int, int, int, Literal["add", "remove"], str | None]  # guild, user, role, action, reason


class GuildRoutes:
    """Mixin for DiscordEmulator; relies on its guild and user registries."""

    guilds: dict[int, Guild]
    violations: list[str]
    app_id: int
    _members: dict[int, Member]
    _permission_roles: dict[int, int]
    _everywhere: set[int]

    def _guild(self, guild_id: int) -> Guild:
        raise NotImplementedError  # provided by DiscordEmulator

    def _connection_for(self, guild_id: int | None) -> gateway.Session | None:
        raise NotImplementedError  # provided by DiscordEmulator

    def bot_user(self) -> dict[str, Any]:
        raise NotImplementedError  # provided by DiscordEmulator

    def _init_guild_routes(self) -> None:
        self.role_route_limit: int | None = None  # requests per window and guild; None: unlimited
        self.role_route_window = 1.0  # seconds
        self.role_changes: list[RoleChange] = []  # effective changes only, in order
        self._role_limit = RouteLimit("PUT/DELETE " + MEMBER_ROLE_ROUTE)

    def _add_guild_routes(self, router: web.UrlDispatcher, api: str) -> None:
        guild = api + r"/guilds/{guild:\d+}"
        member = guild + r"/members/{user:\d+}"
        router.add_route("PUT", member + r"/roles/{role:\d+}", self._member_role)
        router.add_route("DELETE", member + r"/roles/{role:\d+}", self._member_role)
        router.add_get(member, self._get_member)
        router.add_get(guild + "/roles", self._list_roles)

    # ---- test-facing API -------------------------------------------------------------------------

    def add_role(self, guild_id: int, name: str, position: int, *, permissions: int = 0) -> int:
        """A new role in the guild; returns its id. Position 0 is @everyone's, so roles start at 1."""
        guild = self._guild(guild_id)
        if position < 1:
            raise ValueError(f"role position must be >= 1 (0 is @everyone), got {position}")
        role = Role(snowflake(), name, position, permissions)
        guild.roles[role.id] = role
        if (conn := self._connection_for(guild_id)) is not None:
            conn.send(0, {"guild_id": str(guild_id), "role": role.payload()}, "GUILD_ROLE_CREATE")
        return role.id

    def give_bot_role(self, guild_id: int, role_id: int) -> None:
        """The bot's highest role decides which roles it may manage. Call before the bot connects for
        the bot's cached `guild.me` to show it (no GUILD_MEMBER_UPDATE is dispatched)."""
        guild = self._guild(guild_id)
        self._require_role(guild, role_id)
        guild.bot_roles.add(role_id)

    def add_member(self, guild_id: int, user_id: int, roles: Iterable[int] = (), *, name: str | None = None) -> Member:
        """Make `user_id` a member of the guild holding `roles` (on top of any permission role `member()`
        gave it); creates the user if the emulator does not know it yet. Returns the user."""
        guild = self._guild(guild_id)
        role_ids = set(roles)
        for role_id in role_ids:
            self._require_role(guild, role_id)
        user = self._members.get(user_id)
        if user is None:
            user = self._members[user_id] = Member(user_id, name or f"user{user_id}")
        guild.left.discard(user_id)
        guild.members[user_id] = set(user.roles) | role_ids
        return user

    def remove_member(self, guild_id: int, user_id: int) -> None:
        """The user leaves the guild: its routes answer 10007 Unknown Member from now on."""
        guild = self._guild(guild_id)
        if user_id == self.app_id:
            raise ValueError("the bot cannot leave a guild here; the emulator has no GUILD_DELETE")
        guild.members.pop(user_id, None)
        guild.left.add(user_id)

    def member_roles(self, guild_id: int, user_id: int) -> set[int]:
        roles = self._membership(self._guild(guild_id), user_id)
        if roles is None:
            raise LookupError(f"user {user_id} is not a member of guild {guild_id}")
        return set(roles)

    def shares_guild(self, user_id: int) -> bool:
        """Whether the user is a member of a guild the bot is in (bots may only DM such users)."""
        return any(self._membership(guild, user_id) is not None for guild in self.guilds.values())

    # ---- helpers ---------------------------------------------------------------------------------

    def _membership(self, guild: Guild, user_id: int) -> set[int] | None:
        """A member's role ids (the set itself, to change in place), or None for a non-member. Users made
        with `member()` are members of every guild until they leave, as `invoke` lets them be."""
        if user_id == self.app_id:
            return guild.bot_roles
        if user_id in guild.left:
            return None
        if user_id not in guild.members and user_id in self._everywhere:
            guild.members[user_id] = set(self._members[user_id].roles)
        return guild.members.get(user_id)

    def _roles_of(self, guild: Guild) -> dict[int, Role]:
        roles = {guild.id: Role(guild.id, "@everyone", 0, EVERYONE_PERMISSIONS)}
        roles |= {rid: Role(rid, f"perms {bits}", 1, bits) for bits, rid in self._permission_roles.items()}
        return roles | guild.roles

    def _require_role(self, guild: Guild, role_id: int) -> Role:
        role = self._roles_of(guild).get(role_id)
        if role is None:
            raise LookupError(f"no role {role_id} in guild {guild.id}; call add_role first")
        return role

    def _bot_top_position(self, guild: Guild) -> int:
        roles = self._roles_of(guild)
        return max((roles[r].position for r in guild.bot_roles if r in roles), default=0)

    def _member_payload(self, user_id: int, roles: set[int]) -> dict[str, Any]:
        data = (self._members.get(user_id) or Member(user_id, "")).payload()
        del data["permissions"]  # only interaction member objects carry it
        data["roles"] = [str(r) for r in sorted(roles)]
        if user_id == self.app_id:
            data["user"] = self.bot_user()
        return data

    # ---- routes ----------------------------------------------------------------------------------

    async def _member_role(self, request: web.Request) -> web.Response:
        """PUT / DELETE /guilds/{guild}/members/{user}/roles/{role}."""
        guild_id = int(request.match_info["guild"])
        if self.role_route_limit is None:
            return self._change_member_role(request, guild_id)
        verdict = self._role_limit.take(guild_id, self.role_route_limit, self.role_route_window)
        if verdict.early_by is not None:
            self.violations.append(
                f"rate limit: {request.method} {request.path} came {verdict.early_by:.3f}s before the "
                f"retry_after of an earlier 429 had passed"
            )
        if verdict.retry_after is not None:
            response = json_response(verdict.too_many(), 429)
        else:
            response = self._change_member_role(request, guild_id)
        response.headers.update(verdict.headers)
        return response

    def _change_member_role(self, request: web.Request, guild_id: int) -> web.Response:
        guild = self.guilds.get(guild_id)
        if guild is None:
            return error_response(404, 10004, "Unknown Guild")
        user_id, role_id = int(request.match_info["user"]), int(request.match_info["role"])
        held = self._membership(guild, user_id)
        if held is None:
            return error_response(404, 10007, "Unknown Member")
        role = self._roles_of(guild).get(role_id)
        if role is None:
            return error_response(404, 10011, "Unknown Role")
        if role.position >= self._bot_top_position(guild):
            return error_response(403, 50013, "Missing Permissions")
        reason = request.headers.get("X-Audit-Log-Reason")
        reason = unquote(reason) if reason is not None else None
        if request.method == "PUT" and role_id not in held:
            held.add(role_id)
            self.role_changes.append((guild_id, user_id, role_id, "add", reason))
        elif request.method == "DELETE" and role_id in held:
            held.discard(role_id)
            self.role_changes.append((guild_id, user_id, role_id, "remove", reason))
        return web.Response(status=204)

    async def _get_member(self, request: web.Request) -> web.Response:
        guild = self.guilds.get(int(request.match_info["guild"]))
        if guild is None:
            return error_response(404, 10004, "Unknown Guild")
        user_id = int(request.match_info["user"])
        roles = self._membership(guild, user_id)
        if roles is None:
            return error_response(404, 10007, "Unknown Member")
        return json_response(self._member_payload(user_id, roles))

    async def _list_roles(self, request: web.Request) -> web.Response:
        guild = self.guilds.get(int(request.match_info["guild"]))
        if guild is None:
            return error_response(404, 10004, "Unknown Guild")
        roles = sorted(self._roles_of(guild).values(), key=lambda r: (r.position, r.id))
        return json_response([role.payload() for role in roles])
