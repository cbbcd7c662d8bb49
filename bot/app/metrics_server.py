"""Serves /metrics (Prometheus text), /healthz (liveness) and the migration page (/migration and its JSON,
/migration.json) over HTTP. The page asks for the token whenever one is set; the settings refuse a host
beyond this machine without one (`bot.app.settings`)."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.app import migration_html
from bot.app.metrics import Metrics
from bot.app.migration_page import MigrationPage

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
# The page's own script and style only; nothing from elsewhere, no framing.
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self';"
    " frame-ancestors 'none'"
)


class PathOnlyAccessLog(AbstractAccessLogger):
    """One line per request without its query string or headers, where a page token may be."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.1fms", request.method, request.path, response.status, time * 1000)


class MetricsServer:
    def __init__(
        self,
        metrics: Metrics,
        host: str,
        port: int,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        page: MigrationPage | None = None,
        page_token: str = "",
    ) -> None:
        """`health()`: (healthy, what /healthz adds to its status); unhealthy answers 503. `page`: the
        migration page's figures; `page_token`: what a viewer must give, empty for none."""
        self.metrics = metrics
        self.host = host
        self.port = port
        self._health = health
        self._page = page
        self._token = page_token.strip().encode()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        if not self.port:
            return
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        if self._page is not None:
            app.router.add_get("/migration", self._migration)
            app.router.add_get("/migration.json", self._migration_json)
        self._runner = web.AppRunner(app, access_log_class=PathOnlyAccessLog)
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

    async def _migration(self, request: web.Request) -> web.Response:
        figures = await self._figures(request)
        headers = {**NO_STORE, "Content-Security-Policy": PAGE_POLICY}
        return web.Response(text=migration_html.page(figures), content_type="text/html", headers=headers)

    async def _migration_json(self, request: web.Request) -> web.Response:
        figures = await self._figures(request)
        body = json.dumps({"figures": figures, "html": migration_html.figures_html(figures)})
        return web.Response(text=body, content_type="application/json", headers=NO_STORE)

    async def _figures(self, request: web.Request) -> dict[str, Any]:
        """The page's figures for a viewer with the token; 401 without it, 503 when they cannot be read."""
        if self._token and not self._allowed(request):
            raise web.HTTPUnauthorized(
                text="a token is needed: Authorization: Bearer <token> or ?token=",
                headers={**NO_STORE, "WWW-Authenticate": 'Bearer realm="sietch"'},
            )
        assert self._page is not None
        try:
            return await self._page.figures()
        except Exception as exc:  # a database down: say so, the next refresh tries again
            log.warning("migration page unavailable error=%r", exc)
            raise web.HTTPServiceUnavailable(
                text=f"figures unavailable: {type(exc).__name__}", headers=NO_STORE
            ) from exc

    def _allowed(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        given = header[len("Bearer ") :] if header.startswith("Bearer ") else request.query.get("token", "")
        return hmac.compare_digest(given.strip().encode(), self._token)
