"""The Conduyt topic layout as a northbound adapter (`docs/topics.md`).

For every board a `BoardFace` publishes the core's events under `{base}/{dev}/…`; command
messages on the board's command topics become `Command` jobs for the board's worker; the
bridge's own topics (`{base}/bridge/{bridge_id}/devices`, `…/health`, the `offline` states
at a clean stop) are published here too. At start the retained datastream states are read
back from the broker to seed the replay of writable retained datastreams
(`docs/architecture.md` §3, §4).

A board that another live bridge claims (`host.refused`, `docs/fleet.md` §2) is
listed in the inventory with state `refused` and its reason; its topics belong to the
bridge that runs it, so nothing else of a board is published or routed here before this
bridge holds its claim (`host.runs(dev)`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import aiomqtt
import structlog

from conduyt_bridge.core.board import Board, SeedParser
from conduyt_bridge.core.events import (
    BoardEvent,
    BoardOffline,
    BoardOnline,
    CommandFailed,
    DatastreamUpdated,
    PacketReceived,
    PinValue,
    TextPrinted,
)
from conduyt_bridge.errors import ConduytPayloadError, ErrorName, describe_exception
from conduyt_bridge.northbound.conduyt.command import Command, ConduytBoard
from conduyt_bridge.northbound.conduyt.face import BoardFace
from conduyt_bridge.northbound.conduyt.handlers import HANDLERS
from conduyt_bridge.northbound.conduyt.handlers.raw import RawController
from conduyt_bridge.northbound.conduyt.payloads import (
    PayloadFormat,
    datastream_command_value,
    dumps,
)
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics, parse_command_topic
from conduyt_bridge.northbound.host import Adapter, AdapterHost
from conduyt_bridge.northbound.mqtt.connection import OutMessage
from conduyt_bridge.protocol.hello import DatastreamDescriptor
from conduyt_bridge.protocol.values import DatastreamValue

log = structlog.stdlib.get_logger(__name__)

PAYLOAD_SLACK = 1024
"""Bytes allowed beyond the longest JSON form of a command's payload bytes (the object's
keys, whitespace, a `transaction` id); see `payload_limit`."""

JSON_BYTES_PER_BYTE = 6
"""Longest JSON text of one payload byte: a `\\u00XX` escape in a string."""

UNKNOWN_MAX_PAYLOAD = 0xFFFF
"""The board limit assumed before its HELLO_RESP (the largest the u16 field can say)."""


def payload_limit(board: Board) -> int:
    """Longest MQTT command payload accepted for `board`, bytes.

    The rule: a command carries at most `M` bytes to the board, `M` being `max_payload`
    of its HELLO_RESP (`docs/hostile-input.md`). The longest MQTT text that can stand for
    one such byte is `JSON_BYTES_PER_BYTE` (6) characters, a `\\u00XX` escape in a JSON
    string (a byte list's `255,` is 4, base64 less than 2, a raw packet 1 plus an 8-byte
    header), so no command for the board can be longer than `6 * M + PAYLOAD_SLACK` (1024
    bytes for the `{"value": …, "transaction": …}` wrapper and whitespace). Before the
    first HELLO_RESP `M` is taken as 65535.
    """
    m = board.max_payload or UNKNOWN_MAX_PAYLOAD
    return JSON_BYTES_PER_BYTE * m + PAYLOAD_SLACK


@dataclass(frozen=True, slots=True)
class ConduytOptions:
    """The adapter's settings: `[bridge] base_topic`, `id` (the bridge's topics
    `{base}/bridge/{id}/...`), `health_interval_s` (s) and `[mqtt] payload_format`."""

    base_topic: str = "conduyt"
    payload_format: PayloadFormat = "plain"
    health_interval_s: float = 30.0
    bridge_id: str = "conduyt-bridge"


class ConduytAdapter:
    """The Conduyt layout for every board of a host."""

    def __init__(self, host: AdapterHost, options: ConduytOptions) -> None:
        self.host = host
        self.options = options
        self.topics = BridgeTopics(options.base_topic, options.bridge_id)
        self.boards: dict[str, ConduytBoard] = {}
        for dev, board in host.boards.items():
            face = BoardFace(
                board, self.topics.device(dev), host.mqtt, payload_format=options.payload_format
            )
            self.boards[dev] = ConduytBoard(board, face, RawController(board, face), HANDLERS)

    def install(self) -> None:
        """Register on the host: events, routes, hooks, the health job, final messages."""
        host = self.host
        host.bus.subscribe(self.on_event)
        # The board's own retained topics (status `online`, hello, meta, states) go out
        # after every other adapter reacted to it coming online (Home Assistant publishes
        # its discovery configs first, so HA knows the entities before their state).
        host.bus.subscribe(self.announce, kinds=(BoardOnline,), late=True)
        host.on_start(self.seed_replay)
        host.on_connect(self.on_connect)
        host.add_router(self.route_command)
        host.add_job("health", self.health_loop)
        host.add_final_messages(self.final_messages)
        host.on_refused_changed(self.on_claims_changed)

    # ---- events ---------------------------------------------------------------------------

    @property
    def refused(self) -> Mapping[str, str]:
        """Boards another live bridge runs: id → reason (`docs/fleet.md` §2)."""
        return self.host.refused

    def on_event(self, event: BoardEvent) -> None:
        """Publish one board event (the hot path: one call per DS_EVENT)."""
        ctx = self.boards.get(event.dev)
        if ctx is None:
            return
        face = ctx.face
        if isinstance(event, DatastreamUpdated):
            face.datastream(event.slug, event.datastream, event.value)
        elif isinstance(event, PinValue):
            face.pin(event.pin, event.value, coalesce=not event.edge)
            if event.edge:
                ctx.raw.on_edge(event.pin, event.value)
        elif isinstance(event, PacketReceived):
            ctx.raw.on_packet(event.packet)
        elif isinstance(event, TextPrinted):
            face.text(event.text)
        elif isinstance(event, CommandFailed):
            face.report(event.label, event.error, event.transaction)
        elif isinstance(event, BoardOnline):
            if event.changed:
                face.changed()
            self.publish_inventory()
        elif isinstance(event, BoardOffline):
            if self.host.runs(event.dev):  # given up: the owner's status stands
                face.offline()
            self.publish_inventory()

    def announce(self, event: BoardEvent) -> None:
        """`BoardOnline`, after every other listener: republish the board's retained
        topics (`docs/topics.md` §2)."""
        ctx = self.boards.get(event.dev)
        if ctx is not None and self.host.runs(event.dev):
            ctx.face.publish_state()

    # ---- broker side ------------------------------------------------------------------------

    async def on_connect(self) -> None:
        """Subscribe to every board's command topics, then republish everything retained,
        the inventory and health."""
        filters: list[str] = []
        for ctx in self.boards.values():
            filters += ctx.face.topics.command_filters()
        await self.host.mqtt.subscribe(filters, resend_retained=True)
        for dev, ctx in self.boards.items():
            if self.host.runs(dev):
                ctx.face.publish_state()
        self.publish_inventory()
        self.host.mqtt.publish(self.topics.health, dumps(self.host.health()), qos=0)

    async def seed_replay(self) -> None:
        """Read the boards' retained datastream states once, before their sessions start,
        so writable retained values survive a bridge restart as well as a board reboot
        (`docs/architecture.md` §4): the broker is the bridge's only store. Read before any
        board pushes, so what is found is what was published before the restart."""
        mqtt = self.host.mqtt
        filters = [f"{ctx.face.topics.prefix}/ds/+" for ctx in self.boards.values()]
        if not filters or not mqtt.connected:
            return
        try:
            found = await mqtt.fetch_retained(filters)
        except aiomqtt.MqttError as exc:
            log.info("could not read retained datastream states", error=describe_exception(exc))
            return
        for topic, payload in found.items():
            parsed = topic[len(self.topics.base) + 1 :].split("/")
            ctx = self.boards.get(parsed[0])
            if ctx is not None and len(parsed) == 3 and parsed[1] == "ds":
                ctx.board.seed_replay(parsed[2], _seed_parser(payload))

    async def route_command(self, message: aiomqtt.Message) -> bool:
        """A command message: queued on its board's worker. Returns False for a topic
        that is not a command topic of a known board."""
        topic = message.topic.value
        parsed = parse_command_topic(self.topics.base, topic)
        if parsed is None:
            return False
        ctx = self.boards.get(parsed.dev)
        if ctx is None:
            log.debug("command for an unknown board", topic=topic)
            return True
        if parsed.dev in self.refused:
            # The bridge that holds the board's claim answers it (`docs/fleet.md` §2).
            log.debug("command for a board another bridge runs", topic=topic)
            return True
        payload = message.payload
        data = payload if isinstance(payload, bytes) else str(payload or "").encode()
        props = message.properties
        response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        command = Command(
            ctx=ctx,
            topic=topic,
            parsed=parsed,
            payload=data,
            retain=bool(message.retain),
            response_topic=response_topic or None,
            correlation_data=correlation,
        )
        limit = payload_limit(ctx.board)
        if len(data) > limit:
            command.refused_unread = True
            command.failed(
                ctx.board,
                ConduytPayloadError(
                    f"payload of {len(data)} bytes is longer than any command for "
                    f"board '{ctx.board.dev}' can be ({limit} bytes at most)",
                    ErrorName.PAYLOAD_TOO_LONG,
                ),
            )
            return True
        ctx.board.submit(command)
        return True

    def on_claims_changed(self) -> None:
        """The claims were decided, or a board was refused or taken over: publish the
        retained topics of the boards this bridge runs now, and the inventory."""
        if not self.host.mqtt.connected:
            return  # the next connect publishes them
        for dev, ctx in self.boards.items():
            if self.host.runs(dev):
                ctx.face.publish_state()
        self.publish_inventory()

    def publish_inventory(self) -> None:
        """Publish the retained `{base}/bridge/{id}/devices` inventory: a JSON list, one
        entry per configured board (a refused one with state `refused` and `reason`)."""
        refused = self.refused
        inventory = [
            ctx.face.inventory_entry(refused.get(dev)) for dev, ctx in self.boards.items()
        ]
        self.host.mqtt.publish(self.topics.devices, dumps(inventory), qos=1, retain=True)

    async def health_loop(self) -> None:
        """Publish `{base}/bridge/{id}/health` every `health_interval_s` (s)."""
        while True:
            self.host.mqtt.publish(self.topics.health, dumps(self.host.health()), qos=0)
            await asyncio.sleep(self.options.health_interval_s)

    def final_messages(self) -> list[OutMessage]:
        """`offline` on the status of every board this bridge runs and on the bridge's
        state (retained); a refused board's status belongs to its owner."""
        final = [
            OutMessage(ctx.face.topics.status, b"offline", 1, True)
            for dev, ctx in self.boards.items()
            if self.host.runs(dev)
        ]
        final.append(OutMessage(self.topics.state, b"offline", 1, True))
        return final


def _seed_parser(payload: bytes) -> SeedParser:
    def parse(ds: DatastreamDescriptor) -> DatastreamValue:
        value: DatastreamValue = datastream_command_value(payload, ds).value
        return value

    return parse


def conduyt_adapter(options: ConduytOptions) -> Adapter:
    """The adapter factory for the composition root: `conduyt_adapter(options)(host)`."""

    def install(host: AdapterHost) -> None:
        ConduytAdapter(host, options).install()

    return install


__all__ = ["ConduytAdapter", "ConduytOptions", "conduyt_adapter", "payload_limit"]
