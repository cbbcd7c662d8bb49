"""Settings overrides, the rate limiter, the progress bar and leaderboard button ids."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.app.settings import SettingsError, load_settings
from bot.cli.progress import ProgressBar
from bot.discord.ratelimit import RateLimiter
from cogs.leaderboard import parse_custom_id

SETTINGS = Path(__file__).parents[2] / "config" / "settings.yaml"


def test_environment_overrides_keep_their_types() -> None:
    settings = load_settings(
        SETTINGS,
        {
            "SIETCH_POSTGRES_DSN": "postgresql://db/x",
            "SIETCH_POSTGRES_POOL_MAX_SIZE": "25",
            "SIETCH_DISCORD_DEFER_AFTER_SECONDS": "0.5",
        },
    )
    assert settings["postgres"]["dsn"] == "postgresql://db/x"
    assert settings["postgres"]["pool_max_size"] == 25
    assert settings["discord"]["defer_after_seconds"] == 0.5


def test_a_bad_override_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="SIETCH_POSTGRES_POOL_MAX_SIZE='many': expected a int"):
        load_settings(SETTINGS, {"SIETCH_POSTGRES_POOL_MAX_SIZE": "many"})


@pytest.mark.parametrize("share", ["0", "-0.5", "1.5"])
def test_a_busy_share_outside_zero_to_one_is_refused(share: str) -> None:
    with pytest.raises(SettingsError, match=r"recalculation\.max_busy_share is .*above 0 and at most 1"):
        load_settings(SETTINGS, {"SIETCH_RECALCULATION_MAX_BUSY_SHARE": share})
    assert load_settings(SETTINGS, {})["recalculation"]["max_busy_share"] == 1.0


def test_a_missing_settings_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.yaml", {})


def test_rate_limit_allows_n_per_minute_then_says_when() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.acquire(1, 7, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    now[0] = 20.0
    assert limiter.acquire(1, 7, 3) == pytest.approx(40.0)
    assert limiter.acquire(2, 7, 3) == 0.0  # another community counts apart
    now[0] = 60.0
    assert limiter.acquire(1, 7, 3) == 0.0
    now[0] = 500.0
    limiter.forget_idle()
    assert limiter._calls == {}


def test_progress_bar_without_a_terminal_prints_each_tenth_once() -> None:
    out = io.StringIO()
    bar = ProgressBar(100, "loading", stream=out)
    for _ in range(100):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1].startswith("loading [") and "100/100" in lines[-1]


@pytest.mark.parametrize(
    ("custom_id", "parsed"),
    [
        ("lb:conviction:2:42", ("conviction", 2, 42)),
        ("lb:activity:1:7", ("activity", 1, 7)),
        ("lb:conviction:0:42", None),
        ("lb:karma:2:42", None),
        ("lb:conviction:x:42", None),
        ("other:1", None),
    ],
)
def test_button_ids(custom_id: str, parsed: object) -> None:
    assert parse_custom_id(custom_id) == parsed


def test_the_rate_limiter_forgets_users_a_minute_after_their_last_call() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0], max_users=50_000)
    for user in range(20_000):
        assert limiter.acquire(1, user, 10) == 0.0
    assert len(limiter) == 20_000
    now[0] = 61.0
    assert limiter.acquire(1, 99_999, 10) == 0.0  # no sweep asked for: idle windows go on their own
    assert len(limiter) == 1


def test_the_rate_limiter_keeps_at_most_its_bound() -> None:
    limiter = RateLimiter(clock=lambda: 0.0, max_users=1000)
    for user in range(5000):
        limiter.acquire(1, user, 10)
    assert len(limiter) == 1000


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("<@123456789012345678> hi", "\\<@\u200b123456789012345678> hi"),  # no mention
        ("<#123> <t:1700000000:R>", "\\<#123> \\<t:1700000000:R>"),  # no channel link, no timestamp
        ("see https://evil.example", "see https:\\/\\/evil.example"),  # no link
        ("\u202eevil\u200b\u2066", "evil"),  # no bidi override, nothing invisible
        ("a\x00b\tc", "ab c"),
        ("@everyone", "@\u200beveryone"),
        ("**bold** _it_", "\\*\\*bold\\*\\* \\_it\\_"),
    ],
)
def test_member_names_are_shown_as_plain_text(name: str, shown: str) -> None:
    from bot.discord.embeds import _name

    assert _name(name) == shown
