"""/position's and /threshold's reads composed from the Protocol's single reads, for a store with no
cheaper way to read them together: one after another, and a row only when it is needed."""

from __future__ import annotations

from backends.protocol import Backend, PositionRows, TenantContext, ThresholdRows


async def compose_position_rows(
    backend: Backend, ctx: TenantContext, discord_user_id: int, entry_rank: int
) -> PositionRows:
    profile = await backend.get_profile_by_user(ctx, discord_user_id)
    if profile is None:
        return PositionRows(None)
    above, me, below = await backend.get_neighbours(ctx, "conviction", profile.profile_id)
    if me is None or me.rank <= entry_rank:
        return PositionRows(profile, above, me, below)
    rows = await backend.get_range(ctx, "conviction", entry_rank, entry_rank)
    entry = next((row for row in rows if row.rank == entry_rank), None)
    return PositionRows(profile, above, me, below, entry)


async def compose_threshold_rows(
    backend: Backend, ctx: TenantContext, first_rank: int, last_rank: int
) -> ThresholdRows:
    ranked = await backend.count_ranked(ctx, "conviction")
    rows = await backend.get_range(ctx, "conviction", first_rank, last_rank) if ranked >= first_rank else []
    return ThresholdRows(ranked, rows, await backend.snapshot_info(ctx, "conviction"))
