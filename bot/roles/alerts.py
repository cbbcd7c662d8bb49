"""Alert DMs: members who opted in (`/alerts on`) hear when their standing changes, at most once per
period (a day by default); losing eligibility is told past that cap, but at most once per loss period
(an hour by default), so a score flapping across the entry does not spam.

An alert is recorded as due first (by the sync that found it, after the standings it follows from) and
then delivered by a loop of its own, paced, oldest first: it is removed only once Discord took it, so a
crash or a transient error neither loses it nor sends it twice. A member Discord will not let the bot
message (DMs closed, no server in common) is switched off with a note `/alerts status` shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from backends.protocol import Community, utcnow
from backends.roles import DueAlert
from bot.discord.members import CANNOT_DM, NO_MUTUAL_GUILDS, MemberGatewayError
from bot.roles.standing import Alert
from bot.roles.stores import Subscriptions
from bot.rounds import Rounds, RoundWatch, run_rounds

log = logging.getLogger(__name__)

DMS_CLOSED = "DMs closed: Discord refused a message to this member"
NOT_REACHABLE = {CANNOT_DM: DMS_CLOSED, NO_MUTUAL_GUILDS: "Discord refused a message: no server in common with the bot"}
BATCH = 50  # due alerts read at once

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
    def __init__(
        self,
        store: Subscriptions,
        dms: DirectMessages | None,
        period_seconds: float = 86400.0,
        *,
        loss_period_seconds: float = 3600.0,
        per_second: float = 1.0,
    ) -> None:
        """`per_second`: DMs this process sends at most (Discord punishes bursts of DMs)."""
        self.store = store
        self.dms = dms
        self.period = timedelta(seconds=period_seconds)
        self.loss_period = timedelta(seconds=loss_period_seconds)
        self.gap = 1.0 / per_second
        self.wake = asyncio.Event()
        self._last_sent = float("-inf")
        self._stop: asyncio.Event | None = None

    async def send(self, community: Community, alerts: Sequence[Alert]) -> int:
        """Record the subscribers' alerts among `alerts` as due (within their caps) and wake the delivery;
        return how many were recorded."""
        if self.dms is None:
            return 0
        guild = community.community_id
        subscribed = await self.store.subscriptions(guild, [a.discord_user_id for a in alerts])
        now = utcnow()
        due: list[tuple[int, str, bool]] = []
        for alert in alerts:
            sub = subscribed.get(alert.discord_user_id)
            if sub is None:
                continue
            last, period = (
                (sub.last_loss_sent_at, self.loss_period) if alert.urgent else (sub.last_sent_at, self.period)
            )
            if last is not None and now - last < period:
                log.info(
                    "alert held back (one per period) guild=%s user=%s events=%s",
                    guild,
                    alert.discord_user_id,
                    alert.events,
                )
                continue
            due.append((alert.discord_user_id, alert_text(community, alert), alert.urgent))
        await self.store.put_due(guild, due)
        if due:
            self.wake.set()
        return len(due)

    async def deliver_due(self) -> int:
        """Send the due alerts, oldest first, at the pace allowed; return how many Discord took. Raises
        (the round is tried again later) when Discord could not take one now."""
        if self.dms is None:
            return 0
        sent = 0
        while due := await self.store.due(BATCH):
            for alert in due:
                if self._stop is not None and self._stop.is_set():
                    await self.store.release(due[due.index(alert) :])  # stopping: the rest stays due
                    return sent
                await self._pace()
                if await self._deliver(alert):
                    sent += 1
            if len(due) < BATCH:
                break
        return sent

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self._last_sent + self.gap - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_sent = loop.time()

    async def _deliver(self, alert: DueAlert) -> bool:
        assert self.dms is not None
        try:
            await self.dms.send_dm(alert.discord_user_id, alert.content)
        except MemberGatewayError as exc:
            note = NOT_REACHABLE.get(exc.code)
            if note is None:
                await self.store.not_delivered(alert, drop=False)
                raise  # a rate limit or a server error: this round ends, the alert stays due
            await self.store.subscribe(alert.community_id, alert.discord_user_id, False, note=note)
            await self.store.not_delivered(alert, drop=True)
            log.warning(
                "alerts switched off guild=%s user=%s reason=%s", alert.community_id, alert.discord_user_id, note
            )
            return False
        await self.store.delivered(alert, utcnow())
        return True

    async def run(self, stop: asyncio.Event, watch: RoundWatch | None = None) -> None:
        """Deliver what is due now and whenever an alert is recorded, and every minute for what a failed
        round or another process left due."""
        self._stop = stop
        await run_rounds(self.deliver_due, Rounds("alert-dms", 60.0, wake=self.wake), stop, watch)
