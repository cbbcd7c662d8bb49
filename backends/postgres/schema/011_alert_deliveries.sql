-- Alert DMs are recorded as due before they are sent and removed once Discord took them: a crash or a
-- transient Discord error neither loses an alert nor sends it twice. One due alert per member: a newer
-- change replaces one not sent yet.
CREATE TABLE alerts_due (
    community_id    bigint      NOT NULL REFERENCES communities ON DELETE CASCADE,
    discord_user_id bigint      NOT NULL,
    content         text        NOT NULL,
    urgent          boolean     NOT NULL,  -- losing eligibility: past the daily cap, once per loss period
    due_at          timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    claimed_until   timestamptz,  -- a process is sending it: others leave it alone until then
    PRIMARY KEY (community_id, discord_user_id)
);
CREATE INDEX alerts_due_oldest ON alerts_due (due_at);

-- When a member was last told they lost eligibility (at most once per loss period, even past the cap).
ALTER TABLE alert_subscriptions ADD COLUMN last_loss_sent_at timestamptz;
