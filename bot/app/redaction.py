"""Keeps Discord's interaction tokens (15-minute reply credentials) out of the logs: nextcord writes
request routes and gateway payloads at DEBUG, and both carry them."""

from __future__ import annotations

import logging
import re

# /interactions/<id>/<token>/callback, /webhooks/<app id>/<token>, and "token": "..." in payloads
_ROUTE = re.compile(r"(/(?:interactions|webhooks)/\d+/)[^/\s'\"?]+")
_FIELD = re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+""")
REDACTED = "<redacted>"


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = _FIELD.sub(rf"\g<1>{REDACTED}", _ROUTE.sub(rf"\g<1>{REDACTED}", message))
        if clean != message:
            record.msg, record.args = clean, None
        return True


def redact_discord_logs() -> None:
    """Filter every nextcord logger (each module logs on its own; a filter on a parent does not apply)."""
    redact = RedactTokens()
    names = [n for n in logging.root.manager.loggerDict if n == "nextcord" or n.startswith("nextcord.")]
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(redact)
