-- Badges (docs/domain.md, "Badges"): each member holds a type at most once, from its award until it is
-- revoked; the board reads the held counts in board order from one index. The community's launch (the
-- earliest joined_at it ever had) and its member count are kept by triggers on profiles.

ALTER TABLE communities
    ADD COLUMN launched_at timestamptz,
    ADD COLUMN members bigint NOT NULL DEFAULT 0;

UPDATE communities c SET launched_at = d.launched, members = d.n
  FROM (SELECT community_id, min(joined_at) AS launched, count(*) AS n FROM profiles GROUP BY community_id) d
 WHERE c.community_id = d.community_id;

CREATE TABLE badges (
    community_id bigint      NOT NULL,
    profile_id   uuid        NOT NULL REFERENCES profiles ON DELETE CASCADE,
    badge_type   text        NOT NULL CHECK (badge_type IN ('og', 'veteran', 'elder', 'naib_ascended',
                     'fedaykin_initiated', 'usul_ascended', 'first_maker', 'desert_active', 'sietch_engaged',
                     'water_sharer', 'former_naib', 'founding_naib')),
    awarded_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    reason       text CHECK (char_length(reason) <= 200),
    PRIMARY KEY (community_id, profile_id, badge_type)
);

-- One row per member holding at least one badge; joined_at is copied so one index is the board order.
CREATE TABLE badge_counts (
    community_id bigint      NOT NULL,
    profile_id   uuid        NOT NULL REFERENCES profiles ON DELETE CASCADE,
    joined_at    timestamptz NOT NULL,
    held         integer     NOT NULL CHECK (held > 0),
    PRIMARY KEY (community_id, profile_id)
);
CREATE INDEX badge_counts_board ON badge_counts (community_id, held DESC, joined_at, profile_id);

-- The badge changes no copy has yet: written with the change, as score_events are for scores. One row
-- per member whose count a write changed, with the count they held before it (a copy's board row to clear).
CREATE TABLE badge_events (
    event_id      bigserial   PRIMARY KEY,
    community_id  bigint      NOT NULL,
    profile_id    uuid        NOT NULL,
    held_before   integer     NOT NULL,
    score_version bigint      NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    mirrored      boolean     NOT NULL DEFAULT true
);
CREATE INDEX badge_events_unmirrored ON badge_events (event_id) WHERE NOT mirrored;

CREATE FUNCTION profiles_count_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE communities c SET members = c.members + d.n, launched_at = least(c.launched_at, d.launched)
          FROM (SELECT community_id, count(*) AS n, min(joined_at) AS launched FROM new_rows GROUP BY community_id) d
         WHERE c.community_id = d.community_id;
    ELSIF TG_OP = 'UPDATE' THEN
        -- The launch only moves earlier; the board's copy of joined_at follows the profile.
        UPDATE communities c SET launched_at = least(c.launched_at, d.launched)
          FROM (SELECT community_id, min(joined_at) AS launched FROM new_rows GROUP BY community_id) d
         WHERE c.community_id = d.community_id AND (c.launched_at IS NULL OR d.launched < c.launched_at);
        UPDATE badge_counts b SET joined_at = n.joined_at
          FROM new_rows n WHERE b.profile_id = n.profile_id AND b.community_id = n.community_id
           AND b.joined_at <> n.joined_at;
    ELSE
        UPDATE communities c SET members = c.members - d.n
          FROM (SELECT community_id, count(*) AS n FROM old_rows GROUP BY community_id) d
         WHERE c.community_id = d.community_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER profiles_members_on_insert AFTER INSERT ON profiles
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION profiles_count_members();
CREATE TRIGGER profiles_members_on_update AFTER UPDATE ON profiles
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION profiles_count_members();
CREATE TRIGGER profiles_members_on_delete AFTER DELETE ON profiles
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION profiles_count_members();
