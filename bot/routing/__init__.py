"""Routing: which backend serves a command for a guild (flag file, breakers, latches, readiness), shadow reads."""
