"""Every process's report reaches the migration page through PostgreSQL: fresh reports add up, a stale one
drops out, and the page says how many processes reported."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg_pool import AsyncConnectionPool

from bot.app.process_report import ProcessReporter
from bot.app.recent_window import RecentWindow
from bot.routing.breaker import CircuitBreaker
from tests.wiring import app


def position_on_postgres(figures: dict[str, Any]) -> dict[str, Any]:
    command = next(c for c in figures["commands"] if c["command"] == "position")
    return {"answered": command["backends"][0]["answered"], "shadow": command["shadow"]}


async def test_the_page_adds_up_the_fresh_reports_of_every_process(pool: AsyncConnectionPool[Any]) -> None:
    reports = app(pool).process_reports()
    before = await app(pool).migration_page().figures()  # a page of its own each time: nothing cached
    named = {f"test-{uuid.uuid4().hex[:8]}-{i}" for i in range(3)}
    one, two, gone = sorted(named)

    for name, answers in ((one, 3), (two, 4), (gone, 50)):
        window = RecentWindow()
        for _ in range(answers):
            window.call("position", "postgres", "ok", 0.012)
        window.shadow("position", "scylla", "mismatch")
        breaker = CircuitBreaker("postgres", failures=1)
        if name == two:
            breaker.record_failure()
        reporter = ProcessReporter(reports, window, {"postgres": breaker}, shards=[int(name[-1])])
        reporter.name = name
        await reporter.report_once()
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE process_reports SET reported_at = now() - interval '5 minutes' WHERE process = %s", (gone,)
        )

    after = await app(pool).migration_page().figures()
    listed = {p["process"]: p["shards"] for p in after["processes"]["list"]}
    assert listed[one] == [int(one[-1])] and listed[two] == [int(two[-1])] and gone not in listed
    assert after["processes"]["reporting"] == before["processes"]["reporting"] + 2
    was, now = position_on_postgres(before), position_on_postgres(after)
    assert now["answered"] == was["answered"] + 7
    assert now["shadow"]["mismatch"] == was["shadow"]["mismatch"] + 2
    assert now["shadow"]["compared"] == was["shadow"]["compared"] + 2
    assert after["breakers"]["postgres"]["open"] == before["breakers"]["postgres"].get("open", 0) + 1
    if not before["processes"]["reporting"]:  # only these two: their 7 answers all took 12 ms
        p50 = next(c for c in after["commands"] if c["command"] == "position")["backends"][0]["p50_ms"]
        assert p50 == 15.0
