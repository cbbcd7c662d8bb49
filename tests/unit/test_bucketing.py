"""Rollout bucketing: Unleash's published vectors, stickiness, monotonic growth and a fair share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.routing.flags.bucketing import in_rollout, normalized

ROOT = Path(__file__).parents[2]

# Unleash/client-specification, the conformance suite every Unleash SDK runs. The group is the
# strategy's groupId (the flag name in these files), the key the stickiness value.
#   10-flexible-rollout-strategy.json: buckets re-computed from its flags with the Unleash hash.
#     Its third flag is named "Feature.flexibleRollout.userId.55": with the group "userId.55"
#     alone, key 25 lands in bucket 82, not 55.
EXACT_BUCKETS = [
    pytest.param("Feature.flexibleRollout.10", "174", 10, id="flexible-10-user-174"),
    pytest.param("Feature.flexibleRollout.10", "499", 32, id="flexible-10-user-499"),
    pytest.param("Feature.flexibleRollout.userId.55", "25", 55, id="flexible-userId-55-user-25"),
]

# (group, key, rollout, expected enabled), each an `expectedResult` from the specification files:
#   10-flexible-rollout-strategy.json: "Feature.flexibleRollout.10 should be enabled for userId=174",
#     "... disabled for userId=499", "Feature.flexibleRollout.userId.55 should be enabled for userId=25",
#     "Feature.flexibleRollout.sessionId.42 ... for sessionId=147" (true: its bucket is exactly 42).
#   12-custom-stickiness.json: "Feature.flexible.rollout.custom.stickiness_50", customField 402 (false),
#     388 (true), 39 (true).
#   03-gradual-rollout-user-id-strategy.json: gradualRolloutUserId with groupId "AB12A": 100 % for
#     userId 123 (true), 50 % for 122 (true) and 155 (false), 0 % for 122 (false).
PUBLISHED_RESULTS = [
    pytest.param("Feature.flexibleRollout.10", "174", 10, True, id="flexible-10-174-on"),
    pytest.param("Feature.flexibleRollout.10", "499", 10, False, id="flexible-10-499-off"),
    pytest.param("Feature.flexibleRollout.userId.55", "25", 55, True, id="flexible-userId-55-25-on"),
    pytest.param("Feature.flexibleRollout.sessionId.42", "147", 42, True, id="flexible-sessionId-42-147-on"),
    pytest.param("Feature.flexible.rollout.custom.stickiness_50", "402", 50, False, id="custom-50-402-off"),
    pytest.param("Feature.flexible.rollout.custom.stickiness_50", "388", 50, True, id="custom-50-388-on"),
    pytest.param("Feature.flexible.rollout.custom.stickiness_50", "39", 50, True, id="custom-50-39-on"),
    pytest.param("AB12A", "123", 100, True, id="gradual-AB12A-100-123-on"),
    pytest.param("AB12A", "122", 50, True, id="gradual-AB12A-50-122-on"),
    pytest.param("AB12A", "155", 50, False, id="gradual-AB12A-50-155-off"),
    pytest.param("AB12A", "122", 0, False, id="gradual-AB12A-0-122-off"),
]

KEYS = [str(100_000_000_000_000_000 + 7919 * i) for i in range(2000)]


@pytest.mark.parametrize(("group", "key", "bucket"), EXACT_BUCKETS)
def test_bucket_matches_unleash_published_value(group: str, key: str, bucket: int) -> None:
    assert normalized(group, key) == bucket


@pytest.mark.parametrize(("group", "key", "rollout", "enabled"), PUBLISHED_RESULTS)
def test_enabled_matches_unleash_specification(group: str, key: str, rollout: int, enabled: bool) -> None:
    assert in_rollout(group, key, rollout)[0] is enabled


def test_rollout_boundary_is_inclusive() -> None:
    assert in_rollout("Feature.flexibleRollout.10", "174", 10) == (True, 10)
    assert in_rollout("Feature.flexibleRollout.10", "174", 9) == (False, 10)


def test_an_int_key_buckets_like_its_decimal_text() -> None:
    assert in_rollout("position", 123456789012345678, 50) == in_rollout("position", "123456789012345678", 50)


def test_every_bucket_is_between_1_and_100() -> None:
    assert {normalized("position", key) for key in KEYS} <= set(range(1, 101))


def test_raising_the_rollout_only_adds_keys() -> None:
    previous: set[str] = set()
    for rollout in range(101):
        enabled = {key for key in KEYS if in_rollout("position", key, rollout)[0]}
        assert previous <= enabled, f"a key left the rollout when it grew to {rollout}"
        previous = enabled


def test_rollout_0_takes_nobody_and_100_takes_everybody() -> None:
    assert not any(in_rollout("position", key, 0)[0] for key in KEYS)
    assert all(in_rollout("position", key, 100)[0] for key in KEYS)


@pytest.mark.parametrize("rollout", [10, 50])
def test_share_inside_the_rollout_is_close_to_the_percentage(rollout: int) -> None:
    share = 100 * sum(in_rollout("threshold", key, rollout)[0] for key in KEYS) / len(KEYS)
    assert abs(share - rollout) <= 3


def test_commands_bucket_independently() -> None:
    position = [normalized("position", key) for key in KEYS[:200]]
    leaderboard = [normalized("leaderboard", key) for key in KEYS[:200]]
    assert position != leaderboard


def test_the_same_key_gets_the_same_answer_every_time() -> None:
    first = [in_rollout("position", key, 37) for key in KEYS[:300]]
    assert [in_rollout("position", key, 37) for key in KEYS[:300]] == first


def test_buckets_do_not_depend_on_the_process_hash_seed() -> None:
    """Python's str hash is salted per process; the buckets must not be, or restarts would reshuffle guilds."""
    script = (
        "from bot.routing.flags.bucketing import normalized\n"
        f"print(' '.join(str(normalized('position', k)) for k in {KEYS[:100]!r}))\n"
    )
    buckets = []
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        buckets.append(done.stdout.split())
    here = [str(normalized("position", key)) for key in KEYS[:100]]
    assert buckets[0] == buckets[1] == here
