-- Writes a door held while a bulk write had their community (backends/postgres/held_writes.py): each
-- request whole, durable before it is answered 202, applied in write_id order once the bulk write is done,
-- its outcome kept for a week so the sender can read it. No foreign key to communities: a request of a
-- community removed meanwhile is refused when it is settled, and its outcome can still be read.

CREATE TABLE held_writes (
    write_id      bigserial   PRIMARY KEY,
    community_id  bigint      NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('scores', 'badges')),
    items         jsonb       NOT NULL,
    item_count    integer     NOT NULL,
    state         text        NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'applied', 'refused')),
    score_version bigint,
    error         text,
    queued_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    done_at       timestamptz
);
-- The queue: a community's waiting writes in order, and which communities have any.
CREATE INDEX held_writes_queued ON held_writes (community_id, write_id) WHERE state = 'queued';
CREATE INDEX held_writes_done ON held_writes (done_at) WHERE state <> 'queued';
