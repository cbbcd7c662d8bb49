"""The Redis sorted-set row: a member's position the way a user of Redis would read it, beside ours.

A `redis-server` of its own (Debian's package, `make bench` installs it where absent; never a dependency of the
bot) on a free port of 127.0.0.1, without persistence, its files in a temporary folder under the run's workdir,
stopped at the end even when the measurement fails. One community's conviction board is loaded into one sorted
set (the ranked members, score = conviction in tokens) with pipelined `ZADD`s, then the same sampled members the
backends are timed with are read, as many calls, in this process and event loop (`redis.asyncio`, one
connection), so the client-side cost is paid as ours is:

- `script`: one round trip: `EVALSHA` of a script running `ZREVRANK`, `ZSCORE` and `ZREVRANGE(rank - 1,
  rank + 1) WITHSCORES` on the server (the neighbours' range needs the rank, so plain pipelining cannot
  put the three in one round trip);
- `pipeline`: `ZREVRANK` and `ZSCORE` pipelined, then `ZREVRANGE(rank - 1, rank + 1) WITHSCORES`: two round
  trips, no script.

Redis orders equal scores by the member's bytes (`ZREVRANK`: descending); the member key is the join time
and the profile id, each complemented, so that order is the board's (score, then join time, then profile id)
and a member's Redis rank is its position on our board, checked on the first sampled members.

When `redis-server` or the client is missing, or the server does not start, the result says why
(`not_measured`) and the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import measure
from bench.data import Members

KEY = "board:conviction"
ZADD_CHUNK = 1000  # members per ZADD
PIPELINE_CHUNK = 100  # ZADDs per pipelined round trip
START_WAIT_S = 10.0
STOP_WAIT_S = 10.0
PARITY = 50  # sampled members whose Redis rank is checked against the board's
JOINED_WIDTH = 12  # digits of the complemented join time (seconds after data.START)
UUID_MAX = (1 << 128) - 1

# One round trip: the member's rank and score and the members above and below it.
POSITION_SCRIPT = """
local rank = redis.call('ZREVRANK', KEYS[1], ARGV[1])
if not rank then return false end
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local low = rank - 1
if low < 0 then low = 0 end
return {rank, score, redis.call('ZREVRANGE', KEYS[1], low, rank + 1, 'WITHSCORES')}
"""


def member_key(m: Members, i: int) -> bytes:
    """Join time, then profile id, each complemented: descending member bytes = the board's order of a tie."""
    joined = 10**JOINED_WIDTH - 1 - m.joined_s[i]
    return f"{joined:0{JOINED_WIDTH}d}{UUID_MAX - m.profile_ids[i].int:032x}".encode()


def server_path() -> str | None:
    for name in ("redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _rss_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, MiB."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    return {"rss_mib": out.get("VmRSS", 0.0), "peak_rss_mib": out.get("VmHWM", 0.0)}


class Server:
    """A `redis-server` process of the benchmark's own: no persistence, a temporary folder, one port."""

    def __init__(self, path: str, workdir: Path) -> None:
        self.path = path
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.dir: Path | None = None
        self.port = 0

    async def start(self, client_module: Any) -> Any:
        """Start the server and return a client connected to it (its PING answered)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="redis-", dir=self.workdir))
        self.port = _free_port()
        log = self.dir / "redis.log"
        early = self.dir / "redis.out"  # what it says before its log file is open (a bad argument, a taken port)
        with early.open("wb") as said_early:
            self.proc = await asyncio.create_subprocess_exec(
                self.path,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--logfile",
                str(log),
                "--daemonize",
                "no",
                stdin=subprocess.DEVNULL,
                stdout=said_early,
                stderr=subprocess.STDOUT,
            )
        client = client_module.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + START_WAIT_S
        while True:
            if self.proc.returncode is not None:
                await client.aclose()
                said = [f.read_text(errors="replace").strip() for f in (early, log) if f.exists()]
                tail = " / ".join(x for x in said if x)[-600:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} at start: {tail.strip()}")
            try:
                await client.ping()
                return client
            except (OSError, client_module.ConnectionError) as exc:
                if time.monotonic() > deadline:
                    await client.aclose()
                    raise RuntimeError(
                        f"redis-server did not answer on 127.0.0.1:{self.port} in {START_WAIT_S:g} s"
                    ) from exc
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_WAIT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return out.strip().split("\n")[0] or "unknown"


async def _load(client: Any, m: Members, keys: list[bytes]) -> dict[str, Any]:
    """The ranked members (`keys` in board order) into one sorted set: ZADDs of ZADD_CHUNK members,
    PIPELINE_CHUNK of them a round trip."""
    started = time.perf_counter()
    await client.delete(KEY)
    ranked = m.ranked
    step = ZADD_CHUNK * PIPELINE_CHUNK
    for lo in range(0, len(ranked), step):
        pipe = client.pipeline(transaction=False)
        for at in range(lo, min(lo + step, len(ranked)), ZADD_CHUNK):
            chunk = range(at, min(at + ZADD_CHUNK, len(ranked)))
            pipe.zadd(KEY, {keys[r]: m.conviction[ranked[r]] / 100 for r in chunk})
        await pipe.execute()
    seconds = time.perf_counter() - started
    loaded = int(await client.zcard(KEY))
    if loaded != len(ranked):
        raise RuntimeError(f"the sorted set holds {loaded} members, not the {len(ranked)} ranked")
    return {"members": loaded, "seconds": round(seconds, 2), "members_per_s": round(loaded / max(seconds, 1e-9))}


def _pairs(flat: list[Any]) -> list[tuple[bytes, float]]:
    return [(flat[j], float(flat[j + 1])) for j in range(0, len(flat), 2)]


async def run(
    m: Members,
    sample: measure.Sample,
    calls: int,
    workdir: Path,
    budget_s: float | None = None,
    min_calls: int = 0,
) -> dict[str, Any]:
    """Load the community's board into a server of its own and time the position reads (see the module)."""
    out: dict[str, Any] = {"shape": m.shape, "community_size": m.size}
    path = server_path()
    if path is None:
        out["not_measured"] = "redis-server is not installed (`make bench` installs Debian's redis-server)"
        return out
    try:
        client_module = importlib.import_module("redis.asyncio")
    except ImportError as exc:
        out["not_measured"] = f"the redis client is not installed (requirements/bench.txt): {exc}"
        return out
    out["server"] = {"version": _version(path), "persistence": "none (--save '' --appendonly no)"}
    started = time.perf_counter()
    server = Server(path, workdir)
    client: Any = None
    try:
        try:
            client = await server.start(client_module)
        except Exception as exc:
            out["not_measured"] = f"redis-server did not start: {type(exc).__name__}: {exc}"
            return out
        by_rank = [member_key(m, i) for i in m.ranked]
        out["load"] = await _load(client, m, by_rank)
        keys = [by_rank[rank - 1] for rank in sample.ranks]  # the sampled members, in the backends' order
        n = len(keys)
        script = client.register_script(POSITION_SCRIPT)

        async def one_trip(i: int) -> tuple[int, float, list[tuple[bytes, float]]]:
            rank, score, around = await script(keys=[KEY], args=[keys[i % n]])
            return int(rank), float(score), _pairs(around)

        async def two_trips(i: int) -> tuple[int, float, list[tuple[bytes, float]]]:
            member = keys[i % n]
            pipe = client.pipeline(transaction=False)
            pipe.zrevrank(KEY, member)
            pipe.zscore(KEY, member)
            rank, score = await pipe.execute()
            around = await client.zrevrange(KEY, max(0, rank - 1), rank + 1, withscores=True)
            return int(rank), float(score), [(member, float(s)) for member, s in around]

        mismatches = 0
        for i in range(min(PARITY, n)):
            a, b = await one_trip(i), await two_trips(i)
            if a != b or a[0] + 1 != sample.ranks[i]:
                mismatches += 1
        out["parity"] = {"checked": min(PARITY, n), "mismatches": mismatches}
        ops: dict[str, Any] = {}
        for name, call in (("script", one_trip), ("pipeline", two_trips)):
            samples, cut = await measure.timed(call, calls, budget_s=budget_s, min_calls=min(calls, min_calls))
            ops[name] = measure.summary(samples) | {"stopped_by_budget": cut}
        out["ops"] = ops
        assert server.proc is not None
        out["server"] |= _rss_mib(server.proc.pid)
        info = await client.info("memory")
        out["server"]["used_memory_mib"] = round(int(info.get("used_memory", 0)) / 2**20, 1)
    except Exception as exc:  # reported with the run's other numbers, never fatal to it
        out["not_measured"] = f"{type(exc).__name__}: {exc}"
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
        await server.stop()
        out["seconds"] = round(time.perf_counter() - started, 2)
    return out
