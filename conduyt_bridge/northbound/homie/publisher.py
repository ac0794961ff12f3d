"""What the Homie adapter publishes for one device, in the convention's order
(`docs/homie.md` §2; the Homie convention, "Device Lifecycle", "Device reconfiguration").

A device is announced as `$state` `init`, then its `$description` (retained JSON), then its
property values, then its final state (`ready`, or `lost` for a board the bridge cannot
reach now), decided only once the rest has left the outbox (a board that went offline
meanwhile ends `lost`, not `ready`). A device is removed by clearing its `$state` first,
then its `$description` and property topics (the convention, "Device removal"). The
description's `version` is an integer that only changes with the
description: the same document keeps its version, also across restarts of the bridge
(the retained descriptions are read back at start, `remember`); a new document gets
`max(old + 1, now in ms)`, so it is always higher than any version published before.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from conduyt_bridge.northbound.homie.ids import HomieTopics, is_homie_id
from conduyt_bridge.northbound.homie.model import DeviceModel, PropertyModel
from conduyt_bridge.northbound.homie.values import format_value
from conduyt_bridge.northbound.mqtt.connection import MqttConnection, OutMessage

QOS = 2
"""QoS of retained messages (the convention recommends exactly once); non-retained
property values go out at QoS 0, as the convention asks."""

SETTLE_S = 2.0
"""Longest wait for the outbox to drain before a `ready` (so that it is not overtaken)."""

STATES = ("init", "ready", "disconnected", "sleeping", "lost")
"""The `$state` values of the convention."""


def dumps(doc: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


class DevicePublisher:
    """Publishes devices' states, descriptions and values on one Homie MQTT link."""

    def __init__(self, conn: MqttConnection, topics: HomieTopics) -> None:
        self.conn = conn
        self.topics = topics
        self.states: dict[str, str] = {}
        """Last `$state` published per device ID."""
        self.versions: dict[str, int] = {}
        """Version of the description last published per device ID."""
        self._contents: dict[str, dict[str, Any]] = {}
        self._found: dict[str, tuple[int, dict[str, Any]]] = {}

    # ---- versions --------------------------------------------------------------------

    def remember(self, device: str, payload: bytes) -> None:
        """A retained `$description` found at start: keep its version and content so an
        unchanged document keeps its version and a changed one gets a higher one. A
        payload that is not a description with an integer `version` is ignored."""
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(doc, dict):
            return
        version = doc.pop("version", None)
        if isinstance(version, int) and not isinstance(version, bool):
            self._found[device] = (version, doc)

    def version_for(self, model: DeviceModel) -> int:
        """The `version` of `model`'s description: unchanged for the same document, else
        higher than every version seen for the device (ms since the epoch at least)."""
        content = model.content()
        device = model.id
        if self._contents.get(device) == content:
            return self.versions[device]
        found = self._found.get(device)
        if found is not None and found[1] == content and device not in self.versions:
            return found[0]
        floor = max(self.versions.get(device, 0), found[0] if found else 0)
        return max(floor + 1, int(time.time() * 1000))

    def changed(self, model: DeviceModel) -> bool:
        """True when `model`'s description differs from the one last published."""
        return self._contents.get(model.id) != model.content()

    # ---- publishing ------------------------------------------------------------------

    def state(self, device: str, state: str) -> None:
        """Publish `$state` (retained)."""
        self.states[device] = state
        self.conn.publish(self.topics.state(device), state.encode(), qos=QOS, retain=True)

    def description(self, model: DeviceModel) -> None:
        """Publish `$description` (retained JSON) with its version."""
        version = self.version_for(model)
        self.versions[model.id] = version
        self._contents[model.id] = model.content()
        payload = dumps(model.describe(version))
        self.conn.publish(self.topics.description(model.id), payload, qos=QOS, retain=True)

    def value(self, device: str, node: str, prop: PropertyModel, value: Any) -> None:
        """Publish a property value in its datatype's form (retained at QoS 2, or
        non-retained at QoS 0 for a non-retained property); a value without a valid form
        (NaN, a value of another kind) is not published."""
        payload = format_value(prop.datatype, value)
        if payload is None:
            return
        topic = self.topics.value(device, node, prop.id)
        if prop.retained:
            self.conn.publish(topic, payload, qos=QOS, retain=True)
        else:
            self.conn.publish(topic, payload, qos=0, coalesce=False)

    async def settle(self) -> None:
        """Wait (at most `SETTLE_S`) until what was published has left the outbox, while
        connected, so that a `ready` published next is not overtaken."""
        deadline = time.monotonic() + SETTLE_S
        # Polled: the outbox offers no event to wait on.
        while self._busy() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    def _busy(self) -> bool:
        return self.conn.connected and self.conn.queue_depth > 0

    async def announce(
        self,
        model: DeviceModel,
        values: Iterable[tuple[str, PropertyModel, Any]],
        final: Callable[[], str | None],
    ) -> None:
        """`$state` `init`, `$description`, the retained `values` (node ID, property,
        value), then `$state` `final()` (None: stay `init`), asked only after `settle`
        so that it reflects the device as it is then."""
        self.state(model.id, "init")
        self.description(model)
        for node, prop, value in values:
            if prop.retained:
                self.value(model.id, node, prop, value)
        await self.settle()
        state = final()
        if state is not None:
            self.state(model.id, state)

    def remove(self, device: str, properties: Iterable[tuple[str, str]]) -> None:
        """Remove `device` (the convention, "Device removal"): clear its `$state` first,
        then its `$description` and the topics of `properties` (node ID, property ID),
        and forget it."""
        self.conn.publish(self.topics.state(device), b"", qos=QOS, retain=True)
        self.conn.publish(self.topics.description(device), b"", qos=QOS, retain=True)
        for node, prop in properties:
            self.conn.publish(self.topics.value(device, node, prop), b"", qos=QOS, retain=True)
        self.states.pop(device, None)
        self.versions.pop(device, None)
        self._contents.pop(device, None)
        self._found.pop(device, None)

    def final_messages(self, devices: Iterable[str]) -> list[OutMessage]:
        """`$state` `disconnected` for `devices` (retained), in order: the last messages
        of a clean shutdown (a clean DISCONNECT suppresses the Will)."""
        return [OutMessage(self.topics.state(d), b"disconnected", QOS, True) for d in devices]


def _document(doc: Any) -> Any:
    if isinstance(doc, bytes):
        try:
            return json.loads(doc)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
    return doc


def described_properties(doc: Any) -> list[tuple[str, str]]:
    """(node ID, property ID) of every property of a `$description` (a document or its
    payload; nothing for a malformed one)."""
    doc = _document(doc)
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    if not isinstance(nodes, dict):
        return []
    return [
        (node, prop)
        for node, body in nodes.items()
        if isinstance(body, dict) and isinstance(body.get("properties"), dict)
        for prop in body["properties"]
    ]


def described_children(payload: bytes | None) -> list[str]:
    """The `children` of a retained `$description` payload (valid IDs only)."""
    doc = _document(payload)
    children = doc.get("children") if isinstance(doc, dict) else None
    if not isinstance(children, list):
        return []
    return [c for c in children if isinstance(c, str) and is_homie_id(c)]


__all__ = [
    "QOS",
    "SETTLE_S",
    "STATES",
    "DevicePublisher",
    "described_children",
    "described_properties",
    "dumps",
]
