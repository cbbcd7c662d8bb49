"""The resumable backfill: copies one community from the source of truth into one copy.

A pass walks the members in profile id order, each batch read at one moment and stamped with that
moment's score version. Score updates during the pass reach the copy through the outbox; a write that
does not (an import, a member removal, a settings change) raises the community's copy floor, and a pass
that began before the floor is void: the walk starts over, as does a resumed pass whose start the floor
has since passed. So a copy is only ever marked complete at a version it really holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from backends.copies import BackfillState, CopySource, Replica
from backends.protocol import BackendError, NotConfigured

log = logging.getLogger(__name__)

BACKFILL_BATCH = 2000
MAX_PASSES = 3

Progress = Callable[[int, int], None]


class BackfillOutrun(BackendError):
    """Writes outside the outbox kept changing the community faster than a pass could copy it."""


async def backfill(
    source: CopySource,
    replica: Replica,
    community_id: int,
    progress: Progress | None = None,
    batch: int = BACKFILL_BATCH,
) -> int:
    """Copy one community and build its snapshots; resumes where an interrupted pass stopped if nothing
    outside the outbox changed since it began. Returns the number of members copied by this run.
    `progress(done, total)` is called per batch."""
    community = await source.community(community_id)
    if community is None:
        raise NotConfigured(f"community {community_id} is not configured in the source of truth")
    await replica.put_community(community)
    state = await replica.backfill_state(community_id)
    floor = await source.copy_floor(community_id)
    resumable = state is not None and state.state == "running" and state.score_version >= floor
    if state is not None and state.state == "running" and not resumable:
        log.warning("backfill starts over guild=%s: changed outside the outbox since it began", community_id)
    copied = 0
    for _ in range(MAX_PASSES):
        start, done, pass_copied = await _pass(
            source, replica, community_id, state if resumable else None, progress, batch
        )
        copied += pass_copied
        if await source.copy_floor(community_id) <= start:
            # Every member that exists was written at `start` or later by this pass: what is older is a
            # member removed while the copy was not told. Only then is the copy complete, boards rebuilt.
            await replica.forget_members(community_id, start)
            await replica.put_score_version(community_id, start)
            await replica.rebuild(community_id, force=True)
            await replica.put_backfill_state(BackfillState(community_id, "complete", None, done, start))
            return copied
        log.warning("backfill pass void guild=%s: changed outside the outbox during the pass", community_id)
        resumable = False
    raise BackfillOutrun(f"community {community_id} kept changing outside the outbox; run the backfill again")


async def _pass(
    source: CopySource,
    replica: Replica,
    community_id: int,
    resume: BackfillState | None,
    progress: Progress | None,
    batch: int,
) -> tuple[int, int, int]:
    """One walk over the community: (the version it began at, members copied in all, copied by this call)."""
    after = resume.after_profile if resume else None
    done = resume.rows_copied if resume else 0
    start = resume.score_version if resume else None
    total = await source.count_members(community_id)
    copied = 0
    while True:
        async with source.consistent_view() as view:
            version = await view.score_version(community_id) or 0
            states = await view.member_states_after(community_id, after, batch)
        if start is None:
            start = version
            await replica.put_backfill_state(BackfillState(community_id, "running", None, 0, start))
        if states:
            await replica.put_states(community_id, states, version)
            after = states[-1].profile.profile_id
            copied += len(states)
            await replica.put_backfill_state(BackfillState(community_id, "running", after, done + copied, start))
            if progress:
                progress(done + copied, total)
        if len(states) < batch:
            async with source.consistent_view() as view:
                version = await view.score_version(community_id) or 0
                histogram = await view.badge_histogram(community_id)
                facts = await view.badge_facts(community_id)
                council = await view.council(community_id)
            await replica.put_badge_counts(community_id, histogram, facts, version)
            await replica.put_council(community_id, council, version)
            return start, done + copied, copied
