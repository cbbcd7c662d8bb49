"""The soak's verdict (bench/flatness.py): growth from minutes 5-7 to the last three, medians of each."""

from __future__ import annotations

import pytest

from bench import flatness


def test_windows_of_a_full_soak_are_minutes_5_to_7_and_the_last_three() -> None:
    assert flatness.windows(30) == ([5, 6, 7], [28, 29, 30])
    assert flatness.windows(10) == ([5, 6, 7], [8, 9, 10])


@pytest.mark.parametrize(
    ("minutes", "early", "late"),
    [(9, [4, 5, 6], [7, 8, 9]), (3, [2], [3]), (2, [1], [2]), (1, [], [])],
)
def test_a_short_soak_gets_shorter_windows_that_never_overlap(minutes: int, early: list[int], late: list[int]) -> None:
    assert flatness.windows(minutes) == (early, late)


def test_one_slow_minute_in_a_window_does_not_decide() -> None:
    series: list[float | None] = [100.0] * 30
    series[5] = 180.0  # minute 6: a rebuild landed in it
    series[28] = 160.0  # minute 29
    g = flatness.growth(series)
    assert g["from"] == 100.0 and g["to"] == 100.0
    assert g["growth"] == 0.0 and g["passed"] is True and g["shortened"] is False


def test_growth_past_the_limit_fails_and_within_it_passes() -> None:
    grew = [100.0] * 27 + [106.0] * 3
    assert flatness.growth(grew)["growth"] == pytest.approx(0.06)
    assert flatness.growth(grew)["passed"] is False
    assert flatness.growth([100.0] * 27 + [105.0] * 3)["passed"] is True
    assert flatness.growth([100.0] * 27 + [50.0] * 3)["passed"] is True  # shrinking is flat enough


def test_minutes_with_nothing_measured_are_left_out_and_an_empty_window_is_not_judged() -> None:
    assert flatness.growth([None] * 4 + [10.0, None, 12.0] + [11.0] * 23)["from"] == 11.0
    assert flatness.growth([1.0] * 27 + [None] * 3)["passed"] is None


def test_a_series_that_starts_at_zero_is_flat_only_if_it_stays_there() -> None:
    assert flatness.growth([0.0] * 30)["passed"] is True
    assert flatness.growth([0.0] * 27 + [1.0] * 3)["passed"] is False


def test_the_verdict_passes_only_when_every_judged_series_does() -> None:
    rows = [{"rss_mib": 200.0, "connections": 12, "p99_ms": 40.0} for _ in range(30)]
    assert flatness.verdict(rows)["passed"] is True
    for row in rows[-3:]:
        row["connections"] = 13  # one more connection out of twelve: 8 %
    v = flatness.verdict(rows)
    assert v["connections"]["passed"] is False and v["rss_mib"]["passed"] is True
    assert v["passed"] is False


def test_points_fall_into_the_minute_they_were_taken_in() -> None:
    grouped = flatness.by_minute([(0.0, 1.0), (59.9, 2.0), (60.0, 3.0), (180.0, 4.0), (-1.0, 5.0)], 3)
    assert grouped == [[1.0, 2.0], [3.0], []]
    assert flatness.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.99) == 5.0
    assert flatness.percentile([], 0.5) is None
