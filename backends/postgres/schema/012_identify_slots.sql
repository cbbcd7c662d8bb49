-- When a shard of the bot last IDENTIFYed with Discord, per concurrency bucket: Discord allows one IDENTIFY
-- per bucket every 5 seconds across every process of the bot (`max_concurrency`).
CREATE TABLE identify_slots (
    bucket     integer     PRIMARY KEY,
    last_at    timestamptz NOT NULL
);
