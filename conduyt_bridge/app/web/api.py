"""The console's JSON routes (`docs/console.md` §3): the console document, the event
stream, board commands and the request API.

- `GET /api/console`: the console document (`console_doc.console_document`);
- `GET /api/events`: Server-Sent Events (`live.LiveHub`);
- `POST /api/boards/{dev}/command`, body `{"command": "ds/setpoint/set", "payload":
  "21.5"}` (or `"payload_hex"` for a raw packet): a `commands.Outcome`;
- `POST /api/requests/{action}`, body the request's JSON object: its
  `RequestResponse.to_json()` (`docs/requests.md` §1).

Bodies are read with the same care as MQTT payloads (`docs/hostile-input.md`): at most
`MAX_BODY_BYTES`, UTF-8, JSON nested at most `MAX_JSON_DEPTH` levels, an object.
"""

from __future__ import annotations

import asyncio
import binascii
import json
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from conduyt_bridge.app.requests.contract import RequestHandler
from conduyt_bridge.app.web.commands import ConsoleCommands
from conduyt_bridge.app.web.live import LiveHub
from conduyt_bridge.app.web.security import NO_STORE_HEADERS, json_error
from conduyt_bridge.errors import ConduytPayloadError
from conduyt_bridge.northbound.host import AdapterHost
from conduyt_bridge.northbound.json_limits import MAX_JSON_DEPTH, refuse_deep_json

MAX_BODY_BYTES = 512 * 1024
"""Longest request body, bytes: above the longest command any board can take
(`conduyt_bridge.northbound.conduyt.adapter.payload_limit`, 394 kB at most)."""

KEEPALIVE_S = 15.0
"""An idle event stream gets an SSE comment this often, s (proxies close silent streams)."""

NO_REQUEST_API = "this bridge has no request API"


async def read_object(request: web.Request) -> dict[str, Any] | web.Response:
    """The request body as a JSON object, or the 400/413 answer saying what is wrong."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        chunk = await request.content.read(MAX_BODY_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    data = b"".join(chunks)
    if size > MAX_BODY_BYTES:
        return json_error(413, "too_large", f"request body is longer than {MAX_BODY_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return json_error(400, "bad_body", "request body is not UTF-8 text")
    try:
        refuse_deep_json(text)
        doc = json.loads(text)
    except ConduytPayloadError:
        message = f"request body nests JSON arrays/objects more than {MAX_JSON_DEPTH} levels deep"
        return json_error(400, "bad_body", message)
    except ValueError:
        return json_error(400, "bad_body", "request body is not JSON")
    if not isinstance(doc, dict):
        return json_error(400, "bad_body", "request body must be a JSON object")
    return doc


def command_payload(doc: dict[str, Any]) -> tuple[str, bytes] | str:
    """`(command path, payload bytes)` of a command body, or what is wrong with it."""
    unknown = sorted(set(doc) - {"command", "payload", "payload_hex"})
    if unknown:
        return f"unknown member {unknown[0]!r} (expected command, payload or payload_hex)"
    command = doc.get("command")
    if not isinstance(command, str) or not command:
        return '"command" must be a command topic below the board, e.g. "ds/setpoint/set"'
    if "payload" in doc and "payload_hex" in doc:
        return 'give either "payload" or "payload_hex", not both'
    if "payload_hex" in doc:
        hex_text = doc["payload_hex"]
        try:
            if not isinstance(hex_text, str):
                raise ValueError
            return command, bytes.fromhex(hex_text)
        except (ValueError, binascii.Error):
            return '"payload_hex" must be hex digits (pairs, spaces allowed)'
    payload = doc.get("payload", "")
    if not isinstance(payload, str):
        return '"payload" must be text: what an MQTT client would publish'
    return command, payload.encode("utf-8")


class ConsoleApi:
    """Handlers of the JSON routes for one host."""

    def __init__(
        self,
        host: AdapterHost,
        hub: LiveHub,
        commands: ConsoleCommands,
        requests: Callable[[], RequestHandler | None],
    ) -> None:
        self.host = host
        self.hub = hub
        self.commands = commands
        self.requests = requests

    async def console(self, request: web.Request) -> web.Response:
        """`GET /api/console`: the console document."""
        return web.json_response(self.hub.document(), headers=NO_STORE_HEADERS)

    async def events(self, request: web.Request) -> web.StreamResponse:
        """`GET /api/events`: the live stream, until the browser or the server ends it."""
        response = web.StreamResponse(
            headers={
                **NO_STORE_HEADERS,
                "Content-Type": "text/event-stream; charset=utf-8",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            }
        )
        await response.prepare(request)
        client = self.hub.connect()
        try:
            while True:
                while client.queue:
                    await response.write(client.take().encode("utf-8"))
                if client.closed:
                    break
                client.wake.clear()
                try:
                    async with asyncio.timeout(KEEPALIVE_S):
                        await client.wake.wait()
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
        except ConnectionError:
            pass  # the browser went away while we wrote
        finally:
            # Also when the server cancels the handler because the browser went away
            # (`handler_cancellation`, `server.StatusServer.serve`).
            self.hub.disconnect(client)
        return response

    async def command(self, request: web.Request) -> web.Response:
        """`POST /api/boards/{dev}/command`: run one command like its MQTT topic would."""
        doc = await read_object(request)
        if isinstance(doc, web.Response):
            return doc
        parsed = command_payload(doc)
        if isinstance(parsed, str):
            return json_error(400, "bad_body", parsed)
        path, payload = parsed
        dev = request.match_info["dev"]
        outcome = await self.commands.run(dev, path, payload)
        self.hub.check_errors(dev)
        return web.json_response(outcome.doc, status=outcome.status, headers=NO_STORE_HEADERS)

    async def request_api(self, request: web.Request) -> web.Response:
        """`POST /api/requests/{action}`: one request of the request API; the answer is
        its response document (HTTP 200 whatever its `status`; 503 without the API)."""
        handler = self.requests()
        if handler is None:
            doc = {"status": "error", "data": None, "error": NO_REQUEST_API}
            return web.json_response(doc, status=503, headers=NO_STORE_HEADERS)
        body = await read_object(request)
        if isinstance(body, web.Response):
            return body
        # Shielded: a browser that goes away mid-change must not cut a change in two
        # (the server cancels the handlers of lost connections). Boards added or removed
        # reach the open streams through the host's board hooks (`live.LiveHub.install`),
        # as for a request that came over MQTT.
        response = await asyncio.shield(handler.handle(request.match_info["action"], body))
        return web.json_response(response.to_json(), headers=NO_STORE_HEADERS)


def request_handler_of(host: AdapterHost) -> Callable[[], RequestHandler | None]:
    """Reads the host's `requests` attribute (the request API) when asked, so an API the
    bridge attaches after the adapters were installed is found."""

    def find() -> RequestHandler | None:
        handler = getattr(host, "requests", None)
        return cast("RequestHandler | None", handler) if handler is not None else None

    return find


__all__ = [
    "KEEPALIVE_S",
    "MAX_BODY_BYTES",
    "NO_REQUEST_API",
    "ConsoleApi",
    "command_payload",
    "read_object",
    "request_handler_of",
]
