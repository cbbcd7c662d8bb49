"""The living community's tables on the source of truth: each community's role ids and eligibility rule,
its members' last synced standing (and the roles the bot holds them at), what a sync could not do, and who
asked for alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from backends.copies import FloorMove
from backends.postgres.community_writes import raise_copy_floor
from backends.postgres.council import settle_seats
from backends.postgres.pool import Pool, pooled
from backends.protocol import NotConfigured
from backends.roles import DueAlert, Ranked, RoleConfig, Standing, Subscription


class StandingStore:
    """Implements `bot.roles.stores.StandingStore`."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def role_config(self, community_id: int) -> RoleConfig:
        async with pooled(self._pool) as conn:
            cur = await conn.execute("SELECT * FROM community_roles WHERE community_id = %s", (community_id,))
            row = await cur.fetchone()
        if row is None:
            return RoleConfig(community_id)
        return RoleConfig(
            community_id,
            row["naib_role"],
            row["fedaykin_role"],
            row["at_risk_role"],
            row["waiting_role"],
            row["minimum_balance"],
            row["rule_id"],
        )

    async def put_role_config(self, config: RoleConfig) -> FloorMove | None:
        """Set the community's roles; a new minimum balance may move the naib seats, settled in the same
        transaction: then the copies learn of it outside the outbox (the FloorMove returned)."""
        async with pooled(self._pool) as conn, conn.transaction():
            # Locked as every write that settles the seats locks it.
            cur = await conn.execute(
                "SELECT 1 FROM communities WHERE community_id = %s FOR NO KEY UPDATE", (config.community_id,)
            )
            if await cur.fetchone() is None:
                raise NotConfigured(f"community {config.community_id} is not configured")
            await conn.execute(  # roles set again: what Discord said of the old ones is tried anew
                "DELETE FROM role_problems WHERE community_id = %s AND discord_user_id = 0", (config.community_id,)
            )
            await conn.execute(
                "INSERT INTO community_roles (community_id, naib_role, fedaykin_role, at_risk_role, waiting_role,"
                " minimum_balance, rule_id) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (community_id) DO UPDATE SET naib_role = EXCLUDED.naib_role,"
                "  fedaykin_role = EXCLUDED.fedaykin_role, at_risk_role = EXCLUDED.at_risk_role,"
                "  waiting_role = EXCLUDED.waiting_role, minimum_balance = EXCLUDED.minimum_balance,"
                "  rule_id = EXCLUDED.rule_id",
                (
                    config.community_id,
                    config.naib,
                    config.fedaykin,
                    config.at_risk,
                    config.waiting,
                    config.minimum_balance,
                    config.rule_id,
                ),
            )
            if not await settle_seats(conn, config.community_id):
                return None
            # The seats moved with no score version of their own: the change takes one, as settings do.
            move = await raise_copy_floor(conn, config.community_id)
            await conn.execute(
                "UPDATE communities SET council_version = score_version WHERE community_id = %s",
                (config.community_id,),
            )
            return move

    async def seated(self, community_id: int) -> set[int]:
        """The Discord accounts of the naib seat holders: the open terms (at most N rows)."""
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "SELECT p.discord_user_id FROM naib_terms t JOIN profiles p USING (profile_id)"
                " WHERE t.community_id = %s AND t.unseated_at IS NULL AND p.discord_user_id IS NOT NULL",
                (community_id,),
            )
            return {r["discord_user_id"] for r in await cur.fetchall()}

    async def first_positions(self, community_id: int, last: int) -> list[Ranked]:
        """Positions 1..`last` on the conviction board (its order: score, then joined_at, then profile id),
        the members among them who have a Discord account."""
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "SELECT p.discord_user_id, s.profile_id, s.conviction,"
                "       row_number() OVER (ORDER BY -s.conviction, s.joined_at, s.profile_id) AS position"
                "  FROM (SELECT profile_id, conviction, joined_at FROM scores"
                "         WHERE community_id = %(c)s AND conviction > 0"
                "         ORDER BY -conviction, joined_at, profile_id LIMIT %(n)s) s"
                "  JOIN profiles p USING (profile_id)",
                {"c": community_id, "n": last},
            )
            rows = await cur.fetchall()
        return [
            Ranked(r["discord_user_id"], r["profile_id"], int(r["position"]), r["conviction"])
            for r in rows
            if r["discord_user_id"] is not None
        ]

    async def standings(self, community_id: int) -> dict[int, Standing]:
        return await self.standings_of(community_id, None)

    async def standings_of(self, community_id: int, users: Sequence[int] | None) -> dict[int, Standing]:
        """The recorded standings of `users` (None: every member with one)."""
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "SELECT * FROM member_standing WHERE community_id = %s"
                " AND (%s::bigint[] IS NULL OR discord_user_id = ANY(%s::bigint[]))",
                (community_id, None if users is None else list(users), None if users is None else list(users)),
            )
            rows = await cur.fetchall()
        return {
            r["discord_user_id"]: Standing(
                r["discord_user_id"], r["status"], r["position"], frozenset(r["roles"]), r["changed_at"]
            )
            for r in rows
        }

    async def put_standings(self, community_id: int, standings: Sequence[Standing], gone: Sequence[int]) -> None:
        """Record the standings (a member's `changed_at` only moves when their roles did) and forget `gone`."""
        async with pooled(self._pool) as conn, conn.transaction():
            if standings:
                await conn.execute(
                    "INSERT INTO member_standing (community_id, discord_user_id, status, position, roles, changed_at)"
                    " SELECT %s, s.u, s.st, s.pos, s.r::bigint[], coalesce(s.at, now())"
                    "   FROM unnest(%s::bigint[], %s::text[], %s::int[], %s::text[], %s::timestamptz[])"
                    "     AS s(u, st, pos, r, at)"
                    " ON CONFLICT (community_id, discord_user_id) DO UPDATE SET status = EXCLUDED.status,"
                    "  position = EXCLUDED.position, roles = EXCLUDED.roles, changed_at = EXCLUDED.changed_at",
                    (
                        community_id,
                        [s.discord_user_id for s in standings],
                        [s.status for s in standings],
                        [s.position for s in standings],
                        [_array(s.roles) for s in standings],
                        [s.changed_at for s in standings],
                    ),
                )
            if gone:
                await conn.execute(
                    "DELETE FROM member_standing WHERE community_id = %s AND discord_user_id = ANY(%s)",
                    (community_id, list(gone)),
                )

    async def note_problems(self, community_id: int, problems: Sequence[tuple[int, int, str]]) -> None:
        """(user, role, problem) a sync met; a problem solved since is cleared by `clear_problems`."""
        async with pooled(self._pool) as conn:
            for user, role, problem in problems:
                await conn.execute(
                    "INSERT INTO role_problems (community_id, discord_user_id, role_id, problem)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (community_id, discord_user_id, role_id)"
                    " DO UPDATE SET problem = EXCLUDED.problem, seen_at = now()",
                    (community_id, user, role, problem),
                )

    async def clear_problems(self, community_id: int, done: Sequence[tuple[int, int]]) -> None:
        if not done:
            return
        async with pooled(self._pool) as conn:
            await conn.execute(
                "DELETE FROM role_problems r USING unnest(%s::bigint[], %s::bigint[]) AS d(u, role)"
                " WHERE r.community_id = %s AND r.discord_user_id = d.u AND r.role_id = d.role",
                ([u for u, _ in done], [r for _, r in done], community_id),
            )

    async def recent_problems(self, community_id: int, since: datetime) -> set[tuple[int, int]]:
        """(user, role) pairs that failed since `since`: not tried again before then."""
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "SELECT discord_user_id, role_id FROM role_problems WHERE community_id = %s AND seen_at >= %s",
                (community_id, since),
            )
            return {(r["discord_user_id"], r["role_id"]) for r in await cur.fetchall()}

    async def unknown_roles(self, community_id: int) -> set[int]:
        """Roles kept with the user id 0: Discord refused them as unknown (`bot.roles.sync.ROLE_ITSELF`)."""
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "SELECT role_id FROM role_problems WHERE community_id = %s AND discord_user_id = 0", (community_id,)
            )
            return {r["role_id"] for r in await cur.fetchall()}

    async def problems(self, community_id: int, limit: int = 20) -> tuple[list[tuple[int, int, str]], int]:
        """The latest problems (user, role, problem) and how many there are."""
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "SELECT discord_user_id, role_id, problem, count(*) OVER () AS total FROM role_problems"
                " WHERE community_id = %s ORDER BY seen_at DESC, discord_user_id LIMIT %s",
                (community_id, limit),
            )
            rows = await cur.fetchall()
        return [(r["discord_user_id"], r["role_id"], r["problem"]) for r in rows], int(rows[0]["total"]) if rows else 0

    async def subscription(self, community_id: int, user: int) -> Subscription | None:
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "SELECT enabled, last_sent_at, note, last_loss_sent_at FROM alert_subscriptions"
                " WHERE community_id = %s AND discord_user_id = %s",
                (community_id, user),
            )
            row = await cur.fetchone()
        return _subscription(row) if row else None

    async def subscriptions(self, community_id: int, users: Sequence[int]) -> dict[int, Subscription]:
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "SELECT discord_user_id, enabled, last_sent_at, note, last_loss_sent_at FROM alert_subscriptions"
                " WHERE community_id = %s AND discord_user_id = ANY(%s) AND enabled",
                (community_id, list(users)),
            )
            rows = await cur.fetchall()
        return {r["discord_user_id"]: _subscription(r) for r in rows}

    async def subscribe(self, community_id: int, user: int, enabled: bool, note: str | None = None) -> None:
        async with pooled(self._pool) as conn:
            await conn.execute(
                "INSERT INTO alert_subscriptions (community_id, discord_user_id, enabled, note)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (community_id, discord_user_id)"
                " DO UPDATE SET enabled = EXCLUDED.enabled, note = EXCLUDED.note",
                (community_id, user, enabled, note),
            )

    async def put_due(self, community_id: int, alerts: Sequence[tuple[int, str, bool]]) -> None:
        """Record (user, content, urgent) alerts as due; a member's newer alert replaces one not sent yet."""
        if not alerts:
            return
        async with pooled(self._pool) as conn:
            await conn.execute(
                "INSERT INTO alerts_due (community_id, discord_user_id, content, urgent)"
                " SELECT %s, a.u, a.c, a.urgent FROM unnest(%s::bigint[], %s::text[], %s::boolean[]) AS a(u, c, urgent)"
                " ON CONFLICT (community_id, discord_user_id) DO UPDATE SET content = EXCLUDED.content,"
                "  urgent = alerts_due.urgent OR EXCLUDED.urgent, due_at = now(), attempts = 0, claimed_until = NULL",
                (community_id, [a[0] for a in alerts], [a[1] for a in alerts], [a[2] for a in alerts]),
            )

    async def due(self, limit: int, claim_seconds: float = 300.0) -> list[DueAlert]:
        """The oldest due alerts, across communities, claimed for `claim_seconds`: another process's
        delivery leaves them alone meanwhile (a claim a crashed process left runs out)."""
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "UPDATE alerts_due d SET claimed_until = now() + make_interval(secs => %s)"
                " FROM (SELECT community_id, discord_user_id FROM alerts_due"
                "        WHERE claimed_until IS NULL OR claimed_until < now()"
                "        ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED) c"
                " WHERE d.community_id = c.community_id AND d.discord_user_id = c.discord_user_id"
                " RETURNING d.community_id, d.discord_user_id, d.content, d.urgent, d.attempts, d.due_at",
                (claim_seconds, limit),
            )
            rows = sorted(await cur.fetchall(), key=lambda r: r["due_at"])
            return [DueAlert(**{k: v for k, v in r.items() if k != "due_at"}) for r in rows]

    async def delivered(self, alert: DueAlert, at: datetime) -> None:
        """Discord took the DM: no longer due, and it counts against the member's caps."""
        async with pooled(self._pool) as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM alerts_due WHERE community_id = %s AND discord_user_id = %s AND content = %s",
                (alert.community_id, alert.discord_user_id, alert.content),
            )
            await conn.execute(
                "UPDATE alert_subscriptions SET last_sent_at = %s,"
                " last_loss_sent_at = CASE WHEN %s THEN %s ELSE last_loss_sent_at END"
                " WHERE community_id = %s AND discord_user_id = %s",
                (at, alert.urgent, at, alert.community_id, alert.discord_user_id),
            )

    async def release(self, alerts: Sequence[DueAlert]) -> None:
        """Give back claimed alerts not tried (the process stops): another delivery may take them at once."""
        if not alerts:
            return
        async with pooled(self._pool) as conn:
            await conn.execute(
                "UPDATE alerts_due d SET claimed_until = NULL FROM unnest(%s::bigint[], %s::bigint[]) AS a(c, u)"
                " WHERE d.community_id = a.c AND d.discord_user_id = a.u",
                ([a.community_id for a in alerts], [a.discord_user_id for a in alerts]),
            )

    async def not_delivered(self, alert: DueAlert, *, drop: bool) -> None:
        """A try failed: counted, or the alert dropped (the member cannot be messaged)."""
        async with pooled(self._pool) as conn:
            if drop:
                await conn.execute(
                    "DELETE FROM alerts_due WHERE community_id = %s AND discord_user_id = %s",
                    (alert.community_id, alert.discord_user_id),
                )
            else:
                await conn.execute(
                    "UPDATE alerts_due SET attempts = attempts + 1, claimed_until = NULL"
                    " WHERE community_id = %s AND discord_user_id = %s",
                    (alert.community_id, alert.discord_user_id),
                )


def _subscription(row: dict[str, object]) -> Subscription:
    return Subscription(
        bool(row["enabled"]),
        row["last_sent_at"],  # type: ignore[arg-type]
        row["note"],  # type: ignore[arg-type]
        row["last_loss_sent_at"],  # type: ignore[arg-type]
    )


def _array(ids: frozenset[int]) -> str:
    """A PostgreSQL array literal: one text per row, since unnest cannot take an array of arrays."""
    return "{" + ",".join(str(i) for i in sorted(ids)) + "}"


class FollowedCommunities:
    """Which communities a role sync follows, and how far their scores have moved (implements
    `bot.roles.stores.FollowedCommunities`)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def versions(self) -> dict[int, int]:
        """Score version of every community with roles configured or an alert subscriber."""
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "SELECT community_id, score_version FROM communities c WHERE"
                " EXISTS (SELECT 1 FROM community_roles r WHERE r.community_id = c.community_id)"
                " OR EXISTS (SELECT 1 FROM alert_subscriptions a WHERE a.community_id = c.community_id AND a.enabled)"
            )
            return {r["community_id"]: int(r["score_version"]) for r in await cur.fetchall()}
