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
from collections.abc import Mapping, Sequence
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
    ReceivedRun,
    TextPrinted,
)
from conduyt_bridge.errors import ConduytPayloadError, ErrorName, describe_exception
from conduyt_bridge.northbound.conduyt.command import Command, ConduytBoard
from conduyt_bridge.northbound.conduyt.entities import (
    attach_entities,
    detach_entities,
    seed_entities,
)
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
from conduyt_bridge.northbound.mqtt.inbound import payload_bytes, response_route
from conduyt_bridge.protocol.hello import DatastreamDescriptor
from conduyt_bridge.protocol.values import DatastreamValue

log = structlog.stdlib.get_logger(__name__)

_OTHER_EVENTS = (PinValue, TextPrinted, CommandFailed, BoardOnline, BoardOffline)
"""The event classes `ConduytAdapter.on_event` takes (the hot two have their own)."""

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
        for board in host.boards.values():
            self.boards[board.dev] = self._context(board)
        self._moved: dict[str, dict[str, bytes]] = {}
        """Successor id → the retained datastream payloads of the board it replaces."""

    def _context(self, board: Board) -> ConduytBoard:
        topics = self.topics.device(board.dev)
        face = BoardFace(board, topics, self.host.mqtt, payload_format=self.options.payload_format)
        return ConduytBoard(board, face, RawController(board, face), HANDLERS)

    def install(self) -> None:
        """Register on the host: events, routes, hooks, the health job, final messages."""
        host = self.host
        # One subscription per hot kind, so a DS_EVENT reaches its handler without the
        # isinstance chain of `on_event`, and a serial read's run of them in one batch call
        # (`docs/architecture.md` §6.1); one position in the bus for all three, as an
        # event matches exactly one of them.
        host.bus.subscribe(
            self.on_datastream, kinds=(DatastreamUpdated,), batch=self.on_datastreams
        )
        host.bus.subscribe(self.on_packet, kinds=(PacketReceived,), batch=self.on_packets)
        host.bus.subscribe(self.on_event, kinds=_OTHER_EVENTS)
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
        host.on_board_added(self.board_added)
        host.on_board_removed(self.board_removed)
        # Declared entities (`docs/entities.md`), set up per board: a board added while
        # the bridge runs gets its own through the same two calls.
        for ctx in self.boards.values():
            attach_entities(host, ctx)
        host.on_start(lambda: seed_entities(host, list(self.boards.values())))
        host.on_board_added(self._entities_added)
        host.on_board_removed(self._entities_removed)

    async def _entities_added(self, board: Board) -> None:
        ctx = self.boards.get(board.dev)
        if ctx is not None and ctx.entities is None and attach_entities(self.host, ctx):
            await seed_entities(self.host, [ctx])

    async def _entities_removed(self, board: Board, successor: str | None) -> None:
        ctx = self.boards.get(board.dev)
        if ctx is not None:
            detach_entities(self.host, ctx)

    # ---- events ---------------------------------------------------------------------------

    @property
    def refused(self) -> Mapping[str, str]:
        """Boards another live bridge runs: id → reason (`docs/fleet.md` §2)."""
        return self.host.refused

    def on_datastream(self, event: DatastreamUpdated) -> None:
        """Publish a datastream's new value (the hot path: one call per DS_EVENT)."""
        ctx = self.boards.get(event.dev)
        if ctx is not None:
            ctx.face.datastream(event.slug, event.datastream, event.value)

    def on_datastreams(self, events: Sequence[DatastreamUpdated]) -> None:
        """`on_datastream` for a batch of one board's events (`EventBus.emit_batch`)."""
        ctx = self.boards.get(events[0].dev) if events else None
        if ctx is not None:
            ctx.face.datastreams(events)

    def on_packets(self, events: Sequence[PacketReceived]) -> None:
        """`on_packet` for a batch of one board's events (`EventBus.emit_batch`)."""
        ctx = self.boards.get(events[0].dev) if events else None
        if ctx is not None:
            run = events.packets if isinstance(events, ReceivedRun) else None
            ctx.raw.on_packets(run if run is not None else [e.packet for e in events])

    def on_packet(self, event: PacketReceived) -> None:
        """Mirror an event packet raw / publish a module event (one call per DS_EVENT)."""
        ctx = self.boards.get(event.dev)
        if ctx is not None:
            ctx.raw.on_packet(event.packet)

    def on_event(self, event: BoardEvent) -> None:
        """Publish one board event of any kind."""
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
        data = payload_bytes(message)
        response_topic, correlation = response_route(message)
        command = Command(
            ctx=ctx,
            topic=topic,
            parsed=parsed,
            payload=data,
            retain=bool(message.retain),
            response_topic=response_topic,
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

    # ---- boards added and removed at run time (`docs/architecture.md` §11) ----------------

    async def board_added(self, board: Board) -> None:
        """Subscribe to the new board's command topics, publish its retained topics (the
        datastream states of the board it replaces, on its own topics) and the inventory."""
        ctx = self._context(board)
        self.boards[board.dev] = ctx
        for slug, payload in self._moved.pop(board.dev, {}).items():
            ctx.face.retained_payloads[slug] = payload
            ctx.face.published_ds_topics.add(ctx.face.topics.ds(slug))
            board.seed_replay(slug, _seed_parser(payload))
            self.host.mqtt.publish(ctx.face.topics.ds(slug), payload, qos=1, retain=True)
        await self.host.mqtt.subscribe(ctx.face.topics.command_filters(), resend_retained=True)
        if self.host.runs(board.dev) and self.host.mqtt.connected:
            ctx.face.publish_state()
        self.publish_inventory()

    async def board_removed(self, board: Board, successor: str | None) -> None:
        """Forget the board; unless it restarts under its id, drop its command topics and
        clear every retained topic under `{base}/{dev}/` (a successor gets the datastream
        states, `board_added`); then publish the inventory."""
        ctx = self.boards.pop(board.dev, None)
        if ctx is None:
            return
        if successor is not None:
            self._moved[successor] = dict(ctx.face.retained_payloads)
        if successor != board.dev:
            await self.host.mqtt.unsubscribe(ctx.face.topics.command_filters())
            await self.clear_retained(ctx)
        self.publish_inventory()

    async def clear_retained(self, ctx: ConduytBoard) -> None:
        """Empty every retained topic of a removed board: those it published and those
        the broker holds under `{base}/{dev}/#` (an earlier run's)."""
        topics = ctx.face.topics
        stale = {topics.status, topics.hello, topics.meta, *ctx.face.published_ds_topics}
        try:
            stale |= set(await self.host.mqtt.fetch_retained([f"{topics.prefix}/#"]))
        except aiomqtt.MqttError as exc:
            log.info("retained topics of a removed board not read", error=describe_exception(exc))
        for topic in sorted(stale):
            self.host.mqtt.publish(topic, b"", qos=1, retain=True)

    def publish_inventory(self) -> None:
        """Publish the retained `{base}/bridge/{id}/devices` inventory: a JSON list, one
        entry per configured board (a refused one with state `refused` and `reason`)."""
        refused = self.refused
        inventory = [ctx.face.inventory_entry(refused.get(dev)) for dev, ctx in self.boards.items()]
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
