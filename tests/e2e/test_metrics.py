"""The Prometheus endpoint and /healthz, as a scraper sees them."""

from __future__ import annotations

import socket

import aiohttp

from bot.app.metrics import Metrics
from bot.app.metrics_server import MetricsServer
from bot.routing.breaker import CircuitBreaker


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
    server = MetricsServer(metrics, "127.0.0.1", port, lambda: {"breakers": {"scylla": breaker.state}})
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
                assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                health = await response.json()
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
    assert health == {"status": "ok", "breakers": {"scylla": "open"}}
