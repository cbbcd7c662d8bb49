"""The one path both doors of badge changes take (`sietch badges`, `POST /v1/guilds/{guild}/badges`): items
naming a member by Discord id or wallet become badge changes of profiles, written in order, all or none,
through the write path of scores (source of truth, then the outbox to every copy).

    {"member": "5678" | "0x...", "action": "award" | "revoke", "type": "water_sharer", "reason": "..."}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backends.protocol import (
    BADGE_ACTIONS,
    BadgeChange,
    BadgeOutcome,
    HeldWrite,
    TenantContext,
    badge_reason_problem,
    badge_type_problem,
)
from bot.domain import inputs
from bot.feed.apply import ItemProblem, MemberDirectory
from bot.feed.items import FeedItemError, id_digits
from bot.replication.writes import ScoreWriter

FIELDS = ("member", "action", "type", "reason")


@dataclass(frozen=True)
class BadgeItem:
    discord_user_id: int | None  # the member, by Discord id ...
    wallet: str | None  # ... or by wallet
    action: str
    badge_type: str
    reason: str | None = None

    @property
    def member(self) -> str:
        return str(self.discord_user_id) if self.discord_user_id is not None else str(self.wallet)


def parse_member(raw: Any) -> tuple[int | None, str | None]:
    """(Discord id, None) or (None, wallet); ValueError when it is neither."""
    if isinstance(raw, str) and raw[:2].lower() == "0x":
        return None, inputs.wallet(raw, "member")
    return inputs.discord_id(id_digits(raw, "member"), "member"), None


def parse_badge_item(raw: Any) -> BadgeItem:
    """The item, or `FeedItemError` naming each problem."""
    if not isinstance(raw, dict):
        raise FeedItemError("a badge change must be a JSON object")
    problems = [f"unknown field {k!r}" for k in raw if k not in FIELDS]
    problems += [f"{k} is required" for k in ("member", "action", "type") if raw.get(k) is None]
    if problems:
        raise FeedItemError("; ".join(problems))
    user_id, wallet = None, None
    try:
        user_id, wallet = parse_member(raw["member"])
    except ValueError as exc:
        problems.append(str(exc))
    action, badge_type, reason = raw["action"], raw["type"], raw.get("reason")
    if action not in BADGE_ACTIONS:
        problems.append(f"action {action!r} is not award or revoke")
    if not isinstance(badge_type, str):
        problems.append(f"type {badge_type!r} must be a string")
    elif problem := badge_type_problem(badge_type):
        problems.append(problem)
    if reason is not None and not isinstance(reason, str):
        problems.append("reason must be a string")
    elif problem := badge_reason_problem(reason):
        problems.append(problem)
    if problems:
        raise FeedItemError("; ".join(problems))
    return BadgeItem(user_id, wallet, action, badge_type, reason)


class BadgeFeed:
    def __init__(self, directory: MemberDirectory, writer: ScoreWriter) -> None:
        self.directory = directory
        self.writer = writer

    async def resolve(
        self, guild: int, items: Sequence[tuple[int, BadgeItem]]
    ) -> tuple[list[BadgeChange], list[ItemProblem]]:
        """The changes of the (index, item) pairs, and a problem for each item naming no member of `guild`."""
        users = {i.discord_user_id for _, i in items if i.discord_user_id is not None}
        wallets = {i.wallet for _, i in items if i.wallet is not None}
        by_user, by_wallet = await self.directory.members(guild, users, wallets)
        changes, problems = [], []
        for index, item in items:
            pid = (
                by_user.get(item.discord_user_id)
                if item.discord_user_id is not None
                else by_wallet.get(item.wallet or "")
            )
            if pid is None:
                problems.append(ItemProblem(index, f"member {item.member} is not a member of guild {guild}"))
            else:
                changes.append(BadgeChange(pid, item.action, item.badge_type, item.reason))  # type: ignore[arg-type]
        return changes, problems

    async def write(self, guild: int, changes: Sequence[BadgeChange]) -> BadgeOutcome:
        return await self.writer.apply_badges(TenantContext(guild), changes)

    async def write_or_hold(self, guild: int, changes: Sequence[BadgeChange]) -> BadgeOutcome | HeldWrite:
        """`write` for the HTTP door: the changes held whole while a bulk write has the guild."""
        return await self.writer.apply_or_hold_badges(TenantContext(guild), changes)
