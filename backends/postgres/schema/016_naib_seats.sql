-- Naib seats (docs/domain.md, "Naib seats"): every term a member held, to the microsecond, at most one
-- open per member; the community's first seat time, kept when that member is removed; the score version
-- of the last seat change (the council's version on the copies). Seats are settled inside every write
-- that can move them (backends/postgres/council.py).

ALTER TABLE communities
    ADD COLUMN first_seated_at timestamptz,
    ADD COLUMN council_version bigint NOT NULL DEFAULT 0;

CREATE TABLE naib_terms (
    community_id bigint      NOT NULL,
    profile_id   uuid        NOT NULL REFERENCES profiles ON DELETE CASCADE,
    seated_at    timestamptz NOT NULL,
    unseated_at  timestamptz CHECK (unseated_at >= seated_at),
    PRIMARY KEY (community_id, profile_id, seated_at)
);
-- One seat each; the open terms are the seats (at most N rows per community).
CREATE UNIQUE INDEX naib_terms_open ON naib_terms (community_id, profile_id) WHERE unseated_at IS NULL;

-- One row per member who ever held a seat: their first term's start, the length of their closed terms,
-- how many terms, when the last one ended, and whether they hold a seat now. The former members' list
-- and count read one index instead of adding up terms per request.
CREATE TABLE naib_members (
    community_id    bigint      NOT NULL,
    profile_id      uuid        NOT NULL REFERENCES profiles ON DELETE CASCADE,
    first_seated_at timestamptz NOT NULL,
    closed_us       bigint      NOT NULL DEFAULT 0,
    terms           integer     NOT NULL,
    left_at         timestamptz,
    seated          boolean     NOT NULL,
    PRIMARY KEY (community_id, profile_id)
);
CREATE INDEX naib_members_former ON naib_members (community_id, closed_us DESC, left_at DESC, profile_id)
    WHERE NOT seated;

-- Every existing community is settled once, now: with no seat held, a settling seats the first N of its
-- eligible set (positions 1..F at or above its minimum balance), who are its founding naib. The copies
-- learn of it by a backfill: the copy floor moves past it.
CREATE TEMP TABLE first_seats ON COMMIT DROP AS
SELECT c.community_id, s.profile_id
  FROM communities c
  LEFT JOIN community_roles r ON r.community_id = c.community_id
 CROSS JOIN LATERAL (
    SELECT x.profile_id FROM scores x
     WHERE x.community_id = c.community_id AND x.conviction > 0
       AND (r.minimum_balance IS NULL OR x.conviction >= r.minimum_balance)
     ORDER BY -x.conviction, x.joined_at, x.profile_id LIMIT least(c.naib, c.fedaykin)) s;

INSERT INTO naib_terms (community_id, profile_id, seated_at) SELECT community_id, profile_id, now() FROM first_seats;
INSERT INTO naib_members (community_id, profile_id, first_seated_at, terms, seated)
SELECT community_id, profile_id, now(), 1, true FROM first_seats;
UPDATE communities SET first_seated_at = now(), score_version = score_version + 1,
       copy_floor = score_version + 1, council_version = score_version + 1
 WHERE community_id IN (SELECT community_id FROM first_seats);
