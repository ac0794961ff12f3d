"""The optional HTTP endpoint (`docs/architecture.md` §10; `[http] listen`, off by default).

Routes:

- `/healthz`: 200 while the MQTT broker link is up, else 503 with a JSON `reason`
  (Docker HEALTHCHECK and `conduyt-bridge --health` call it);
- `/readyz`: 200 when every configured board is online, else 503 listing the others;
- `/metrics`: Prometheus exposition of the bridge's own registry (`conduyt_bridge.app.metrics`);
- `/api/status`: the status document as JSON (health counters plus boards, datastream
  values and recent errors);
- `/`: a small server-rendered status page of the same document that refreshes itself.

Everything a board reports (firmware name, datastream names, units, string values) and
everything an MQTT client sent (command topics in error reports) is untrusted: the page
escapes every value with `html.escape`, and a Content-Security-Policy that only allows the
page's own inline script and style (by hash) backs that up.

The server runs on the bridge's event loop (aiohttp), as one of the bridge's background jobs,
and reads the live objects directly: no copy of the state is kept here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from conduyt_bridge.app.config import Settings
from conduyt_bridge.app.metrics import BridgeMetrics
from conduyt_bridge.errors import describe_exception
from conduyt_bridge.northbound.conduyt.payloads import json_value, utc_timestamp
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics, DeviceTopics
from conduyt_bridge.northbound.host import AdapterHost

if TYPE_CHECKING:
    from conduyt_bridge.core.board import Board

log = structlog.stdlib.get_logger(__name__)

REFRESH_INTERVAL_MS = 2000
"""How often the status page fetches itself again, milliseconds."""

BIND_RETRY_MAX_S = 30.0
"""Longest wait between two attempts to bind a busy or unavailable address, seconds."""

SHUTDOWN_TIMEOUT_S = 2.0
"""How long a stopping server waits for requests in flight, seconds (aiohttp's default of
60 s would hold up the bridge's shutdown behind a slow scraper)."""

MAX_VALUE_CHARS = 200
"""String values longer than this are shortened on the status page (not in the JSON)."""

_UNIT_SYMBOLS = {"celsius": "°C", "fahrenheit": "°F", "kelvin": "K", "percent": "%"}
"""Friendlier display of unit names that boards commonly spell out."""


# ---- the status document ---------------------------------------------------------------


def board_status(
    board: Board, topics: DeviceTopics, counters: dict[str, Any] | None
) -> dict[str, Any]:
    """One board's entry of the status document.

    Args:
        board: the board.
        topics: its topics in the Conduyt layout.
        counters: its entry of `Bridge.health()["boards"]` (packets, errors, latency), if any.
    """
    hello = board.hello
    datastreams = []
    for slug, ds in board.ds_by_slug.items():
        known = ds.known_type
        value = board.values.get(slug)
        datastreams.append(
            {
                "slug": slug,
                "name": ds.name,
                "type": known.name.lower() if known else int(ds.type),
                "unit": ds.unit,
                "writable": ds.writable,
                "value": json_value(value) if value is not None else None,
                "has_value": value is not None,
                "updated": _iso(board.value_times.get(slug)),
                "topic": topics.ds(slug),
            }
        )
    return {
        "id": board.dev,
        "port": board.config.port,
        "state": board.state,
        "read_only": board.config.read_only,
        "firmware": (
            {"name": hello.firmware_name, "version": hello.version_string} if hello else None
        ),
        "mcu_id": hello.mcu_id_hex if hello else None,
        "pin_count": hello.pin_count if hello else 0,
        "modules": [m.name for m in hello.modules] if hello else [],
        "datastreams": datastreams,
        "counters": counters or {},
        # Newest first: that is what someone looking at a problem wants to see.
        "errors": list(reversed(board.errors)),
    }


def status_document(bridge: AdapterHost, topics: BridgeTopics) -> dict[str, Any]:
    """The document behind `/api/status` and the status page.

    `Bridge.health()` (uptime, broker link, per-board counters) plus, per board, its
    identity, datastreams with their live values and its recent error reports.
    """
    health = bridge.health()
    counters: dict[str, Any] = health.pop("boards")
    boards = [
        board_status(board, topics.device(dev), counters.get(dev))
        for dev, board in bridge.boards.items()
    ]
    offline = [b["id"] for b in boards if b["state"] != "online"]
    return {
        **health,
        "base_topic": topics.base,
        "ready": not offline,
        "offline": offline,
        "boards": boards,
        "generated_at": time.time(),
    }


# ---- the status page ---------------------------------------------------------------------

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
background:#f4f5f7;color:#1d2330}
main{max-width:1100px;margin:0 auto;padding:18px 22px}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:6px 16px;margin-bottom:14px}
h1{font-size:22px;margin:0}h2{font-size:18px;margin:0 0 4px}
h3{font-size:14px;margin:14px 0 4px;color:#4a5263}
.muted{color:#5b6478}.board{background:#fff;border:1px solid #dde1e8;border-radius:8px;
padding:14px 16px;margin:0 0 14px}
.pill{display:inline-block;padding:1px 9px;border-radius:10px;font-size:13px;font-weight:600;
vertical-align:middle}
.online,.ok{background:#d9f3df;color:#17612c}.connecting{background:#fff1c9;color:#7a5600}
.offline,.bad{background:#fbdcdc;color:#8c1d1d}
table{border-collapse:collapse;width:100%;margin-top:8px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceef2;vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#5b6478}
td.value{font-weight:600;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#39414f}
ul.errors{margin:0;padding-left:18px}ul.errors li{margin:2px 0}
.stats{margin:8px 0 0;font-size:13px}.err{color:#8c1d1d}
footer{font-size:13px;margin-top:6px}a{color:#1f5fbf}
body.stale main{opacity:.55}
#stale{display:none;background:#8c1d1d;color:#fff;padding:6px 22px}
body.stale #stale{display:block}
"""

# The page fetches itself and swaps in the fresh <main>: no client-side templating, so all
# escaping stays on the server; DOMParser never runs scripts of the fetched document.
_SCRIPT = (
    "setInterval(async()=>{try{"
    "const r=await fetch(location.pathname,{cache:'no-store'});"
    "if(!r.ok)throw new Error(r.status);"
    "const d=new DOMParser().parseFromString(await r.text(),'text/html');"
    "const m=d.getElementById('status');"
    "if(m)document.getElementById('status').replaceWith(m);"
    "document.body.classList.remove('stale');"
    "}catch(e){document.body.classList.add('stale');}}," + str(REFRESH_INTERVAL_MS) + ");"
)


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


CONTENT_SECURITY_POLICY = (
    "default-src 'none'; "
    f"script-src {_csp_hash(_SCRIPT)}; "
    f"style-src {_csp_hash(_STYLE)}; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""Only the page's own inline script and style may run (defence in depth behind escaping)."""


def _e(value: Any) -> str:
    """Escape anything for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def _clock(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def _unit(unit: str) -> str:
    return _UNIT_SYMBOLS.get(unit.lower(), unit)


def _value_text(ds: dict[str, Any]) -> str:
    if not ds["has_value"]:
        return "—"
    value = ds["value"]
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = json.dumps(value)
    elif value is None:
        text = "null"  # a NaN or infinite float
    else:
        text = str(value)
        if len(text) > MAX_VALUE_CHARS:
            text = text[:MAX_VALUE_CHARS] + "…"
    unit = _unit(ds["unit"])
    return f"{text} {unit}" if unit else text


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:g} ms"


def _render_board(board: dict[str, Any]) -> Iterable[str]:
    state = board["state"]
    yield '<section class="board">'
    yield (
        f'<h2>{_e(board["id"])} <span class="pill {_e(state)}">{_e(state)}</span>'
        + (' <span class="muted">read-only</span>' if board["read_only"] else "")
        + "</h2>"
    )
    facts = []
    firmware = board["firmware"]
    if firmware:
        facts.append(f"{_e(firmware['name'])} {_e(firmware['version'])}")
    facts.append(f"<code>{_e(board['port'])}</code>")
    if board["mcu_id"]:
        facts.append(f"mcu {_e(board['mcu_id'])}")
    if firmware:
        facts.append(f"{board['pin_count']} pins")
        if board["modules"]:
            facts.append("modules: " + ", ".join(_e(m) for m in board["modules"]))
    yield f'<div class="muted">{" · ".join(facts)}</div>'

    if board["datastreams"]:
        yield (
            "<table><thead><tr><th>datastream</th><th>value</th><th>access</th>"
            "<th>topic</th></tr></thead><tbody>"
        )
        for ds in board["datastreams"]:
            access = "read/write" if ds["writable"] else "read-only"
            yield (
                f"<tr><td>{_e(ds['name'])}</td>"
                f'<td class="value">{_e(_value_text(ds))}</td>'
                f"<td>{access}</td><td><code>{_e(ds['topic'])}</code></td></tr>"
            )
        yield "</tbody></table>"
    elif firmware:
        yield '<p class="muted">This board declares no datastreams.</p>'
    else:
        yield '<p class="muted">Waiting for the board\'s handshake.</p>'

    c = board["counters"]
    if c:
        yield (
            '<p class="stats muted">'
            f"packets in {c['packets_in']} / out {c['packets_out']} · "
            f"frame errors {c['frame_errors']} · CRC NAKs {c['crc_naks']} · "
            f"NAKs {c['naks']} · timeouts {c['timeouts']} · reconnects {c['reconnects']} · "
            f"latency p50 {_e(_ms(c['latency_ms_p50']))}, p99 {_e(_ms(c['latency_ms_p99']))}"
            "</p>"
        )
        if state != "online" and c.get("last_error"):
            yield f'<p class="stats err">last link error: {_e(c["last_error"])}</p>'

    yield "<h3>Recent errors</h3>"
    if not board["errors"]:
        yield '<p class="muted">none</p>'
    else:
        yield '<ul class="errors">'
        for err in board["errors"][:10]:
            yield (
                f'<li><span class="muted">{_e(_clock(err.get("ts")))}</span> '
                f"<code>{_e(err.get('topic', ''))}</code> "
                f"<strong>{_e(err.get('error', ''))}</strong> {_e(err.get('name', ''))}: "
                f"{_e(err.get('message', ''))}</li>"
            )
        yield "</ul>"
    yield "</section>"


def render_status_page(doc: dict[str, Any]) -> str:
    """The HTML status page for a status document (see `status_document`)."""
    broker = doc["broker"]
    link = (
        '<span class="pill ok">connected</span>'
        if broker["connected"]
        else '<span class="pill bad">disconnected</span>'
    )
    online = sum(1 for b in doc["boards"] if b["state"] == "online")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        "<title>conduyt-bridge status</title>",
        # Without JavaScript the page still refreshes, just less smoothly.
        '<noscript><meta http-equiv="refresh" content="5"></noscript>',
        f"<style>{_STYLE}</style>",
        "</head><body>",
        '<div id="stale">The bridge is not answering; showing the last known state.</div>',
        '<main id="status">',
        "<header><h1>conduyt-bridge</h1>",
        f'<span class="muted">v{_e(doc["version"])} · up {_duration(doc["uptime_s"])}</span>',
        f"<span>broker {link}</span>",
        f'<span class="muted">base topic <code>{_e(doc["base_topic"])}</code></span>',
        f'<span class="muted">boards online {online}/{len(doc["boards"])}</span>',
        f'<span class="muted">MQTT queue {broker["queue_depth"]}</span>',
        "</header>",
    ]
    if not broker["connected"] and broker.get("last_error"):
        parts.append(f'<p class="err">broker link: {_e(broker["last_error"])}</p>')
    if not doc["boards"]:
        parts.append('<p class="muted">No boards are configured.</p>')
    for board in doc["boards"]:
        parts.extend(_render_board(board))
    parts += [
        f'<footer class="muted">updated {_clock(doc["generated_at"])} UTC · '
        '<a href="/api/status">JSON</a> · <a href="/metrics">metrics</a> · '
        '<a href="/healthz">healthz</a> · <a href="/readyz">readyz</a></footer>',
        "</main>",
        f"<script>{_SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


# ---- the server ------------------------------------------------------------------------------

_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class StatusServer:
    """The aiohttp application serving one Bridge's health, metrics and status page."""

    def __init__(self, bridge: AdapterHost, topics: BridgeTopics, metrics: BridgeMetrics) -> None:
        self.bridge = bridge
        self.topics = topics
        self.metrics = metrics
        self.app = web.Application()
        self.app.router.add_get("/", self.page)
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/readyz", self.readyz)
        self.app.router.add_get("/metrics", self.prometheus)
        self.app.router.add_get("/api/status", self.api_status)

    async def healthz(self, request: web.Request) -> web.Response:
        """200 while the broker link is up, else 503 with the reason."""
        mqtt = self.bridge.mqtt
        uptime = round(time.time() - self.bridge.started_at, 1)
        if mqtt.connected:
            doc: dict[str, Any] = {"status": "ok", "broker": "connected", "uptime_s": uptime}
            return web.json_response(doc, headers=_NO_STORE)
        reason = "MQTT broker link is down"
        if mqtt.last_error:
            reason += f": {mqtt.last_error}"
        doc = {
            "status": "unhealthy",
            "broker": "disconnected",
            "reason": reason,
            "uptime_s": uptime,
        }
        return web.json_response(doc, status=503, headers=_NO_STORE)

    async def readyz(self, request: web.Request) -> web.Response:
        """200 when every board is online, else 503 listing the boards that are not."""
        states = {dev: board.state for dev, board in self.bridge.boards.items()}
        offline = [dev for dev, state in states.items() if state != "online"]
        if not offline:
            doc: dict[str, Any] = {"status": "ready", "boards": states}
            return web.json_response(doc, headers=_NO_STORE)
        doc = {
            "status": "not ready",
            "reason": "not online: " + ", ".join(offline),
            "offline": offline,
            "boards": states,
        }
        return web.json_response(doc, status=503, headers=_NO_STORE)

    async def prometheus(self, request: web.Request) -> web.Response:
        """The Prometheus exposition (text format, or OpenMetrics if asked for)."""
        body, content_type = self.metrics.render(request.headers.get("Accept"))
        return web.Response(body=body, headers={**_NO_STORE, "Content-Type": content_type})

    async def api_status(self, request: web.Request) -> web.Response:
        """The status document as JSON."""
        return web.json_response(status_document(self.bridge, self.topics), headers=_NO_STORE)

    async def page(self, request: web.Request) -> web.Response:
        """The self-refreshing HTML status page."""
        body = render_status_page(status_document(self.bridge, self.topics))
        headers = {
            **_NO_STORE,
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Referrer-Policy": "no-referrer",
        }
        return web.Response(text=body, content_type="text/html", headers=headers)

    async def serve(self, host: str, port: int) -> None:
        """Listen on `host:port` until cancelled (`""` = all interfaces).

        An address that cannot be bound (in use, not local) is logged and retried with
        capped backoff rather than taking the bridge down: the boards keep being served
        and the endpoint appears once the address is free.
        """
        # Access logs off: a scraper or healthcheck every few seconds would drown the log.
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        shown = f"[{host}]" if ":" in host else (host or "0.0.0.0")
        backoff = 1.0
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
            await runner.cleanup()


def http_adapter(settings: Settings) -> Callable[[AdapterHost], None]:
    """The HTTP endpoint as a background job when `[http] listen` is set."""

    def install(host: AdapterHost) -> None:
        if not settings.http.enabled:
            return
        topics = BridgeTopics(settings.bridge.base_topic, settings.bridge.id)
        server = StatusServer(host, topics, BridgeMetrics(host))
        address, port = settings.http.host, settings.http.port

        async def job() -> None:
            await server.serve(address, port)

        host.add_job("http", job)

    return install


def _iso(epoch_s: float | None) -> str | None:
    """RFC 3339 UTC text of a wall-clock time, None for None."""
    if epoch_s is None:
        return None
    return utc_timestamp(datetime.fromtimestamp(epoch_s, UTC))
