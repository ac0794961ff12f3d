"""The optional HTTP endpoint (`docs/architecture.md` §10; `[http] listen`, off by
default): health, readiness, Prometheus metrics, the status document and the web console
(`docs/console.md`). The server lives in `conduyt_bridge.app.web`; this module installs it
as one of the bridge's background jobs.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from conduyt_bridge.app.config import Settings
from conduyt_bridge.app.metrics import BridgeMetrics
from conduyt_bridge.app.web.security import CONTENT_SECURITY_POLICY
from conduyt_bridge.app.web.server import StatusServer
from conduyt_bridge.app.web.status import board_status, status_document
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics
from conduyt_bridge.northbound.host import AdapterHost

_SERVERS: weakref.WeakKeyDictionary[AdapterHost, StatusServer] = weakref.WeakKeyDictionary()


def status_server(host: AdapterHost) -> StatusServer | None:
    """The HTTP server `http_adapter` installed on `host` (None without `[http] listen`):
    for embedding and tests (e.g. `status_server(bridge).hub.clients`, the open event
    streams)."""
    return _SERVERS.get(host)


def http_adapter(settings: Settings) -> Callable[[AdapterHost], None]:
    """The HTTP endpoint as a background job when `[http] listen` is set; its console
    listens on the bus from the start (log lines, pin values)."""

    def install(host: AdapterHost) -> None:
        if not settings.http.enabled:
            return
        topics = BridgeTopics(settings.bridge.base_topic, settings.bridge.id)
        server = StatusServer(
            host,
            topics,
            BridgeMetrics(host),
            token=settings.http.token.get_secret_value(),
            payload_format=settings.mqtt.payload_format,
        )
        server.install()
        _SERVERS[host] = server
        address, port = settings.http.host, settings.http.port

        async def job() -> None:
            await server.serve(address, port)

        host.add_job("http", job)

    return install


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "StatusServer",
    "board_status",
    "http_adapter",
    "status_document",
    "status_server",
]
