"""The bridge's HTTP server (`docs/architecture.md` §10, `docs/console.md`): operational
endpoints and the web console, on the bridge's event loop (aiohttp), as one of its
background jobs. Handlers read the live objects directly; nothing is copied.

- `/healthz`: 200 while the MQTT broker link is up, else 503 with a JSON `reason`
  (Docker HEALTHCHECK and `conduyt-bridge --health` call it);
- `/readyz`: 200 when every board is online, else 503 listing the others;
- `/metrics`: Prometheus exposition of the bridge's own registry;
- `/api/status`: the status document (`conduyt_bridge.app.web.status`);
- `/`, `/login`, `/logout`, `/static/…`: the console (`pages`, `security`);
- `/api/console`, `/api/events`, `/api/boards/{dev}/command`, `/api/requests/{action}`:
  the console's JSON routes (`api`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from conduyt_bridge.app.metrics import BridgeMetrics
from conduyt_bridge.app.web.api import MAX_BODY_BYTES, ConsoleApi, request_handler_of
from conduyt_bridge.app.web.commands import ConsoleCommands
from conduyt_bridge.app.web.live import LiveHub
from conduyt_bridge.app.web.pages import Pages
from conduyt_bridge.app.web.security import NO_STORE_HEADERS, Guard
from conduyt_bridge.app.web.status import status_document
from conduyt_bridge.errors import describe_exception
from conduyt_bridge.northbound.conduyt.payloads import PayloadFormat
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics
from conduyt_bridge.northbound.host import AdapterHost

log = structlog.stdlib.get_logger(__name__)

BIND_RETRY_MAX_S = 30.0
"""Longest wait between two attempts to bind a busy or unavailable address, seconds."""

SHUTDOWN_TIMEOUT_S = 2.0
"""How long a stopping server waits for requests in flight, seconds (aiohttp's default of
60 s would hold up the bridge's shutdown behind a slow scraper)."""

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The console's HTML, CSS and JavaScript (package data)."""


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"


class StatusServer:
    """The aiohttp application serving one bridge's health, metrics and console."""

    def __init__(
        self,
        bridge: AdapterHost,
        topics: BridgeTopics,
        metrics: BridgeMetrics,
        *,
        token: str = "",
        payload_format: PayloadFormat = "plain",
    ) -> None:
        self.bridge = bridge
        self.topics = topics
        self.metrics = metrics
        self.guard = Guard(token)
        requests = request_handler_of(bridge)
        self.hub = LiveHub(
            bridge, topics, management=lambda: requests() is not None, login=bool(token)
        )
        self.commands = ConsoleCommands(bridge, topics, payload_format)
        self.api = ConsoleApi(bridge, self.hub, self.commands, requests)
        self.pages = Pages(self.guard)
        self.app = web.Application(
            middlewares=[self.guard.middleware], client_max_size=MAX_BODY_BYTES
        )
        self.app.on_response_prepare.append(_static_headers)
        router = self.app.router
        router.add_get("/healthz", self.healthz)
        router.add_get("/readyz", self.readyz)
        router.add_get("/metrics", self.prometheus)
        router.add_get("/api/status", self.api_status)
        router.add_get("/", self.pages.index)
        router.add_get("/login", self.pages.login_form)
        router.add_post("/login", self.pages.login)
        router.add_post("/logout", self.pages.logout)
        router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
        router.add_get("/api/console", self.api.console)
        router.add_get("/api/events", self.api.events)
        router.add_post("/api/boards/{dev}/command", self.api.command)
        router.add_post("/api/requests/{action:.+}", self.api.request_api)

    def install(self) -> None:
        """Listen on the host's bus (call before the bridge runs)."""
        self.hub.install()

    async def healthz(self, request: web.Request) -> web.Response:
        """200 while the broker link is up, else 503 with the reason."""
        mqtt = self.bridge.mqtt
        uptime = round(time.time() - self.bridge.started_at, 1)
        if mqtt.connected:
            doc: dict[str, Any] = {"status": "ok", "broker": "connected", "uptime_s": uptime}
            return web.json_response(doc, headers=NO_STORE_HEADERS)
        reason = "MQTT broker link is down"
        if mqtt.last_error:
            reason += f": {mqtt.last_error}"
        doc = {
            "status": "unhealthy",
            "broker": "disconnected",
            "reason": reason,
            "uptime_s": uptime,
        }
        return web.json_response(doc, status=503, headers=NO_STORE_HEADERS)

    async def readyz(self, request: web.Request) -> web.Response:
        """200 when every board is online, else 503 listing the boards that are not."""
        states = {dev: board.state for dev, board in self.bridge.boards.items()}
        offline = [dev for dev, state in states.items() if state != "online"]
        if not offline:
            doc: dict[str, Any] = {"status": "ready", "boards": states}
            return web.json_response(doc, headers=NO_STORE_HEADERS)
        doc = {
            "status": "not ready",
            "reason": "not online: " + ", ".join(offline),
            "offline": offline,
            "boards": states,
        }
        return web.json_response(doc, status=503, headers=NO_STORE_HEADERS)

    async def prometheus(self, request: web.Request) -> web.Response:
        """The Prometheus exposition (text format, or OpenMetrics if asked for)."""
        body, content_type = self.metrics.render(request.headers.get("Accept"))
        return web.Response(body=body, headers={**NO_STORE_HEADERS, "Content-Type": content_type})

    async def api_status(self, request: web.Request) -> web.Response:
        """The status document as JSON."""
        doc = status_document(self.bridge, self.topics)
        return web.json_response(doc, headers=NO_STORE_HEADERS)

    async def serve(self, host: str, port: int) -> None:
        """Listen on `host:port` until cancelled (`""` = all interfaces).

        An address that cannot be bound (in use, not local) is logged and retried with
        capped backoff rather than taking the bridge down: the boards keep being served
        and the endpoint appears once the address is free.
        """
        # Access logs off: a scraper or healthcheck every few seconds would drown the log.
        # Handler cancellation on: an event stream whose browser went away ends at once
        # (its subscription freed) instead of at its next write; the request API shields
        # its actions from it (`api.ConsoleApi.request_api`).
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            handler_cancellation=True,
        )
        await runner.setup()
        shown = f"[{host}]" if ":" in host else (host or "0.0.0.0")
        backoff = 1.0
        hub = asyncio.create_task(self.hub.run(), name="http-live")
        try:
            while True:
                site = web.TCPSite(runner, host or None, port)
                try:
                    await site.start()
                except OSError as exc:
                    log.error(
                        "cannot listen for HTTP",
                        listen=f"{shown}:{port}",
                        error=describe_exception(exc),
                        retry_in_s=backoff,
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BIND_RETRY_MAX_S)
                    continue
                log.info("HTTP endpoint listening", url=f"http://{shown}:{port}/")
                await asyncio.Event().wait()
        finally:
            # Open event streams end first, so that stopping does not wait for them.
            self.hub.close()
            hub.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hub
            await runner.cleanup()


__all__ = ["BIND_RETRY_MAX_S", "SHUTDOWN_TIMEOUT_S", "STATIC_DIR", "StatusServer"]
