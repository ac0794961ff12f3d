"""One board's face in the Conduyt topic layout (`docs/topics.md`): availability, HELLO,
meta, datastream states, pin values, sketch text, error reports and MQTT 5 responses.

`BoardFace` turns the core's events for one board into publishes on the shared
`MqttConnection`; it keeps what only this layout needs (the retained payloads as first
published, the datastream topics it made retained).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from math import isfinite
from typing import Any

import structlog

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.events import DatastreamUpdated
from conduyt_bridge.core.naming import module_slugs
from conduyt_bridge.errors import ConduytError
from conduyt_bridge.northbound.conduyt.payloads import (
    PayloadFormat,
    UtcClock,
    dumps,
    error_kind,
    error_report,
    format_state,
)
from conduyt_bridge.northbound.conduyt.topics import DeviceTopics
from conduyt_bridge.northbound.mqtt.connection import MqttConnection, publish_properties
from conduyt_bridge.protocol.hello import DatastreamDescriptor
from conduyt_bridge.protocol.values import DatastreamValue

log = structlog.stdlib.get_logger(__name__)


class BoardFace:
    """Publishes one board's state in the Conduyt layout."""

    def __init__(
        self,
        board: Board,
        topics: DeviceTopics,
        mqtt: MqttConnection,
        payload_format: PayloadFormat = "plain",
        state_qos: int = 0,
    ) -> None:
        self.board = board
        self.topics = topics
        self.mqtt = mqtt
        self.payload_format = payload_format
        self.state_qos = state_qos
        self.retained_payloads: dict[str, bytes] = {}
        """Each retained datastream's state as first published (a republish must not make
        an old value, or its `ts`, look fresh)."""
        self.published_ds_topics: set[str] = set()
        self.clock = UtcClock()
        """`ts` of JSON payloads, its text built once per second."""
        self._ds_topics: dict[str, str] = {}
        """`{dev}/ds/{slug}` per slug, built once (the DS_EVENT hot path)."""
        self._units: dict[int, tuple[DatastreamDescriptor, str]] = {}
        """Datastream index → the datastream and its unit as JSON text (`_unit_json`)."""

    @property
    def dev(self) -> str:
        """The board's id."""
        return self.board.dev

    # ---- events -----------------------------------------------------------------------------

    def changed(self) -> None:
        """Another board or firmware is on the port: clear the retained states of
        datastreams it does not have, and forget the old values' payloads."""
        self.retained_payloads.clear()
        self._ds_topics.clear()
        keep = {self.topics.ds(slug) for slug in self.board.ds_by_slug}
        for topic in self.published_ds_topics - keep:
            self.mqtt.publish(topic, b"", qos=1, retain=True)
            self.published_ds_topics.discard(topic)

    def offline(self) -> None:
        """Publish `offline` on the board's status topic at once."""
        self.mqtt.publish(self.topics.status, b"offline", qos=1, retain=True)

    def datastream(self, slug: str, ds: DatastreamDescriptor, value: DatastreamValue) -> None:
        """Publish a datastream's value (retained iff the datastream says so)."""
        topic = self._ds_topics.get(slug)
        if topic is None:
            topic = self._ds_topics[slug] = self.topics.ds(slug)
        ts = self.clock.now() if self.payload_format == "json" else None
        payload = format_state(value, self.payload_format, ds.unit, ts)
        self.mqtt.publish(
            topic, payload, qos=self.state_qos if not ds.retain else 1, retain=ds.retain
        )
        if ds.retain:
            self.published_ds_topics.add(topic)
            self.retained_payloads[slug] = payload

    def datastreams(self, events: Sequence[DatastreamUpdated]) -> None:
        """`datastream` for each event, in order (the batch path, `docs/architecture.md`
        §6.1): the QoS 0 states go to the connection in one `publish_many` call, a
        retained one (QoS 1) through `datastream` between them. JSON `ts` is read once
        per batch; a number's payload is built without `format_state`'s dispatch."""
        topics = self._ds_topics
        as_json = self.payload_format == "json"
        ts = self.clock.now() if as_json else ""
        qos0 = self.state_qos == 0
        batch: list[tuple[str, bytes]] = []
        for event in events:
            ds = event.datastream
            if ds.retain or not qos0:
                if batch:
                    self.mqtt.publish_many(batch)
                    batch = []
                self.datastream(event.slug, ds, event.value)
                continue
            topic = topics.get(event.slug)
            if topic is None:
                topic = topics[event.slug] = self.topics.ds(event.slug)
            value = event.value
            if type(value) is not float or not isfinite(value):
                payload = format_state(value, self.payload_format, ds.unit, ts or None)
            elif as_json:  # json.dumps writes a finite float as its repr, as here
                payload = f'{{"value":{value!r},"unit":{self._unit_json(ds)},"ts":"{ts}"}}'.encode()
            else:
                payload = repr(value).encode()
            batch.append((topic, payload))
        if batch:
            self.mqtt.publish_many(batch)

    def _unit_json(self, ds: DatastreamDescriptor) -> str:
        """`ds.unit` as a JSON string, as `format_state` writes it (kept per datastream)."""
        cached = self._units.get(ds.index)
        if cached is None or cached[0] is not ds:
            cached = self._units[ds.index] = (ds, json.dumps(ds.unit, ensure_ascii=False))
        return cached[1]

    def pin(self, pin: int, value: int, *, coalesce: bool = True) -> None:
        """Publish a pin value (0/1 or raw ADC counts) on `{dev}/pin/{n}`, not retained.

        Plain format: the number; json format: `{"value": v, "ts": "<RFC 3339 UTC>"}`.
        `coalesce=False` keeps every message (edges must not be merged while the broker
        is slow).
        """
        if self.payload_format == "json":
            payload = dumps({"value": value, "ts": self.clock.now()})
        else:
            payload = str(value).encode()
        self.mqtt.publish(self.topics.pin(pin), payload, qos=self.state_qos, coalesce=coalesce)

    def text(self, text: str) -> None:
        """Publish a line the sketch printed on `{dev}/log` (QoS 0, not retained, UTF-8)."""
        self.mqtt.publish(self.topics.log, text.encode("utf-8"), qos=0, coalesce=False)

    # ---- republishing -------------------------------------------------------------------------

    def publish_state(self) -> None:
        """(Re)publish every retained topic of this board: status, hello, meta, values."""
        board = self.board
        self.mqtt.publish(
            self.topics.status, b"online" if board.online else b"offline", qos=1, retain=True
        )
        if board.hello is None or board.session is None:
            return
        if board.session.hello_packet is not None:
            self.mqtt.publish(self.topics.hello, board.session.hello_packet, qos=1, retain=True)
        self.mqtt.publish(self.topics.meta, dumps(self.meta()), qos=1, retain=True)
        for slug, payload in self.retained_payloads.items():
            if slug in board.ds_by_slug:
                self.mqtt.publish(self.topics.ds(slug), payload, qos=1, retain=True)

    def meta(self) -> dict[str, Any]:
        """JSON capability summary of the board (`{base}/{dev}/meta`)."""
        board = self.board
        hello = board.hello
        if hello is None:
            return {"id": self.dev, "port": board.config.port, "state": board.state}
        return {
            "id": self.dev,
            "port": board.config.port,
            "firmware": {"name": hello.firmware_name, "version": hello.version_string},
            "mcu_id": hello.mcu_id_hex,
            "ota_capable": hello.ota_capable,
            "max_payload": hello.max_payload,
            "i2c_buses": hello.i2c_buses,
            "spi_buses": hello.spi_buses,
            "uart_count": hello.uart_count,
            "pins": [
                {
                    "pin": p.pin,
                    "capabilities": list(p.capability_names),
                    "modes": [m.name.lower() for m in p.modes],
                }
                for p in hello.pins
            ],
            "modules": [
                {
                    "id": m.module_id,
                    "name": m.name,
                    "topic": f"{self.topics.prefix}/module/{slug}",
                    "version": f"{m.version[0]}.{m.version[1]}",
                    "pins": list(m.pins),
                }
                for slug, m in module_slugs(hello.modules).items()
            ],
            "datastreams": [
                self.datastream_info(slug, ds) for slug, ds in board.ds_by_slug.items()
            ],
            "problems": list(hello.problems),
        }

    def datastream_info(self, slug: str, ds: DatastreamDescriptor) -> dict[str, Any]:
        """One datastream for meta/inventory: name, type, unit, flags and topics."""
        known = ds.known_type
        info: dict[str, Any] = {
            "index": ds.index,
            "name": ds.name,
            "type": known.name.lower() if known else int(ds.type),
            "unit": ds.unit,
            "writable": ds.writable,
            "retain": ds.retain,
            "topic": self.topics.ds(slug),
        }
        if ds.writable:
            info["set_topic"] = self.topics.ds_set(slug)
        return info

    def inventory_entry(self, refused: str | None = None) -> dict[str, Any]:
        """This board's entry in `{base}/bridge/{bridge_id}/devices`; `refused`: why
        another bridge runs it (state `refused`, the sentence in `reason`,
        `docs/fleet.md` §2)."""
        board = self.board
        hello = board.hello
        entry: dict[str, Any] = {
            "id": self.dev,
            "port": board.config.port,
            "state": "refused" if refused is not None else board.state,
            "firmware": (
                {"name": hello.firmware_name, "version": hello.version_string} if hello else None
            ),
            "mcu_id": hello.mcu_id_hex if hello else None,
            "datastreams": [
                self.datastream_info(slug, ds) for slug, ds in board.ds_by_slug.items()
            ],
            "modules": [m.name for m in hello.modules] if hello else [],
            "pin_count": hello.pin_count if hello else 0,
            "read_only": board.config.read_only,
        }
        if refused is not None:
            entry["reason"] = refused
        return entry

    # ---- command outcomes ---------------------------------------------------------------------

    def respond(
        self,
        response_topic: str | None,
        correlation_data: bytes | None,
        doc: dict[str, Any],
    ) -> None:
        """Answer on the MQTT 5 Response Topic (with Correlation Data), if one was given."""
        if response_topic:
            props = publish_properties(correlation_data)
            self.mqtt.publish(response_topic, dumps(doc), qos=1, properties=props, coalesce=False)

    def report(
        self,
        topic: str,
        error: ConduytError,
        transaction: Any,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
    ) -> None:
        """Publish the error report on `{dev}/error` and on the response topic, if any."""
        doc = error_report(topic, error, transaction)
        self.board.errors.append({**doc, "ts": time.time()})
        # Debug, not info: any client allowed to publish under the base topic can make a
        # refusal per message; the report on `{dev}/error` is where a user sees it.
        log.debug(
            "command refused",
            device=self.dev,
            topic=topic,
            error=error_kind(error),
            reason=str(error),
        )
        self.mqtt.publish(self.topics.error, dumps(doc), qos=1, coalesce=False)
        self.respond(response_topic, correlation_data, {"ok": False, **doc})


__all__ = ["BoardFace"]
