"""The Prometheus endpoint and /healthz, as a scraper sees them."""

from __future__ import annotations

import socket

import aiohttp

from bot.app.factories import health_report
from bot.app.health import Heartbeats
from bot.app.metrics import Metrics
from bot.app.metrics_server import MetricsServer
from bot.routing.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_metrics_and_health_are_served() -> None:
    metrics = Metrics()
    breaker = CircuitBreaker("scylla", failures=1, on_change=metrics.breaker)
    metrics.observe("position", "scylla", 1, "ok", 0.004)
    metrics.fallback("position", "scylla", "postgres", "fallback after timeout")
    metrics.shadow("threshold", "scylla", "mismatch")
    metrics.reload(False)
    breaker.record_failure()
    port = free_port()
    clock = Clock()
    beats = Heartbeats(["outbox-relay"], metrics, stale_after_seconds=600, clock=clock)
    beats.succeeded("outbox-relay")
    server = MetricsServer(metrics, "127.0.0.1", port, health_report(beats, {"scylla": breaker}))
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
                assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
                health = await response.json()
            clock.now += 601  # the relay has not finished a round since: unhealthy, and a monitor sees 503
            beats.failed("outbox-relay", ConnectionError("cql down"))
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 503
                stale = await response.json()
    finally:
        await server.stop()
    assert 'sietch_command_seconds_count{backend="scylla",command="position",outcome="ok"} 1.0' in text
    assert (
        'sietch_fallbacks_total{command="position",reason="fallback after timeout",'
        'source="scylla",target="postgres"} 1.0' in text
    )
    assert 'sietch_shadow_results_total{backend="scylla",command="threshold",result="mismatch"} 1.0' in text
    assert 'sietch_flag_reloads_total{result="error"} 1.0' in text
    assert 'sietch_breaker_state{backend="scylla"} 2.0' in text
    assert 'sietch_background_last_success_timestamp_seconds{loop="outbox-relay"} 1e+06' in text
    assert health["status"] == "ok" and health["breakers"] == {"scylla": "open"}
    assert health["loops"]["outbox-relay"]["healthy"] is True
    assert stale["status"] == "unhealthy" and stale["loops"]["outbox-relay"]["healthy"] is False
    assert stale["loops"]["outbox-relay"]["last_error"] == "ConnectionError: cql down"
