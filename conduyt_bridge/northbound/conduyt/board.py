"""One board's MQTT face: availability, HELLO/meta, datastream state and commands.

`BoardBridge` observes a `DeviceSession` (events, online/offline) and publishes through
the shared `MqttConnection`; commands for the board arrive through `submit()` and run one
at a time, in arrival order, on the board's own worker so a slow board never holds up
another board or the MQTT reader (`docs/architecture.md` §5).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from conduyt_bridge.app.config import DeviceConfig
from conduyt_bridge.device.serial_text import LineRateLimiter
from conduyt_bridge.device.session import DeviceSession, SessionState
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytDisconnectedError,
    ConduytError,
    ConduytForbiddenError,
    ConduytInternalError,
    ConduytPayloadError,
    ErrorName,
    describe_exception,
)
from conduyt_bridge.northbound.conduyt.payloads import (
    PayloadFormat,
    datastream_command_value,
    dumps,
    error_report,
    format_state,
    json_value,
    parse_command_payload,
    utc_timestamp,
)
from conduyt_bridge.northbound.conduyt.topics import (
    CommandKind,
    CommandTopic,
    DeviceTopics,
    datastream_slugs,
    module_slugs,
)
from conduyt_bridge.northbound.mqtt.connection import MqttConnection, publish_properties
from conduyt_bridge.protocol.commands import ds_write, parse_ds_event, parse_pin_value
from conduyt_bridge.protocol.constants import DatastreamType, PacketType
from conduyt_bridge.protocol.errors import PayloadDecodeError, ValueDecodeError, ValueEncodeError
from conduyt_bridge.protocol.framing import TextLine
from conduyt_bridge.protocol.hello import DatastreamDescriptor, HelloResp
from conduyt_bridge.protocol.packet import Packet
from conduyt_bridge.protocol.values import (
    DatastreamValue,
    StringEncoding,
    decode_value,
    encode_value,
    shortest_float32,
)

COMMAND_QUEUE_LIMIT = 256
"""Commands waiting per board; more are refused with a `busy` error report."""

PAYLOAD_SLACK = 1024
"""Bytes allowed beyond the longest JSON form of a command's payload bytes (the object's
keys, whitespace, a `transaction` id); see `BoardBridge.payload_limit`."""

JSON_BYTES_PER_BYTE = 6
"""Longest JSON text of one payload byte: a `\\u00XX` escape in a string."""

UNKNOWN_MAX_PAYLOAD = 0xFFFF
"""The board limit assumed before its HELLO_RESP (the largest the u16 field can say)."""

RECENT_ERRORS = 20
"""Error reports kept per board for the status page and health."""

Handler = Callable[["BoardBridge", "Command"], Awaitable[dict[str, Any]]]
"""A command handler: returns the success document (without `ok`) or raises ConduytError."""


@dataclass(slots=True)
class Command:
    """A command message for one board, as received from MQTT."""

    topic: str
    parsed: CommandTopic
    payload: bytes
    retain: bool = False
    response_topic: str | None = None
    correlation_data: bytes | None = None
    received_at: float = field(default_factory=time.monotonic)
    refused_unread: bool = False
    """True when the payload was refused before decoding (too long): never parse it."""
    _transaction: Any = field(default=None, init=False, repr=False, compare=False)
    _transaction_read: bool = field(default=False, init=False, repr=False, compare=False)

    def transaction(self) -> Any:
        """The `transaction` member of a JSON-object payload, if any (echoed in results).

        Parsed once and kept: a result and an error report both ask for it.
        """
        if not self._transaction_read:
            self._transaction_read = True
            if not self.refused_unread:
                try:
                    self._transaction = parse_command_payload(self.payload).transaction
                except ConduytError:
                    self._transaction = None
        return self._transaction


class BoardBridge:
    """Bridges one board: publishes its state and executes its commands.

    Extra command kinds and event kinds (pins, modules, raw packets) plug in through
    `handlers` and `event_hooks`.
    """

    def __init__(
        self,
        config: DeviceConfig,
        topics: DeviceTopics,
        mqtt: MqttConnection,
        payload_format: PayloadFormat = "plain",
        state_qos: int = 0,
    ) -> None:
        self.config = config
        self.dev = config.device_id
        self.topics = topics
        self.mqtt = mqtt
        self.payload_format = payload_format
        self.state_qos = state_qos
        self.session: DeviceSession | None = None
        self.hello: HelloResp | None = None
        self.ds_by_slug: dict[str, DatastreamDescriptor] = {}
        self.slug_by_index: dict[int, str] = {}
        self.values: dict[str, DatastreamValue] = {}
        self.retained_payloads: dict[str, bytes] = {}
        self.value_times: dict[str, float] = {}
        """Wall-clock time (s since the epoch) of each datastream's last value."""
        self.replay: dict[str, DatastreamValue] = {}
        self.retained_seed: dict[str, bytes] = {}
        self.errors: deque[dict[str, Any]] = deque(maxlen=RECENT_ERRORS)
        self.event_counts: dict[str, int] = {}
        self.handlers: dict[CommandKind, Handler] = {CommandKind.DS_SET: handle_ds_set}
        self.event_hooks: dict[int, Callable[[BoardBridge, Packet], None]] = {}
        self.change_hooks: list[Callable[[BoardBridge, HelloResp, bool], Awaitable[None]]] = []
        self.offline_hooks: list[Callable[[BoardBridge], Awaitable[None]]] = []
        self.published_ds_topics: set[str] = set()
        self._queue: asyncio.Queue[Command] = asyncio.Queue(COMMAND_QUEUE_LIMIT)
        self._online = asyncio.Event()
        self.text_limiter = LineRateLimiter()
        """Bounds `{dev}/log` traffic; `text_limiter.dropped` counts refused lines."""
        self.log = structlog.stdlib.get_logger(__name__).bind(device=self.dev)

    # ---- state ------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        """True while the board's session is online."""
        return self.session is not None and self.session.online

    @property
    def state(self) -> str:
        """`online`, `connecting` or `offline`."""
        return str(self.session.state) if self.session is not None else "offline"

    def require_session(self) -> DeviceSession:
        """The session, if online. Raises ConduytDisconnectedError."""
        if self.session is None or not self.session.online:
            raise ConduytDisconnectedError(f"board '{self.dev}' is offline")
        return self.session

    def require_hello(self) -> HelloResp:
        """The board's HELLO_RESP, if known. Raises ConduytDisconnectedError."""
        if self.hello is None:
            raise ConduytDisconnectedError(f"board '{self.dev}' has not completed a handshake yet")
        return self.hello

    # ---- SessionObserver ------------------------------------------------------------------

    async def on_online(self, session: DeviceSession, hello: HelloResp, changed: bool) -> None:
        """Publish availability, HELLO, meta and retained datastream topics for the board."""
        self._online.set()
        old_topics = set(self.published_ds_topics)
        self._adopt_hello(hello)
        if changed:
            self.log.warning("a different board or firmware is now on this port")
            self.values.clear()
            self.retained_payloads.clear()
            self.replay.clear()
            keep = {self.topics.ds(slug) for slug in self.ds_by_slug}
            for topic in old_topics - keep:
                # Clear retained state of datastreams that no longer exist.
                self.mqtt.publish(topic, b"", qos=1, retain=True)
                self.published_ds_topics.discard(topic)
        for hook in self.change_hooks:
            await hook(self, hello, changed)
        self.publish_state()

    async def on_offline(self, session: DeviceSession, reason: str) -> None:
        """Publish `offline` on the board's status topic at once."""
        self._online.clear()
        self.mqtt.publish(self.topics.status, b"offline", qos=1, retain=True)
        for hook in self.offline_hooks:
            with contextlib.suppress(Exception):
                await hook(self)

    def on_event(self, session: DeviceSession, packet: Packet) -> None:
        """Route a board event to its publisher; unknown kinds are only counted."""
        name = packet.type_name
        self.event_counts[name] = self.event_counts.get(name, 0) + 1
        try:
            if packet.type == PacketType.DS_EVENT:
                self._on_ds_event(packet)
            elif packet.type == PacketType.PIN_EVENT:
                pv = parse_pin_value(packet.payload)
                self.publish_pin(pv.pin, pv.value)
            elif packet.type == PacketType.FATAL:
                text = packet.payload.decode("utf-8", errors="replace")
                self.log.error("board reported FATAL", text=text)
            elif packet.type == PacketType.LOG:
                text = packet.payload.decode("utf-8", errors="replace")
                self.log.info("board log", text=text)
        except (PayloadDecodeError, ValueDecodeError) as exc:
            self.log.debug("malformed event", packet=repr(packet), error=describe_exception(exc))
        hook = self.event_hooks.get(packet.type) or self.event_hooks.get(-1)
        if hook is not None:
            hook(self, packet)

    def on_text(self, session: DeviceSession, line: TextLine) -> None:
        """Publish a line the sketch printed on `{dev}/log` (QoS 0, not retained, UTF-8),
        at most `LOG_LINES_PER_S` per second after a burst of `LOG_BURST`."""
        if not self.text_limiter.allow():
            if self.text_limiter.dropped == 1 or self.text_limiter.dropped % 1000 == 0:
                self.log.info(
                    "board prints faster than {dev}/log carries: lines dropped",
                    dropped=self.text_limiter.dropped,
                )
            return
        self.log.debug("board printed", text=line.text)
        self.mqtt.publish(self.topics.log, line.text.encode("utf-8"), qos=0, coalesce=False)

    def _adopt_hello(self, hello: HelloResp) -> None:
        self.hello = hello
        self.ds_by_slug = datastream_slugs(hello.datastreams)
        self.slug_by_index = {ds.index: slug for slug, ds in self.ds_by_slug.items()}

    def _on_ds_event(self, packet: Packet) -> None:
        session = self.session
        if session is not None and session.hello is not None and session.hello is not self.hello:
            # Events can arrive during the handshake, before on_online.
            self._adopt_hello(session.hello)
        event = parse_ds_event(packet.payload)
        slug = self.slug_by_index.get(event.index)
        if slug is None:
            self.log.debug("DS_EVENT for an undeclared datastream", index=event.index)
            return
        ds = self.ds_by_slug[slug]
        value = decode_value(ds, event.raw)
        self.set_value(slug, ds, value)

    def set_value(self, slug: str, ds: DatastreamDescriptor, value: DatastreamValue) -> None:
        """Record and publish a datastream's value (retained iff the datastream says so)."""
        self.values[slug] = value
        self.value_times[slug] = time.time()
        topic = self.topics.ds(slug)
        payload = format_state(value, self.payload_format, ds.unit)
        self.mqtt.publish(
            topic, payload, qos=self.state_qos if not ds.retain else 1, retain=ds.retain
        )
        if ds.retain:
            self.published_ds_topics.add(topic)
            self.retained_payloads[slug] = payload

    def publish_pin(self, pin: int, value: int, *, coalesce: bool = True) -> None:
        """Publish a pin value (0/1 or raw ADC counts) on `{dev}/pin/{n}`, not retained.

        Plain format: the number; json format: `{"value": v, "ts": "<RFC 3339 UTC>"}`.
        `coalesce=False` keeps every message (edges must not be merged while the broker
        is slow).
        """
        if self.payload_format == "json":
            payload = dumps({"value": value, "ts": utc_timestamp()})
        else:
            payload = str(value).encode()
        self.mqtt.publish(self.topics.pin(pin), payload, qos=self.state_qos, coalesce=coalesce)

    # ---- republishing -----------------------------------------------------------------------

    def publish_state(self) -> None:
        """(Re)publish every retained topic of this board: status, hello, meta, values."""
        online = self.online
        self.mqtt.publish(
            self.topics.status, b"online" if online else b"offline", qos=1, retain=True
        )
        if self.hello is None or self.session is None:
            return
        if self.session.hello_packet is not None:
            self.mqtt.publish(self.topics.hello, self.session.hello_packet, qos=1, retain=True)
        self.mqtt.publish(self.topics.meta, dumps(self.meta()), qos=1, retain=True)
        for slug, payload in self.retained_payloads.items():
            # The payload as first published: a republish must not make an old value
            # (or its `ts`) look fresh.
            if slug in self.ds_by_slug:
                self.mqtt.publish(self.topics.ds(slug), payload, qos=1, retain=True)

    def meta(self) -> dict[str, Any]:
        """JSON capability summary of the board (`{base}/{dev}/meta`)."""
        hello = self.hello
        if hello is None:
            return {"id": self.dev, "port": self.config.port, "state": self.state}
        return {
            "id": self.dev,
            "port": self.config.port,
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
            "datastreams": [self.datastream_info(slug, ds) for slug, ds in self.ds_by_slug.items()],
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

    def inventory_entry(self) -> dict[str, Any]:
        """This board's entry in `{base}/bridge/devices`."""
        hello = self.hello
        return {
            "id": self.dev,
            "port": self.config.port,
            "state": self.state,
            "firmware": (
                {"name": hello.firmware_name, "version": hello.version_string} if hello else None
            ),
            "mcu_id": hello.mcu_id_hex if hello else None,
            "datastreams": [self.datastream_info(slug, ds) for slug, ds in self.ds_by_slug.items()],
            "modules": [m.name for m in hello.modules] if hello else [],
            "pin_count": hello.pin_count if hello else 0,
            "read_only": self.config.read_only,
        }

    # ---- commands -------------------------------------------------------------------------

    @property
    def payload_limit(self) -> int:
        """Longest MQTT command payload accepted for this board, bytes.

        The rule: a command carries at most `M` bytes to the board, `M` being `max_payload`
        of its HELLO_RESP (docs/hostile-input.md). The longest MQTT text that can stand for
        one such byte is `JSON_BYTES_PER_BYTE` (6) characters, a `\\u00XX` escape in a
        JSON string (a byte list's `255,` is 4, base64 less than 2, a raw packet 1 plus an
        8-byte header), so no command for the board can be longer than
        `6 * M + PAYLOAD_SLACK` (1024 bytes for the `{"value": …, "transaction": …}`
        wrapper and whitespace). Before the first HELLO_RESP `M` is taken as 65535.
        """
        hello = self.session.hello if self.session is not None else None
        hello = hello or self.hello
        m = hello.max_payload if hello is not None and hello.max_payload else UNKNOWN_MAX_PAYLOAD
        return JSON_BYTES_PER_BYTE * m + PAYLOAD_SLACK

    def submit(self, command: Command) -> None:
        """Queue a command for this board's worker; refuses at once a payload longer than
        `payload_limit` (before decoding any of it) and any command while the queue is
        full."""
        limit = self.payload_limit
        if len(command.payload) > limit:
            command.refused_unread = True
            self.report(
                command,
                ConduytPayloadError(
                    f"payload of {len(command.payload)} bytes is longer than any command for "
                    f"board '{self.dev}' can be ({limit} bytes at most)",
                    ErrorName.PAYLOAD_TOO_LONG,
                ),
            )
            return
        try:
            self._queue.put_nowait(command)
        except asyncio.QueueFull:
            self.report(
                command,
                ConduytCapabilityError(
                    f"board '{self.dev}' has {COMMAND_QUEUE_LIMIT} commands waiting; try later",
                    ErrorName.BUSY,
                ),
            )

    async def run_commands(self) -> None:
        """The board's command worker: executes queued commands in order, forever."""
        while True:
            command = await self._queue.get()
            await self.execute(command)

    async def execute(self, command: Command) -> None:
        """Execute one command and publish its outcome (result or error report)."""
        started = time.monotonic()
        try:
            if command.retain:
                raise ConduytForbiddenError(
                    "retained command ignored: commands must not be published with the "
                    "retain flag (a stale retained command would re-run on every restart)",
                    ErrorName.RETAINED_COMMAND,
                )
            if self.config.read_only:
                raise ConduytForbiddenError(
                    f"board '{self.dev}' is configured read_only: commands are refused",
                    ErrorName.READ_ONLY,
                )
            await self._wait_for_handshake()
            handler = self.handlers.get(command.parsed.kind)
            if handler is None:
                raise ConduytForbiddenError(
                    f"{command.parsed.kind} commands are not enabled for board '{self.dev}'",
                    ErrorName.NOT_ENABLED,
                )
            result = await handler(self, command)
        except ConduytError as exc:
            self.report(command, exc)
            return
        except Exception as exc:  # a handler bug must not kill the board's worker
            self.log.exception("command handler failed", topic=command.topic)
            self.report(command, ConduytInternalError(f"internal error: {exc}"))
            return
        self.log.debug(
            "command done", topic=command.topic, ms=round((time.monotonic() - started) * 1000, 1)
        )
        self.respond(command, {"ok": True, **result})

    async def _wait_for_handshake(self) -> None:
        """Hold a command while the board's handshake is under way (after a broker
        reconnect, commands queued by the broker arrive at once; an Uno resets when its
        port opens and answers HELLO a second or two later). Bounded by the time the
        handshake may take; a board that is offline (not connecting) is not waited for."""
        session = self.session
        if session is None or session.online:
            return
        deadline = time.monotonic() + session.handshake_budget_s
        while session.state is SessionState.CONNECTING and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await self._online.wait()

    def respond(self, command: Command, doc: dict[str, Any]) -> None:
        """Answer on the MQTT 5 Response Topic (with Correlation Data), if one was given."""
        transaction = command.transaction()
        if transaction is not None:
            doc = {**doc, "transaction": transaction}
        if command.response_topic:
            props = publish_properties(command.correlation_data)
            self.mqtt.publish(
                command.response_topic, dumps(doc), qos=1, properties=props, coalesce=False
            )

    def report(self, command: Command, error: ConduytError) -> None:
        """Publish the error report on `{dev}/error` and on the response topic, if any."""
        doc = error_report(command.topic, error, command.transaction())
        self.errors.append({**doc, "ts": time.time()})
        # Debug, not info: any client allowed to publish under the base topic can make a
        # refusal per message; the report on `{dev}/error` is where a user sees it.
        self.log.debug("command refused", topic=command.topic, error=error.name, reason=str(error))
        self.mqtt.publish(self.topics.error, dumps(doc), qos=1, coalesce=False)
        if command.response_topic:
            props = publish_properties(command.correlation_data)
            self.mqtt.publish(
                command.response_topic,
                dumps({"ok": False, **doc}),
                qos=1,
                properties=props,
                coalesce=False,
            )

    async def replay_retained(self, session: DeviceSession) -> None:
        """Handshake hook: write the last value written through the bridge to each writable
        retained datastream again (the firmware stores nothing, protocol doc #13)."""
        hello = session.hello
        if hello is None:
            return
        if session.board_changed:
            # Another board or firmware: the old values mean nothing to it.
            self.replay.clear()
            self.retained_seed.clear()
            return
        if self.config.read_only:
            return  # a read_only board receives no command, replays included
        slugs = datastream_slugs(hello.datastreams)
        self._adopt_seeds(slugs)
        for slug in list(self.replay):
            value = self.replay.get(slug)
            if value is None:
                continue
            ds = slugs.get(slug)
            if ds is None or not ds.writable or not ds.retain:
                self.replay.pop(slug, None)
                continue
            try:
                raw = encode_value(ds, value, StringEncoding(self.config.string_encoding))
                await session.request(PacketType.DS_WRITE, ds_write(ds.index, raw))
            except (ConduytError, ValueEncodeError) as exc:
                self.log.warning("replay failed", datastream=ds.name, error=describe_exception(exc))
                continue
            self.values[slug] = value
            self.log.info("replayed retained value", datastream=ds.name, value=json_value(value))

    def _adopt_seeds(self, slugs: dict[str, DatastreamDescriptor]) -> None:
        # Retained state found on the broker at start-up (the bridge keeps nothing on disk:
        # the broker is the store) becomes the replay value of writable retained
        # datastreams the bridge has not written itself since.
        seeds, self.retained_seed = self.retained_seed, {}
        for slug, payload in seeds.items():
            ds = slugs.get(slug)
            if ds is None or not ds.writable or not ds.retain or slug in self.replay:
                continue
            try:
                value = datastream_command_value(payload, ds).value
                encode_value(ds, value, StringEncoding(self.config.string_encoding))
            except (ConduytError, ValueEncodeError):
                continue
            self.replay[slug] = value


async def handle_ds_set(board: BoardBridge, command: Command) -> dict[str, Any]:
    """`{base}/{dev}/ds/{slug}/set`: validate, send DS_WRITE, publish the new state on ACK.

    Raises ConduytCapabilityError (unknown or read-only datastream, value out of the type's
    range), ConduytPayloadError (payload does not parse as the datastream's type),
    ConduytDisconnectedError, ConduytTimeoutError, ConduytNAKError.
    """
    board.require_hello()
    slug = command.parsed.target
    ds = board.ds_by_slug.get(slug)
    if ds is None:
        known = ", ".join(sorted(board.ds_by_slug)) or "none"
        raise ConduytCapabilityError(
            f"datastream '{slug}' does not exist on board '{board.dev}' (datastreams: {known})",
            ErrorName.UNKNOWN_DATASTREAM,
        )
    if not ds.writable:
        raise ConduytCapabilityError(
            f"datastream '{ds.name}' is read-only", ErrorName.DATASTREAM_READONLY
        )
    value = datastream_command_value(command.payload, ds).value
    try:
        raw = encode_value(ds, value, StringEncoding(board.config.string_encoding))
    except ValueEncodeError as exc:
        raise ConduytCapabilityError(str(exc), ErrorName.OUT_OF_RANGE) from None
    session = board.require_session()
    # session.request refuses a payload over the board's limit (PAYLOAD_TOO_LARGE).
    await session.request(PacketType.DS_WRITE, ds_write(ds.index, raw))
    if ds.known_type is DatastreamType.FLOAT32:
        value = shortest_float32(float(value))
    elif isinstance(value, float) and ds.known_type is not None and ds.known_type.is_integer:
        value = int(value)
    board.set_value(slug, ds, value)
    if ds.retain:
        board.replay[slug] = value
    return {"value": json_value(value)}
