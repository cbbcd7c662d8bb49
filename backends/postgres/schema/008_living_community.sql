-- The living community: a score feed that is safe to retry, roles that follow the board, and alerts.

-- A transaction already applied to a member's board is not applied again (an indexer's retry). Kept
-- apart from score history, whose retention would otherwise decide how long a retry stays safe.
CREATE TABLE applied_transactions (
    community_id bigint      NOT NULL REFERENCES communities ON DELETE CASCADE,
    profile_id   uuid        NOT NULL,
    board        text        NOT NULL,
    tx_hash      text        NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, profile_id, board, tx_hash)
);

-- One feed token per community; only its SHA-256 is kept, the token is shown once.
CREATE TABLE ingest_tokens (
    community_id bigint      PRIMARY KEY REFERENCES communities ON DELETE CASCADE,
    token_sha256 bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The Discord roles a community hands out by position, and who must be eligible to hold the gated ones.
CREATE TABLE community_roles (
    community_id     bigint  PRIMARY KEY REFERENCES communities ON DELETE CASCADE,
    naib_role        bigint,
    fedaykin_role    bigint,
    at_risk_role     bigint,
    waiting_role     bigint,
    minimum_balance  numeric,
    rule_id          text    NOT NULL DEFAULT 'holders'
);

-- Each member's last synced standing, and the roles the bot holds them at (what a sync diffs against).
CREATE TABLE member_standing (
    community_id    bigint      NOT NULL REFERENCES communities ON DELETE CASCADE,
    discord_user_id bigint      NOT NULL,
    status          text        NOT NULL,  -- naib | fedaykin | at_risk | waiting | none
    position        integer,
    roles           bigint[]    NOT NULL DEFAULT '{}',
    changed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, discord_user_id)
);

-- What a sync could not do (a role above the bot's own, a member who left), for admins to read.
CREATE TABLE role_problems (
    community_id    bigint      NOT NULL REFERENCES communities ON DELETE CASCADE,
    discord_user_id bigint      NOT NULL,
    role_id         bigint      NOT NULL,
    problem         text        NOT NULL,
    seen_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, discord_user_id, role_id)
);

-- Members who asked for DMs when their standing changes.
CREATE TABLE alert_subscriptions (
    community_id    bigint      NOT NULL REFERENCES communities ON DELETE CASCADE,
    discord_user_id bigint      NOT NULL,
    enabled         boolean     NOT NULL,
    last_sent_at    timestamptz,
    note            text,  -- why the bot switched it off (DMs closed)
    PRIMARY KEY (community_id, discord_user_id)
);
