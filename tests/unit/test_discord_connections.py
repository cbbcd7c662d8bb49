"""The pool of connections to Discord shrinks back after a burst: steady traffic keeps to the connection
released last, and the ones the burst opened are closed once their keep-alive runs out."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from bot.discord.connections import RecentFirstConnector

BURST = 6
KEEPALIVE = 0.4


async def _open_after_burst(connector: aiohttp.TCPConnector) -> int:
    """Connections the server holds after a burst of BURST requests in flight, then one request every
    20 ms for four keep-alive periods."""
    arrived = asyncio.Event()
    waiting = 0

    async def answer(request: web.Request) -> web.Response:
        nonlocal waiting
        waiting += 1
        if waiting == BURST:
            arrived.set()
        await asyncio.wait_for(arrived.wait(), timeout=5)  # the burst's requests are all in flight at once
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(connector=connector) as session:

            async def get() -> None:
                async with session.get(f"http://127.0.0.1:{port}/") as r:
                    assert r.status == 200

            await asyncio.gather(*(get() for _ in range(BURST)))
            assert runner.server is not None
            assert len(runner.server.connections) == BURST
            end = asyncio.get_running_loop().time() + 4 * KEEPALIVE
            while asyncio.get_running_loop().time() < end:
                await get()
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)  # the closed connections reach the server
            return len(runner.server.connections)
    finally:
        await runner.cleanup()


async def test_the_connections_a_burst_opened_are_closed_under_steady_traffic() -> None:
    assert await _open_after_burst(RecentFirstConnector(keepalive_timeout=KEEPALIVE)) == 1


async def test_aiohttps_own_pool_keeps_every_connection_of_the_burst() -> None:
    """Why the connector exists: aiohttp's pool cycles through them all, so none is ever idle long enough."""
    assert await _open_after_burst(aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE)) == BURST
