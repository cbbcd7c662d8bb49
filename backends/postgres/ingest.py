"""What the score feed needs from the source of truth beyond the writes: each community's feed token
(only its SHA-256 is stored) and the members a feed names, by Discord id or wallet."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from uuid import UUID

from psycopg.rows import tuple_row

from backends.postgres.pool import Pool, pooled
from backends.protocol import NotConfigured

TOKEN_BYTES = 32


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class IngestDirectory:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def new_token(self, community_id: int) -> str:
        """A fresh token for the community (the previous one stops working); only its hash is kept."""
        token = f"sietch_{community_id}_{secrets.token_urlsafe(TOKEN_BYTES)}"
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "INSERT INTO ingest_tokens (community_id, token_sha256)"
                " SELECT community_id, %s FROM communities WHERE community_id = %s"
                " ON CONFLICT (community_id) DO UPDATE SET token_sha256 = EXCLUDED.token_sha256, created_at = now()"
                " RETURNING community_id",
                (_digest(token), community_id),
            )
            if await cur.fetchone() is None:
                raise NotConfigured(f"community {community_id} is not configured")
        return token

    async def token_matches(self, community_id: int, token: str) -> bool:
        """Whether `token` is the community's; a community without one (or unknown) matches nothing.

        The digest is compared in constant time, and a digest is computed even when there is nothing to
        compare with, so the answer takes as long either way."""
        async with pooled(self._pool) as conn:
            cur = await conn.execute("SELECT token_sha256 FROM ingest_tokens WHERE community_id = %s", (community_id,))
            row = await cur.fetchone()
        offered = _digest(token)
        stored = bytes(row["token_sha256"]) if row else secrets.token_bytes(len(offered))
        return hmac.compare_digest(offered, stored) and row is not None

    async def take_request(self, community_id: int, per_minute: int) -> float:
        """Count one feed request of the community in this minute (every process's count together);
        0 when it is within `per_minute`, else the seconds until the next minute starts."""
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "INSERT INTO feed_windows (community_id, window_start, requests)"
                " VALUES (%(c)s, date_trunc('minute', now()), 1)"
                " ON CONFLICT (community_id) DO UPDATE SET"
                "  requests = CASE WHEN feed_windows.window_start < date_trunc('minute', now()) THEN 1"
                "                  ELSE feed_windows.requests + 1 END,"
                "  window_start = date_trunc('minute', now())"
                " RETURNING requests,"
                "  extract(epoch FROM window_start + interval '1 minute' - clock_timestamp()) AS left_seconds",
                {"c": community_id},
            )
            row = await cur.fetchone()
        assert row is not None
        return 0.0 if row["requests"] <= per_minute else max(float(row["left_seconds"]), 0.001)

    async def members(
        self, community_id: int, user_ids: Iterable[int], wallets: Iterable[str]
    ) -> tuple[dict[int, UUID], dict[str, UUID]]:
        """The profile ids of the named members that exist: by Discord id, and by wallet."""
        users, addresses = set(user_ids), set(wallets)
        async with pooled(self._pool) as conn:
            # Tuples, not the pool's dicts: a file's every line comes through here.
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(
                "SELECT profile_id, discord_user_id, wallet_address FROM profiles WHERE community_id = %s"
                " AND (discord_user_id = ANY(%s) OR wallet_address = ANY(%s))",
                (community_id, list(users), list(addresses)),
            )
            rows = await cur.fetchall()
        by_user = {user: profile for profile, user, _ in rows if user in users}
        by_wallet = {address: profile for profile, _, address in rows if address in addresses}
        return by_user, by_wallet
