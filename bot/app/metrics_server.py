"""Serves /metrics (Prometheus text) and /healthz (liveness) over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.app.metrics import Metrics


class MetricsServer:
    def __init__(
        self, metrics: Metrics, host: str, port: int, health: Callable[[], tuple[bool, dict[str, Any]]]
    ) -> None:
        """`health()`: (healthy, what /healthz adds to its status); unhealthy answers 503."""
        self.metrics = metrics
        self.host = host
        self.port = port
        self._health = health
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        if not self.port:
            return
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, details = self._health()
        body = json.dumps({"status": "ok" if healthy else "unhealthy", **details})
        return web.Response(text=body, status=200 if healthy else 503, content_type="application/json")
