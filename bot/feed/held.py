"""The doors' held requests settled: once a bulk write has let its community go, the requests the doors
held meanwhile (`backends.protocol.HeldWrites`) are applied in the order they came, each whole or refused
alone, and told to the community's followers as any feed write is.

A round every second looks for communities with requests waiting; a request held in this process starts
one at once. Every bot process settles: the community's row orders them, and a request is settled once.
"""

from __future__ import annotations

import asyncio
import logging

from bot.feed.apply import ScoreFeed
from bot.rounds import Rounds, RoundWatch, run_rounds

log = logging.getLogger(__name__)


class HeldSettling:
    def __init__(self, feed: ScoreFeed, interval_seconds: float = 1.0) -> None:
        self.feed = feed
        self.interval = interval_seconds

    async def run(self, stop: asyncio.Event, watch: RoundWatch | None = None) -> None:
        rounds = Rounds("held-writes", self.interval, wake=self.feed.writer.held)
        await run_rounds(self.settle_all, rounds, stop, watch)

    async def settle_all(self) -> int:
        """Settle every community's waiting requests, those a bulk write still has left for later; the
        number settled. One community's failure leaves the others settled and fails the round after."""
        settled = 0
        failed: Exception | None = None
        for guild in await self.feed.writer.held_communities():
            try:
                while outcomes := await self.feed.settle_held(guild):
                    settled += len(outcomes)
                    for o in outcomes:
                        if o.state == "refused":
                            log.warning("held write refused guild=%s write=%s error=%s", guild, o.write_id, o.error)
            except Exception as exc:  # retried by the next round, with the rounds' backoff
                failed = failed or exc
        if settled:
            log.info("held writes settled count=%s", settled)
        if failed is not None:
            raise failed
        return settled
