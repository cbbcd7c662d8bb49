-- Communities, profiles, scores, score history and the eligibility cache: the source of truth.

CREATE TABLE communities (
    community_id          bigint PRIMARY KEY,
    name                  text        NOT NULL DEFAULT '',
    fedaykin              integer     NOT NULL DEFAULT 69,
    naib                  integer     NOT NULL DEFAULT 7,
    at_risk               integer     NOT NULL DEFAULT 63,
    waitlist_end          integer     NOT NULL DEFAULT 100,
    page_size             integer     NOT NULL DEFAULT 10,
    rate_limit_per_minute integer     NOT NULL DEFAULT 10,
    score_version         bigint      NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (naib BETWEEN 1 AND fedaykin),
    CHECK (at_risk BETWEEN 0 AND fedaykin),
    CHECK (waitlist_end >= fedaykin),
    CHECK (page_size BETWEEN 1 AND 100),
    CHECK (rate_limit_per_minute >= 1)
);

CREATE TABLE profiles (
    profile_id      uuid PRIMARY KEY,
    community_id    bigint      NOT NULL REFERENCES communities ON DELETE CASCADE,
    discord_user_id bigint,
    wallet_address  text CHECK (wallet_address = lower(wallet_address)),
    nym             text,
    joined_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (community_id, discord_user_id),
    UNIQUE (community_id, wallet_address)
);

-- joined_at is copied from the profile so one index holds the whole board ordering.
CREATE TABLE scores (
    community_id bigint      NOT NULL,
    profile_id   uuid        NOT NULL REFERENCES profiles ON DELETE CASCADE,
    joined_at    timestamptz NOT NULL,
    conviction   numeric     NOT NULL DEFAULT 0,
    activity     numeric     NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, profile_id)
);

-- Board order is (score DESC, joined_at ASC, profile_id ASC). Negating the score makes it one
-- ascending key, so "everyone ahead of me" is a single row comparison the index can range-scan.
CREATE INDEX scores_conviction_board ON scores (community_id, (-conviction), joined_at, profile_id)
    WHERE conviction > 0;
CREATE INDEX scores_activity_board ON scores (community_id, (-activity), joined_at, profile_id)
    WHERE activity > 0;

CREATE TABLE score_events (
    event_id     bigserial PRIMARY KEY,
    community_id bigint      NOT NULL,
    profile_id   uuid        NOT NULL,
    board        text        NOT NULL CHECK (board IN ('conviction', 'activity')),
    event_type   text        NOT NULL CHECK (event_type IN
                     ('token_hold', 'nft_ownership', 'activity_bonus', 'manual_adjustment', 'decay', 'migration')),
    delta        numeric     NOT NULL,
    value_after  numeric     NOT NULL,
    tx_hash      text,
    score_version bigint     NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX score_events_by_profile ON score_events (community_id, profile_id, created_at);
CREATE INDEX score_events_by_age ON score_events (created_at);

CREATE TABLE eligibility (
    community_id bigint      NOT NULL,
    profile_id   uuid        NOT NULL,
    rule_id      text        NOT NULL,
    eligible     boolean     NOT NULL,
    balance      numeric     NOT NULL,
    checked_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (community_id, profile_id, rule_id)
);

-- Ranked counts per board, kept by statement-level triggers so every write path (score updates,
-- bulk imports, deletes) maintains them and a threshold never counts a whole community.
ALTER TABLE communities
    ADD COLUMN ranked_conviction bigint NOT NULL DEFAULT 0,
    ADD COLUMN ranked_activity   bigint NOT NULL DEFAULT 0;

CREATE FUNCTION scores_count_ranked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Each branch only names the transition table its event has.
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE communities c
           SET ranked_conviction = c.ranked_conviction + d.conviction,
               ranked_activity = c.ranked_activity + d.activity
          FROM (SELECT community_id, count(*) FILTER (WHERE conviction > 0) AS conviction,
                       count(*) FILTER (WHERE activity > 0) AS activity
                  FROM new_rows GROUP BY community_id) d
         WHERE c.community_id = d.community_id AND (d.conviction > 0 OR d.activity > 0);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE communities c
           SET ranked_conviction = c.ranked_conviction - d.conviction,
               ranked_activity = c.ranked_activity - d.activity
          FROM (SELECT community_id, count(*) FILTER (WHERE conviction > 0) AS conviction,
                       count(*) FILTER (WHERE activity > 0) AS activity
                  FROM old_rows GROUP BY community_id) d
         WHERE c.community_id = d.community_id AND (d.conviction > 0 OR d.activity > 0);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER scores_ranked_on_insert AFTER INSERT ON scores
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION scores_count_ranked();
CREATE TRIGGER scores_ranked_on_update AFTER UPDATE ON scores
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION scores_count_ranked();
CREATE TRIGGER scores_ranked_on_delete AFTER DELETE ON scores
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION scores_count_ranked();
