"""The migration page's pure parts: the rolling window and its percentiles across processes, the settings'
token rule, routing reasons grouped, and every value escaped in the HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.app.migration_html import figures_html, page
from bot.app.migration_page import reason_kind, stage
from bot.app.recent_window import SLOT_SECONDS, WINDOW_SECONDS, RecentWindow, merge_buckets, percentile_ms
from bot.app.settings import SettingsError, is_loopback, load_settings

SETTINGS = Path(__file__).parents[2] / "config" / "settings.yaml"
HOSTILE = "<script>alert('x')</script>&"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_latencies_add_up_across_processes_into_bucket_percentiles() -> None:
    one, two = RecentWindow(Clock()), RecentWindow(Clock())
    for _ in range(98):
        one.call("position", "scylla", "ok", 0.004)
    two.call("position", "scylla", "ok", 0.4)
    two.call("position", "scylla", "ok", 0.4)
    two.call("position", "scylla", "timeout", 2.0)  # not an answer: no latency, counted as an outcome
    merged = merge_buckets(w.summary()["latency"]["position"]["scylla"] for w in (one, two))
    assert sum(merged) == 100
    assert percentile_ms(merged, 0.5) == 5.0  # 4 ms lies in the bucket up to 5 ms
    assert percentile_ms(merged, 0.99) == 500.0
    assert two.summary()["outcomes"]["position"]["scylla"] == {"ok": 2, "timeout": 1}


def test_the_window_forgets_what_is_older_than_its_length() -> None:
    clock = Clock()
    window = RecentWindow(clock)
    window.call("threshold", "postgres", "ok", 0.01)
    window.shadow("threshold", "scylla", "mismatch")
    clock.now += WINDOW_SECONDS - SLOT_SECONDS
    assert window.summary()["shadow"] == {"threshold": {"scylla": {"mismatch": 1}}}
    clock.now += SLOT_SECONDS
    assert window.summary() == {"window_seconds": WINDOW_SECONDS, "latency": {}, "outcomes": {}, "shadow": {}}


def test_no_samples_no_percentile_and_past_the_last_bucket_infinity() -> None:
    assert percentile_ms([0] * 24, 0.5) is None
    window = RecentWindow(Clock())
    window.call("leaderboard", "postgres", "ok", 30.0)
    assert percentile_ms(window.summary()["latency"]["leaderboard"]["postgres"], 0.99) == float("inf")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("bot.example.org", False),
    ],
)
def test_which_hosts_only_this_machine_reaches(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_page_open_to_other_machines_needs_a_token() -> None:
    with pytest.raises(SettingsError, match=r"metrics\.host is '0\.0\.0\.0'.*SIETCH_METRICS_PAGE_TOKEN"):
        load_settings(SETTINGS, {"SIETCH_METRICS_HOST": "0.0.0.0"})
    given = load_settings(SETTINGS, {"SIETCH_METRICS_HOST": "0.0.0.0", "SIETCH_METRICS_PAGE_TOKEN": "s3cret"})
    assert given["metrics"]["page_token"] == "s3cret"
    closed = load_settings(SETTINGS, {"SIETCH_METRICS_HOST": "0.0.0.0", "SIETCH_METRICS_PORT": "0"})
    assert closed["metrics"]["page_token"] == ""  # no port, nothing served
    assert load_settings(SETTINGS, {})["metrics"]["host"] == "127.0.0.1"


def test_a_rollout_reason_is_grouped_without_its_bucket() -> None:
    assert reason_kind("rollout 25% bucket 7") == "rollout 25%"
    assert reason_kind("rollout 25% bucket 93 (outside)") == "rollout 25% (outside)"
    assert reason_kind("auto-rollback (error rate 3/4 over 10s)") == "auto-rollback (error rate 3/4 over 10s)"


def test_a_commands_stage_follows_the_flag_file_unless_a_latch_undid_it() -> None:
    latched = {("position", "scylla"): "error rate 9/50 over 300s"}
    assert stage("postgres", None, 0, 0, {}, "position") == "on postgres"
    assert stage("postgres", "postgres", 0, 10, {}, "position") == "on postgres, shadow reads"
    assert stage("postgres", "scylla", 0, 10, {}, "position") == "scylla staged, 0%, shadow reads"
    assert stage("postgres", "scylla", 25, 10, {}, "position") == "rolling out to scylla"
    assert stage("postgres", "scylla", 100, 0, {}, "position") == "moved to scylla"
    assert stage("postgres", "scylla", 100, 0, latched, "position") == "rolled back from scylla (latch)"
    assert stage("postgres", "scylla", 100, 0, latched, "threshold") == "moved to scylla"


def figures(text: str) -> dict[str, Any]:
    """Figures as the page's data module gives them, with `text` wherever an outsider could put text."""
    backend = {"backend": text, "communities": 1, "share": 1.0, "latched": text, "killed": True}
    backend |= {"p50_ms": 5.0, "p99_ms": float("inf"), "answered": 3, "not_ok": 1}
    shadow = {"match": 1, "mismatch": 1, "stale": 0, "other": 1, "compared": 3}
    command = {
        "command": text,
        "stage": text,
        "flags": {
            "backend": text,
            "rollout": 50,
            "stickiness": "community",
            "overrides": 1,
            "fallback": True,
            "shadow": 5,
        },
        "routes": [{"backend": text, "reason": text, "communities": 1, "share": 1.0}],
        "backends": [backend],
        "shadow": shadow,
    }
    return {
        "generated_at": "2026-01-31T12:00:00+00:00",
        "communities": 1,
        "flag_file": {"path": text, "loaded_at": None, "last_error": text, "default_backend": text, "kill": [text]},
        "processes": {"reporting": 0, "within_seconds": 120.0, "list": []},
        "commands": [command],
        "breakers": {text: {text: 1}},
        "outbox": {"pending": 2, "oldest": "2026-01-31T11:59:00+00:00", "lag_seconds": 60.0},
        "snapshots": [
            {"backend": text, "board": text, "newest": None, "newest_age_seconds": None, "oldest": None}
            | {"without": 1, "unknown": 0}
        ],
        "copies": [
            {
                "backend": text,
                "ready": 0,
                "not_ready": 60,
                "by_reason": {text: 60},
                "listed": [{"community": "1", "reason": text}],
            }
        ],
    }


def test_every_value_is_escaped_in_the_page() -> None:
    shown = figures(HOSTILE)
    html = page(shown)
    assert "<script>alert" not in html and HOSTILE not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;" in html
    assert html.count("<script>") == 1  # the page's own
    body = figures_html(shown)
    assert "(first 1 of 60)" in body and "&gt; 10 s" in body and "≤ 5 ms" in body
