"""The request API's MQTT front end (`docs/requests.md` §1, `docs/topics.md` §10).

A JSON object published on `{base}/bridge/{bridge_id}/request/{action}` is answered on
`{base}/bridge/{bridge_id}/response/{action}` (QoS 1, not retained) and, when the request
carries an MQTT 5 Response Topic, there too with its Correlation Data, as the Conduyt
layout answers commands. Each request runs in a task of its own (the broker link's reader
never waits for a board to stop or start). A payload that is not a JSON object (too long,
not UTF-8, nested too deep, not JSON) and a retained request get an `error` response and
change nothing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt
import structlog

from conduyt_bridge.app.requests.contract import RequestHandler, RequestResponse
from conduyt_bridge.errors import ConduytPayloadError
from conduyt_bridge.northbound.conduyt.payloads import dumps
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics
from conduyt_bridge.northbound.host import AdapterHost
from conduyt_bridge.northbound.json_limits import refuse_deep_json
from conduyt_bridge.northbound.mqtt.connection import publish_properties
from conduyt_bridge.northbound.mqtt.inbound import payload_bytes, response_route

__all__ = ["MAX_REQUEST_BYTES", "RequestTopics", "decode_request"]

log = structlog.stdlib.get_logger(__name__)

MAX_REQUEST_BYTES = 65536
"""Longest request payload, bytes: a `device/add` with every option and a hundred pin
subscriptions is a few kilobytes."""

SHUTDOWN_WAIT_S = 1.0
"""How long shutdown waits for requests still running."""


class BadRequest(Exception):
    """A request payload that is not a usable JSON object."""


def decode_request(payload: bytes) -> dict[str, Any]:
    """The JSON object of a request payload (empty: `{}`). Raises BadRequest with the
    response's error text."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise BadRequest(
            f"request payload of {len(payload)} bytes is longer than {MAX_REQUEST_BYTES}"
        )
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadRequest("request payload is not UTF-8 text") from None
    if not text:
        return {}
    try:
        refuse_deep_json(text)
        doc = json.loads(text)
    except ConduytPayloadError as exc:
        raise BadRequest(f"request {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"request payload is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"request payload must be a JSON object, not {type(doc).__name__}")
    return doc


class RequestTopics:
    """Subscribes to the request topics and answers them through a `RequestHandler`."""

    def __init__(self, host: AdapterHost, topics: BridgeTopics, handler: RequestHandler) -> None:
        self.bridge = host
        self.handler = handler
        self.topics = topics
        self.tasks: set[asyncio.Task[None]] = set()

    def install(self) -> None:
        """Register on the bridge: the subscription, the router, the shutdown hook."""
        self.bridge.on_connect(self.on_connect)
        self.bridge.add_router(self.route)
        self.bridge.on_shutdown(self.close)

    async def on_connect(self) -> None:
        """Subscribe to `{base}/bridge/{bridge_id}/request/#` (QoS 1)."""
        await self.bridge.mqtt.subscribe([self.topics.request_filter])

    async def route(self, message: aiomqtt.Message) -> bool:
        """A request: answered in a task. False for any other topic."""
        action = self.topics.request_action(message.topic.value)
        if action is None:
            return False
        data = payload_bytes(message)
        if message.retain and not data:
            return True  # a retained request being cleared
        task = asyncio.get_running_loop().create_task(
            self.answer(action, data, bool(message.retain), response_route(message)),
            name=f"request-{action}",
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def answer(
        self, action: str, data: bytes, retained: bool, route: tuple[str | None, bytes | None]
    ) -> None:
        """Decode, run and answer one request; `route` is its MQTT 5 Response Topic and
        Correlation Data (`response_route`)."""
        try:
            if retained:
                raise BadRequest(
                    "request was retained: requests must not be retained (clear it with an "
                    "empty retained message)"
                )
            doc = decode_request(data)
        except BadRequest as exc:
            log.info("request refused", action=action, error=str(exc))
            response = RequestResponse("error", None, str(exc))
        else:
            response = await self.handler.handle(action, doc)
        body = dumps(response.to_json())
        mqtt = self.bridge.mqtt
        mqtt.publish(self.topics.response(action), body, qos=1, coalesce=False)
        response_topic, correlation = route
        if response_topic is not None:
            properties = publish_properties(correlation)
            mqtt.publish(response_topic, body, qos=1, properties=properties, coalesce=False)

    async def close(self) -> None:
        """Shutdown hook: let running requests finish (bounded), then cancel them."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=SHUTDOWN_WAIT_S)
        for task in list(self.tasks):
            task.cancel()
