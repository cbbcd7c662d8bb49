"""The external sort behind snapshot rebuilds: exact order of exact Decimals, whatever the runs and merges."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest

from backends.scylla import board_sort
from backends.scylla.board_sort import SpillSort

HUGE = Decimal("1" + "0" * 400 + "." + "0" * 17 + "1")  # 10^400 + 10^-18: floats or 28 digits would lose it
SCORES = [HUGE, Decimal("1E+400"), Decimal("0.000000000000000001"), Decimal("7"), Decimal("7.0")]


def board_records(n: int, seed: int) -> list[tuple[Decimal, int, int, str | None, str | None]]:
    rng = random.Random(seed)
    return [
        (rng.choice(SCORES).copy_negate(), rng.randrange(3), rng.getrandbits(128), rng.choice([None, "Chani"]), None)
        for _ in range(n)
    ]


@pytest.mark.parametrize(("n", "run_rows", "fan_in"), [(0, 10, 2), (5, 10, 2), (1000, 37, 3), (1000, 2000, 64)])
def test_records_come_back_in_order_and_exact(tmp_path: Path, n: int, run_rows: int, fan_in: int) -> None:
    records = board_records(n, seed=n)
    sort = SpillSort(tmp_path, "board", run_rows=run_rows, fan_in=fan_in)
    for r in records:
        sort.add(r)
    assert sort.count == n
    out = list(sort.sorted())
    sort.close()
    assert out == sorted(records)
    # Exact: the same digits and exponent, not merely equal values (7 and 7.0 both come back as written).
    assert [str(r[0]) for r in out] == [str(r[0]) for r in sorted(records)]
    assert list(tmp_path.iterdir()) == []  # every run is removed once read


def test_memory_holds_a_run_or_a_chunk_per_merged_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(board_sort, "CHUNK_ROWS", 8)
    sort = SpillSort(tmp_path, "board", run_rows=50, fan_in=4)
    for r in board_records(5000, seed=1):
        sort.add(r)
    assert len(list(sort.sorted())) == 5000
    sort.close()
    assert sort.peak_held <= 50 + 4 * 8  # 100 runs of 50, merged 4 at a time
