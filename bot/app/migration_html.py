"""The migration page as HTML: one table per command, then breakers, the outbox, snapshots and copies.
Every value goes through `html.escape`; the page refreshes itself from /migration.json (its own script,
nothing fetched from elsewhere), or by a meta refresh without scripts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

REFRESH_SECONDS = 5
COMMAND_COLUMNS = "<colgroup>" + "".join(f"<col style='width:{w}%'>" for w in (10, 17, 37, 9, 9, 9, 9)) + "</colgroup>"

STYLE = """
body{font:14px/1.35 system-ui,sans-serif;margin:16px;color:#1d2330;background:#f6f7f9}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:18px 0 6px}
.meta{color:#555;margin-bottom:10px}.meta span{margin-right:14px}
table{border-collapse:collapse;background:#fff;margin-bottom:10px;width:100%}
caption{text-align:left;font-weight:600;padding:6px 0}
th,td{border:1px solid #dde1e7;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:8px;background:#3b7ddd;margin-right:6px;vertical-align:middle}
.bad{color:#b3261e;font-weight:600}.ok{color:#1e7b34}.dim{color:#777}
.cmd{table-layout:fixed}.stage{background:#1d2330;color:#fff;border-radius:3px;padding:1px 6px;margin:0 6px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:0 16px;align-items:start}
"""

SCRIPT = """
(function () {
  var live = document.getElementById("live");
  function tick() {
    fetch("migration.json" + location.search, {cache: "no-store"})
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (page) {
        document.getElementById("figures").innerHTML = page.html;
        live.textContent = "refreshed " + new Date().toLocaleTimeString();
        live.setAttribute("data-refreshed", page.figures.generated_at);
      })
      .catch(function (e) { live.textContent = "refresh failed: " + e.message; });
  }
  tick();
  setInterval(tick, EVERY_MS);
})();
""".replace("EVERY_MS", str(REFRESH_SECONDS * 1000))


def page(figures: Mapping[str, Any]) -> str:
    """The whole document, its figures rendered in (the script replaces them as they change)."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Sietch migration</title><noscript><meta http-equiv=refresh content={REFRESH_SECONDS * 2}></noscript>"
        f"<style>{STYLE}</style></head><body><h1>Sietch: the migration</h1>"
        "<div class=meta><span id=live>served without scripts: reloads itself</span></div>"
        f"<main id=figures>{figures_html(figures)}</main><script>{SCRIPT}</script></body></html>"
    )


def figures_html(f: Mapping[str, Any]) -> str:
    flags = f["flag_file"]
    processes = f["processes"]
    meta = [
        f"as of {_e(_when(f['generated_at']))} UTC (read in {f.get('took_seconds', 0):.2f} s)",
        f"{_e(f['communities'])} communities",
        f"{_e(processes['reporting'])} process(es) reporting within {_e(int(processes['within_seconds']))} s",
        f"flag file {_e(flags['path'])} loaded {_e(_when(flags['loaded_at']) or 'never (defaults in force)')}",
        f"default {_e(flags['default_backend'])}",
    ]
    if flags["kill"]:
        meta.append(f"<span class=bad>kill switch: {_e(', '.join(flags['kill']))}</span>")
    parts = ["<div class=meta>" + "".join(f"<span>{m}</span>" for m in meta) + "</div>"]
    if flags["last_error"]:
        parts.append(f"<p class=bad>Flag file rejected, last good one in force: {_e(flags['last_error'])}</p>")
    if not processes["reporting"]:
        parts.append(
            "<p class=bad>No process has reported recently: latencies, shadow reads and breakers are unknown.</p>"
        )
    parts += [_command(c) for c in f["commands"]]
    parts.append("<div class=grid>")
    parts.append(_breakers(f["breakers"]) + _outbox(f["outbox"]))
    parts.append("</div>")
    parts.append(_snapshots(f["snapshots"]))
    parts += [_copies(c) for c in f["copies"]]
    return "".join(parts)


def _command(c: Mapping[str, Any]) -> str:
    fl = c["flags"]
    target = f"target {_e(fl['backend'])}"
    if fl["rollout"] is not None:
        target += f", rollout {_e(fl['rollout'])}% by {_e(fl['stickiness'])}"
    caption = (
        f"/{_e(c['command'])} <span class=stage>{_e(c['stage'])}</span> {target};"
        f" {_e(fl['overrides'])} guild override(s); shadow {_e(fl['shadow'])}%;"
        f" fallback {'on' if fl['fallback'] else 'off'}"
    )
    head = _row(
        ["Backend", "Communities", "Why", "p50", "p99", "Answered", "Not ok"],
        "th",
    )
    rows = []
    for b in c["backends"]:
        why = [f"{_e(r['reason'])} ({_e(r['communities'])})" for r in c["routes"] if r["backend"] == b["backend"]]
        if b["latched"]:
            why.insert(0, f"<span class=bad>auto-rollback latch: {_e(b['latched'])}</span>")
        if b["killed"]:
            why.insert(0, "<span class=bad>kill switch</span>")
        width = round(b["share"] * 120)
        rows.append(
            "<tr>"
            f"<td><b>{_e(b['backend'])}</b></td>"
            f"<td class=n><span class=bar style='width:{width}px'></span>{_e(b['communities'])}"
            f" ({_pct(b['share'])})</td>"
            f"<td>{'<br>'.join(why) or '<span class=dim>none</span>'}</td>"
            f"<td class=n>{_ms(b['p50_ms'])}</td><td class=n>{_ms(b['p99_ms'])}</td>"
            f"<td class=n>{_e(b['answered'])}</td>"
            f"<td class='n{' bad' if b['not_ok'] else ''}'>{_e(b['not_ok'])}</td></tr>"
        )
    rows.append(f"<tr><td colspan=7>{_shadow(c['shadow'])}</td></tr>")
    return f"<table class=cmd><caption>{caption}</caption>{COMMAND_COLUMNS}{head}{''.join(rows)}</table>"


def _shadow(s: Mapping[str, int]) -> str:
    """The command's consistency: how its shadow comparisons came out."""
    total = s["compared"]
    if not total:
        return "Shadow reads: <span class=dim>none compared recently</span>"
    shown = [
        f"<span class={'bad' if r == 'mismatch' and s[r] else 'ok' if r == 'match' else 'dim'}>"
        f"{_e(r)} {_pct(s[r] / total)} ({_e(s[r])})</span>"
        for r in ("match", "mismatch", "stale")
    ]
    if s["other"]:
        shown.append(f"<span class=dim>no answer to compare {_pct(s['other'] / total)} ({_e(s['other'])})</span>")
    return f"Shadow reads, {_e(total)} compared: " + " · ".join(shown)


def _breakers(breakers: Mapping[str, Mapping[str, int]]) -> str:
    rows = [
        _row(
            [name, ", ".join(f"{state.replace('_', '-')} in {n}" for state, n in sorted(states.items())) or "no report"]
        )
        for name, states in sorted(breakers.items())
    ]
    return _table("Breakers (processes per state)", ["Backend", "State"], rows)


def _outbox(o: Mapping[str, Any]) -> str:
    lag = "none queued" if o["lag_seconds"] is None else f"{o['lag_seconds']} s (oldest queued {_when(o['oldest'])})"
    return _table("Outbox to the copies", ["Events queued", "Copy lag"], [_row([o["pending"], lag])])


def _snapshots(snapshots: Iterable[Mapping[str, Any]]) -> str:
    rows = [
        _row(
            [
                s["backend"],
                s["board"],
                "none" if s["newest"] is None else f"{_when(s['newest'])} ({s['newest_age_seconds']:.0f} s ago)",
                _when(s["oldest"]) or "none",
                s["without"] if not s["unknown"] else f"{s['without']} ({s['unknown']} unreadable)",
            ]
        )
        for s in snapshots
    ]
    head = ["Backend", "Board", "Last rebuild", "Oldest snapshot in force", "Communities without one"]
    return _table("Snapshot rebuilds", head, rows)


def _copies(c: Mapping[str, Any]) -> str:
    summary = _row(
        [c["backend"], c["ready"], c["not_ready"], "; ".join(f"{r}: {n}" for r, n in c["by_reason"].items())]
    )
    out = _table("Copies", ["Backend", "Ready", "Not ready", "Why not (communities)"], [summary])
    if c["listed"]:
        shown = len(c["listed"])
        title = f"{c['backend']}: communities not ready" + (
            f" (first {shown} of {c['not_ready']})" if shown < c["not_ready"] else ""
        )
        out += _table(title, ["Community", "Why"], [_row([x["community"], x["reason"]]) for x in c["listed"]])
    return out


def _table(caption: str, head: list[str], rows: list[str]) -> str:
    return f"<table><caption>{_e(caption)}</caption>{_row(head, 'th')}{''.join(rows)}</table>"


def _row(cells: Iterable[Any], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{_e(c)}</{tag}>" for c in cells) + "</tr>"


def _when(iso: str | None) -> str | None:
    """An ISO time in UTC as the page shows it: 2026-01-31 12:00:00."""
    return iso.replace("T", " ").removesuffix("+00:00") if iso else None


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "<span class=dim>–</span>"
    return "&gt; 10 s" if value == float("inf") else f"≤ {value:g} ms"


def _e(value: Any) -> str:
    return escape(str(value), quote=True)
