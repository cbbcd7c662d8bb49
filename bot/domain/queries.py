"""What each command reads: one query per command over the hot-path service, answering with records.

A query runs on whichever backend serves the request; its answer is the records the cog renders and
shadow reads compare. A member-facing "no" (not configured, not a member, not ranked, slow down) is a
`Refused`, never an answer: it is not compared, and it says nothing about the backend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from backends.protocol import Board, TenantContext
from bot.domain import messages
from bot.domain.records import BadgeBoard, LeaderboardView, NaibCouncil, PositionData, ThresholdView, TierBoard
from bot.domain.service import HotPathService

WAITLIST_SHOWN = 5  # the head of the waiting pool /threshold lists
PAGE_SIZE = 10  # leaderboard entries a Discord page shows
TIER_BOARD_SHOWN = 10  # the tier progression board has no pages
BADGE_BOARD_SHOWN = 10  # nor has the badge board


class Refused(Exception):
    """A refusal for the member: `message` is what they read, `outcome` what the metrics count."""

    def __init__(self, message: str, outcome: str = "refused") -> None:
        super().__init__(message)
        self.message = message
        self.outcome = outcome


@dataclass(frozen=True)
class Query[T]:
    """`read` answers the request from one backend's service; `board` is the board its answer comes
    from (an answer read from an older snapshot of it is stale, not wrong)."""

    board: Board
    read: Callable[[HotPathService, TenantContext], Awaitable[T]]


async def _position(service: HotPathService, ctx: TenantContext) -> PositionData:
    assert ctx.user_id is not None
    profile, data = await service.get_position_of_user(ctx, ctx.user_id)
    if profile is None:
        raise Refused(messages.NOT_A_MEMBER, "not_a_member")
    if data is None:
        raise Refused(messages.NOT_RANKED, "not_ranked")
    return data


async def _threshold(service: HotPathService, ctx: TenantContext) -> ThresholdView:
    return await service.get_threshold_view(ctx, WAITLIST_SHOWN)


def leaderboard(board: Board, page: int) -> Query[LeaderboardView]:
    """One page of `board` and the caller's rank on it."""

    async def read(service: HotPathService, ctx: TenantContext) -> LeaderboardView:
        assert ctx.user_id is not None
        shown = await service.get_leaderboard(ctx, board, max(1, page), PAGE_SIZE)
        profile = await service.get_profile_for_user(ctx, ctx.user_id)
        caller = await service.get_rank(ctx, profile.profile_id, board) if profile else None
        return LeaderboardView(shown, caller)

    return Query(board, read)


async def _tiers(service: HotPathService, ctx: TenantContext) -> TierBoard:
    assert ctx.user_id is not None
    profile = await service.get_profile_for_user(ctx, ctx.user_id)
    return await service.get_tier_board(ctx, profile.profile_id if profile else None, TIER_BOARD_SHOWN)


async def _badges(service: HotPathService, ctx: TenantContext) -> BadgeBoard:
    assert ctx.user_id is not None
    profile = await service.get_profile_for_user(ctx, ctx.user_id)
    return await service.get_badge_board(ctx, profile.profile_id if profile else None, BADGE_BOARD_SHOWN)


POSITION: Query[PositionData] = Query("conviction", _position)
THRESHOLD: Query[ThresholdView] = Query("conviction", _threshold)
TIERS: Query[TierBoard] = Query("conviction", _tiers)
# Its tiers come from the conviction board; the badge counts are live on every backend.
BADGES: Query[BadgeBoard] = Query("conviction", _badges)


async def _council(service: HotPathService, ctx: TenantContext) -> NaibCouncil:
    return await service.get_council(ctx)


# Every /naib view reads the whole council; the seat holders' ranks come from the conviction board.
NAIB: Query[NaibCouncil] = Query("conviction", _council)
