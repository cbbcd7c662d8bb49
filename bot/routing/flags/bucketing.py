"""Sticky percentage rollout, exactly Unleash's gradual-rollout scheme (MurmurHash3 to a bucket 1..100).

Keeping Unleash's formula lets the tests check it against Unleash's published client-specification
vectors. A key's bucket never changes, so raising the rollout only adds keys and lowering it removes
exactly the keys with the highest buckets. Python's `hash()` is never used: it is salted per process.
"""

from __future__ import annotations

import mmh3


def normalized(group: str, key: str) -> int:
    """The key's bucket in 1..100 within `group`: `murmur3_x86_32("{group}:{key}", seed 0) % 100 + 1`."""
    return mmh3.hash(f"{group}:{key}", seed=0, signed=False) % 100 + 1


def in_rollout(command: str, key: str | int, rollout: int) -> tuple[bool, int]:
    """(inside the rollout, bucket) for a guild or user id; the command name is the group.

    Inclusive: at rollout 10 the buckets 1..10 are in. Rollout 0 lets nobody in.
    Using the command as the group means each command's rollout picks its own independent set of keys.
    """
    bucket = normalized(command, str(key))
    return rollout > 0 and bucket <= rollout, bucket
