-- The score version from which a copy of a community must hold everything: raised by every write that
-- does not reach the copies through the outbox (imports, member removal, settings, writes with
-- `writes: postgres`). A copy whose last backfill (or acknowledged change) is older is not ready.
ALTER TABLE communities ADD COLUMN copy_floor bigint NOT NULL DEFAULT 0;
