"""The resumable backfill: copies one community from the source of truth into one copy."""

from __future__ import annotations

from collections.abc import Callable

from backends.copies import BackfillState, CopySource, Replica
from backends.protocol import NotConfigured

BACKFILL_BATCH = 2000

Progress = Callable[[int, int], None]


async def backfill(
    source: CopySource,
    replica: Replica,
    community_id: int,
    progress: Progress | None = None,
    batch: int = BACKFILL_BATCH,
) -> int:
    """Copy one community and build its snapshots; resumes where an interrupted run stopped.

    Returns the number of members copied by this run. `progress(done, total)` is called per batch.
    """
    community = await source.community(community_id)
    if community is None:
        raise NotConfigured(f"community {community_id} is not configured in the source of truth")
    await replica.put_community(community)
    state = await replica.backfill_state(community_id)
    resume = state is not None and state.state == "running"
    after = state.after_profile if state and resume else None
    done = state.rows_copied if state and resume else 0
    total = await source.count_members(community_id)
    copied = 0
    version = 0
    while True:
        async with source.consistent_view() as view:
            version = await view.score_version(community_id) or 0
            states = await view.member_states_after(community_id, after, batch)
        if states:
            await replica.put_states(community_id, states, version)
            after = states[-1].profile.profile_id
            copied += len(states)
            await replica.put_backfill_state(BackfillState(community_id, "running", after, done + copied, version))
            if progress:
                progress(done + copied, total)
        if len(states) < batch:
            break
    await replica.put_score_version(community_id, version)
    await replica.put_backfill_state(BackfillState(community_id, "complete", None, done + copied, version))
    await replica.rebuild(community_id, force=True)
    return copied
