-- The outbox for copies of the source of truth: an event not yet mirrored waits here, durably,
-- written in the same transaction as the score change it describes.
ALTER TABLE score_events ADD COLUMN mirrored boolean NOT NULL DEFAULT true;
CREATE INDEX score_events_unmirrored ON score_events (event_id) WHERE NOT mirrored;
