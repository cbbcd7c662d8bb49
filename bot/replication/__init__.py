"""The copy from the source of truth to the other stores: writes, the outbox relay, backfill, rebuilds, verify."""
