"""Peak memory (RSS) and wall time of `sietch import`, `sietch backfill` and `sietch verify` on one
community of N members, each run as an admin runs it: the `sietch` entry point as a process of its own,
configured through SIETCH_* environment variables.

    .venv/bin/python -m bench.rss --members 1000000 [--sample 5000] [--json out.json]

From Python (the benchmark calls it this way):

    from bench.rss import measure, measure_rss
    result = measure(1_000_000)                # blocking: servers, CSV, the three commands
    result = await measure_rss(1_000_000)      # the same, off the event loop

Steps: start an embedded PostgreSQL of its own (`.run/bench-rss/postgres`) unless `postgres_dsn` is
given; use the CQL node on 127.0.0.1 (started by tools/cql-node/node.sh if nothing answers); write a
CSV of N members to a temporary file, a block at a time; run `sietch migrate`, then `sietch import
GUILD FILE` with PostgreSQL alone configured (so the import is measured without the backfill an import
with a copy configured runs after it), then `sietch backfill --guild GUILD` and `sietch verify --guild
GUILD --sample S` with the CQL node configured (its request timeout raised to `cql_timeout`, 30 s: a
development node shared with other work answers slower than a cluster). Unless `postgres_dsn` and
`keyspace` are given, the run creates a database and a keyspace of its own (`sietch_rss_<pid>_<random>`,
so runs at the same time never share them) and drops them at the end.

Each command's peak RSS is the `ru_maxrss` that `os.wait4` reports for its process; the returned dict
holds, per step, `peak_rss_mib`, `seconds`, `exit` and the last lines it printed, and `within_limit`
says whether import, backfill and verify stayed under LIMIT_MIB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PG_DIR = ROOT / ".run" / "bench-rss" / "postgres"
RUN_NAME = "sietch_rss"  # + the process id and a random suffix: the database and keyspace of one run
LIMIT_MIB = 300
HEADER = "discord_user_id,wallet_address,nym,joined_at,conviction,activity\n"
NAMES = ("Stilgar", "Chani", "Jamis", "Harah", "Liet", "Otheym", "Korba", "Farok", "Alia", "Leto")
BLOCK_ROWS = 10_000


def write_csv(path: Path, members: int, seed: int = 0) -> int:
    """N members in the format `sietch import` reads, written a block of rows at a time; returns the bytes.

    Long-tailed convictions with 4 decimals (~5 % zeros), activity 0..499, a wallet and a join time each,
    a name for ~90 % of them; Discord ids are distinct, so the file imports as N new members.
    """
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for lo in range(0, members, BLOCK_ROWS):
            block = []
            for i in range(lo, min(lo + BLOCK_ROWS, members)):
                conviction = f"{rng.paretovariate(1.2) * 100 - 100:.4f}" if rng.random() > 0.05 else "0"
                nym = f"{rng.choice(NAMES)}{i}" if rng.random() > 0.1 else ""
                joined = (start + timedelta(seconds=rng.randrange(0, 365 * 86400))).isoformat()
                block.append(
                    f"{700_000_000_000_000_000 + i},0x{rng.getrandbits(160):040x},{nym},{joined},"
                    f"{conviction},{rng.randrange(0, 500)}\n"
                )
            out.write("".join(block))
    return path.stat().st_size


def _sietch() -> list[str]:
    """The installed `sietch` entry point beside this interpreter, else the module."""
    entry = Path(sys.executable).with_name("sietch")
    return [str(entry)] if entry.exists() else [sys.executable, "-m", "bot"]


def run_measured(args: list[str], env: dict[str, str], logs: Path, name: str) -> dict[str, Any]:
    """Run one `sietch` command to the end; its peak RSS (ru_maxrss from wait4), wall time, exit code and the
    last lines of its output (the whole output is kept in `logs`)."""
    out_path, err_path = logs / f"{name}.stdout", logs / f"{name}.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([*_sietch(), *args], cwd=ROOT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    return {
        "command": ["sietch", *args],
        "exit": proc.returncode,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "seconds": round(seconds, 1),
        "stdout_tail": out_path.read_text(errors="replace").splitlines()[-4:],
        "stderr_tail": err_path.read_text(errors="replace").splitlines()[-4:],
    }


@contextlib.contextmanager
def postgres_database(dsn: str | None, name: str, directory: Path = PG_DIR) -> Iterator[str]:
    """`dsn` as given, else a new database `name` on an embedded server of its own in `directory`, dropped
    after."""
    if dsn:
        yield dsn
        return
    from backends.postgres.embedded import start_embedded

    own_dsn, server = start_embedded(directory, name)
    try:
        yield own_dsn
    finally:
        with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        server.cleanup()


@contextlib.contextmanager
def _keyspace(port: int, keyspace: str | None, name: str) -> Iterator[str]:
    """Start the CQL node if nothing answers on `port`; `keyspace` as given, else `name`, dropped after
    (`sietch migrate` creates it)."""
    from backends.scylla.session import CqlSettings, connect
    from bench import env

    if port == env.cql_port():
        env.ensure_cql_node()  # the benchmark's node: started when nothing answers
    else:
        cluster, _ = connect(CqlSettings(hosts=["127.0.0.1"], port=port, connect_timeout_seconds=10))
        cluster.shutdown()
    if keyspace is not None:
        yield keyspace
        return
    try:
        yield name
    finally:
        cluster, session = connect(CqlSettings(hosts=["127.0.0.1"], port=port))
        try:
            session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=300)
        finally:
            cluster.shutdown()


def measure(
    members: int,
    *,
    postgres_dsn: str | None = None,
    cql_port: int | None = None,
    keyspace: str | None = None,
    sample: int = 5000,
    seed: int = 0,
    cql_timeout: float = 30.0,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Import, backfill and verify a community of `members` members through the `sietch` command and
    return each step's peak RSS and wall time (see the module's docstring for the dict and the servers).
    The community is a new random guild, so a shared database or keyspace is never overwritten."""
    from bench.env import cql_port as default_cql_port

    cql_port = cql_port or default_cql_port()
    guild = random.getrandbits(62) | (1 << 60)
    run_name = f"{RUN_NAME}_{os.getpid()}_{random.randrange(16**6):06x}"
    result: dict[str, Any] = {"members": members, "guild": guild, "sample": sample, "limit_mib": LIMIT_MIB}
    with (
        _keyspace(cql_port, keyspace, run_name) as cql_keyspace,
        postgres_database(postgres_dsn, run_name) as dsn,
        tempfile.TemporaryDirectory(prefix="sietch-rss-", dir=workdir) as tmp,
    ):
        logs = Path(tmp)
        csv_path = logs / "members.csv"
        started = time.perf_counter()
        result["csv_mib"] = round(write_csv(csv_path, members, seed) / 2**20, 1)
        result["generate_s"] = round(time.perf_counter() - started, 1)
        base = {k: v for k, v in os.environ.items() if not k.startswith("SIETCH_") and k != "DISCORD_TOKEN"}
        postgres_only = {**base, "SIETCH_POSTGRES_DSN": dsn}
        with_copy = {
            **postgres_only,
            "SIETCH_SCYLLA_HOSTS": "127.0.0.1",
            "SIETCH_SCYLLA_PORT": str(cql_port),
            "SIETCH_SCYLLA_KEYSPACE": cql_keyspace,
            # The default (1 s) suits a dedicated cluster; a shared development node answers slower.
            "SIETCH_SCYLLA_REQUEST_TIMEOUT_SECONDS": str(cql_timeout),
        }
        steps: list[tuple[str, list[str], dict[str, str]]] = [
            ("migrate", ["migrate"], with_copy),
            ("import", ["import", str(guild), str(csv_path), "--name", f"rss-{members}"], postgres_only),
            ("backfill", ["backfill", "--guild", str(guild)], with_copy),
            ("verify", ["verify", "--guild", str(guild), "--sample", str(sample)], with_copy),
        ]
        for name, args, env in steps:
            result[name] = step = run_measured(args, env, logs, name)
            if step["exit"] != 0:
                result["failed"] = name
                break
    result["within_limit"] = {
        name: name in result and result[name]["exit"] == 0 and result[name]["peak_rss_mib"] < LIMIT_MIB
        for name in ("import", "backfill", "verify")
    }
    return result


async def measure_rss(members: int, **options: Any) -> dict[str, Any]:
    """`measure` in a worker thread, for callers on an event loop."""
    return await asyncio.to_thread(measure, members, **options)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rss", description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=1_000_000)
    p.add_argument("--sample", type=int, default=5000, help="`sietch verify --sample` (default 5000; 0: all)")
    p.add_argument("--postgres-dsn", default=None, help="a server to use instead of an embedded one of its own")
    p.add_argument("--cql-port", type=int, default=None, help="default $SIETCH_BENCH_CQL_PORT or 9042")
    p.add_argument("--json", type=Path, default=None, help="also write the result there")
    args = p.parse_args(argv)
    result = measure(args.members, postgres_dsn=args.postgres_dsn, cql_port=args.cql_port, sample=args.sample)
    print(f"{args.members:,} members, CSV {result['csv_mib']} MiB (written in {result['generate_s']} s)")
    print(f"{'step':<10}{'peak RSS (MiB)':>16}{'wall (s)':>10}{'exit':>6}")
    for name in ("migrate", "import", "backfill", "verify"):
        if name in result:
            step = result[name]
            print(f"{name:<10}{step['peak_rss_mib']:>16}{step['seconds']:>10}{step['exit']:>6}")
    if "failed" in result:
        failed = result[result["failed"]]
        print(f"{result['failed']} failed:", *failed["stderr_tail"], sep="\n  ")
    verdicts = ", ".join(f"{k} {'<' if ok else 'NOT <'} {LIMIT_MIB} MiB" for k, ok in result["within_limit"].items())
    print(verdicts)
    if args.json:
        # as a phase of a run: `python -m bench --report-only --merge-rss` takes it into the report
        from bench.env import code_state

        run = {
            "rss": result,
            "machine": {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
            "code": code_state(),
            "command": f"python -m bench.rss --members {args.members} --sample {args.sample}",
        }
        args.json.write_text(json.dumps(run, indent=1))
    return 0 if "failed" not in result and all(result["within_limit"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
