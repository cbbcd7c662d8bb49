"""Alert DMs: members who opted in (`/alerts on`) hear when their standing changes, at most once per
period (a day by default) except when they lose eligibility. A member whose DMs are closed is switched
off with a note (shown by `/alerts status`), not retried."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from backends.protocol import Community, utcnow
from bot.discord.members import CANNOT_DM, MemberGatewayError
from bot.roles.standing import Alert
from bot.roles.stores import Subscriptions

log = logging.getLogger(__name__)

DMS_CLOSED = "DMs closed: Discord refused a message to this member"

SENTENCES = {
    "entered": "You are now in the eligible set (Fedaykin).",
    "lost_eligibility": "You are no longer in the eligible set.",
    "gained_naib": "You hold a Naib seat.",
    "lost_naib": "You no longer hold a Naib seat.",
    "at_risk": "You are at risk: near the bottom of the eligible set.",
    "head_of_waiting_pool": "You are at the head of the waiting pool: next in line for entry.",
}


class DirectMessages(Protocol):
    async def send_dm(self, user_id: int, content: str) -> None: ...


def alert_text(community: Community, alert: Alert) -> str:
    where = f"**{community.name}**" if community.name else f"server {community.community_id}"
    position = f" Your position: {alert.position}." if alert.position is not None else ""
    lines = " ".join(SENTENCES[e] for e in alert.events)
    return f"{where}: {lines}{position}\n-# Use /alerts off in the server to stop these messages."


class AlertSender:
    def __init__(self, store: Subscriptions, dms: DirectMessages | None, period_seconds: float = 86400.0) -> None:
        self.store = store
        self.dms = dms
        self.period = timedelta(seconds=period_seconds)

    async def send(self, community: Community, alerts: Sequence[Alert]) -> int:
        """DM the subscribers among `alerts`; return how many were sent."""
        guild = community.community_id
        subscribed = await self.store.subscriptions(guild, [a.discord_user_id for a in alerts])
        sent = 0
        for alert in alerts:
            sub = subscribed.get(alert.discord_user_id)
            if sub is None or self.dms is None:
                continue
            now = utcnow()
            if not alert.urgent and sub.last_sent_at is not None and now - sub.last_sent_at < self.period:
                log.info(
                    "alert held back (one per period) guild=%s user=%s events=%s",
                    guild,
                    alert.discord_user_id,
                    alert.events,
                )
                continue
            try:
                await self.dms.send_dm(alert.discord_user_id, alert_text(community, alert))
            except MemberGatewayError as exc:
                if exc.code == CANNOT_DM:
                    await self.store.subscribe(guild, alert.discord_user_id, False, note=DMS_CLOSED)
                    log.warning("alerts switched off: DMs closed guild=%s user=%s", guild, alert.discord_user_id)
                else:
                    log.warning("alert not sent guild=%s user=%s error=%s", guild, alert.discord_user_id, exc)
                continue
            await self.store.alert_sent(guild, alert.discord_user_id, now)
            sent += 1
        return sent
