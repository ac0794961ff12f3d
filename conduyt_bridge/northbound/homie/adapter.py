"""The Homie 5 convention as a northbound adapter (`docs/homie.md`; the Homie convention,
homieiot/convention `convention.md`).

The bridge is the root device `homie/5/{root}` and every board a child device
`homie/5/{root}-{board}`, on an MQTT session of its own (client id `{client_id}-homie`)
whose Will sets the root's `$state` to `lost`. Board events become property values; a
`/set` becomes a `HomieSet` job for the board's worker, validated by the core like every
other command and refused with the Conduyt error report on `{base}/{dev}/error`
(`docs/topics.md` §6). Child states follow the boards: `init` until the first handshake,
`ready` while online, `lost` while the bridge cannot reach the board; every device says
`disconnected` at a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.events import (
    BoardEvent,
    BoardOffline,
    BoardOnline,
    DatastreamUpdated,
    PacketReceived,
    PinValue,
)
from conduyt_bridge.core.naming import module_slugs
from conduyt_bridge.errors import (
    ConduytError,
    ConduytPayloadError,
    ErrorName,
    describe_exception,
)
from conduyt_bridge.northbound.conduyt.payloads import error_kind, error_report
from conduyt_bridge.northbound.homie.commands import HomieSet
from conduyt_bridge.northbound.homie.devices import board_device, bridge_device
from conduyt_bridge.northbound.homie.ids import HomieTopics, homie_id, unique_ids
from conduyt_bridge.northbound.homie.model import Binding, DeviceModel, PropertyModel
from conduyt_bridge.northbound.homie.publisher import DevicePublisher, dumps
from conduyt_bridge.northbound.host import Adapter, AdapterHost
from conduyt_bridge.northbound.mqtt.client import MqttSettings
from conduyt_bridge.northbound.mqtt.connection import MqttConnection, OutMessage
from conduyt_bridge.protocol.commands import parse_mod_event
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.errors import PayloadDecodeError
from conduyt_bridge.protocol.modules import attribute_event, decode_event

log = structlog.stdlib.get_logger(__name__)

REFRESH_S = 1.0
"""How often the online boards' descriptions are rebuilt to notice pin modes and
subscriptions set since (a change re-announces the child device)."""

LINK_GRACE_S = 10.0
"""How long the Homie link outlives the bridge's cancellation of its job, waiting for the
shutdown hook to say `disconnected` (the host cancels jobs before its shutdown hooks)."""

SET_SLACK = 1024
"""Bytes allowed in a `/set` payload beyond 6 per byte the board takes (`set_limit`)."""


@dataclass(frozen=True, slots=True)
class HomieOptions:
    """The adapter's settings: `[homie] enabled`, `prefix` (the Homie domain), `device_id`
    (the root device ID, `""`: from the MQTT client id), the `[mqtt]` settings for its own
    session, `[bridge] base_topic` (where refusals are reported) and the bridge version."""

    mqtt: MqttSettings
    enabled: bool = False
    prefix: str = "homie"
    device_id: str = ""
    base_topic: str = "conduyt"
    bridge_version: str = ""


def root_device_id(options: HomieOptions) -> str:
    """The root device ID: `device_id`, or the MQTT client id as a Homie ID
    (`Conduyt_Bridge` → `conduyt-bridge`)."""
    return options.device_id or homie_id(options.mqtt.client_id, "conduyt-bridge")


def set_limit(board: Board) -> int:
    """Longest `/set` payload taken for `board`, bytes: 6 per byte of its `max_payload`
    (65535 before the first handshake) plus `SET_SLACK`, the Conduyt layout's rule
    (`docs/hostile-input.md`)."""
    return 6 * (board.max_payload or 0xFFFF) + SET_SLACK


class HomieAdapter:
    """The Homie devices of one bridge."""

    def __init__(self, host: AdapterHost, options: HomieOptions) -> None:
        self.host = host
        self.options = options
        self.topics = HomieTopics(options.prefix)
        self.root = root_device_id(options)
        ids = unique_ids(host.boards, fallback="board")
        self.child_of = {dev: f"{self.root}-{i}" for dev, i in zip(host.boards, ids, strict=True)}
        self.dev_of = {child: dev for dev, child in self.child_of.items()}
        self.conn = MqttConnection(
            options.mqtt,
            self.topics.state(self.root),
            self.on_message,
            self.on_connect,
            will=lambda: OutMessage(self.topics.state(self.root), b"lost", 2, True),
            birth=None,
            client_id=f"{options.mqtt.client_id}-homie",
        )
        self.out = DevicePublisher(self.conn, self.topics)
        self.models: dict[str, DeviceModel] = {}
        self.pin_values: dict[tuple[str, int], int] = {}
        self._lock = asyncio.Lock()
        self._link: asyncio.Task[None] | None = None
        self._stopping = False

    def install(self) -> None:
        """Register on the host: events, the retained read, the link and refresh jobs,
        the shutdown hook."""
        host = self.host
        host.bus.subscribe(
            self.on_event, kinds=(DatastreamUpdated, PinValue, PacketReceived, BoardOffline)
        )
        host.bus.subscribe(self.on_online, kinds=(BoardOnline,))
        host.on_start(self.read_descriptions)
        host.add_job("homie-mqtt", self.run_link)
        host.add_job("homie-refresh", self.refresh_loop)
        host.on_shutdown(self.shutdown)

    # ---- models ----------------------------------------------------------------------

    def root_model(self) -> DeviceModel:
        """The root device (the bridge)."""
        name = f"Conduyt bridge {self.options.mqtt.client_id}"
        return bridge_device(self.root, name, tuple(self.child_of.values()))

    def child_model(self, dev: str) -> DeviceModel:
        """The child device of board `dev`, as the board is now."""
        return board_device(self.host.boards[dev], self.child_of[dev], self.root)

    def model(self, device: str) -> DeviceModel:
        """The last announced model of `device` (built now if none was)."""
        found = self.models.get(device)
        if found is None:
            dev = self.dev_of.get(device)
            found = self.child_model(dev) if dev is not None else self.root_model()
            self.models[device] = found
        return found

    def values(self, dev: str, model: DeviceModel) -> Iterator[tuple[str, PropertyModel, Any]]:
        """The known values of board `dev`'s retained properties: datastreams, pins."""
        board = self.host.boards[dev]
        for slug, value in list(board.values.items()):
            bound = model.bound(Binding("datastream", slug))
            if bound is not None:
                yield bound[0], bound[1], value
        for (owner, pin), value in list(self.pin_values.items()):
            bound = model.bound(Binding("pin", str(pin))) if owner == dev else None
            if bound is not None:
                yield bound[0], bound[1], value

    def child_state(self, dev: str) -> str | None:
        """`ready` while the board is online, `lost` when it was reached before but is not
        now, None (stay `init`) before its first handshake."""
        board = self.host.boards[dev]
        if board.online:
            return "ready"
        return "lost" if board.hello is not None else None

    async def announce_child(self, dev: str) -> None:
        """(Re)announce board `dev`'s child device: init, description, values, state.

        Not while the Homie link is down (`on_connect` announces everything then: queued
        in the outbox, a coalesced `ready` would overtake its `init`). Before the board's
        first handshake only `init`: its description is not known yet (a retained one
        from an earlier run stays, and keeps its version if the board is unchanged)."""
        model = self.child_model(dev)
        self.models[model.id] = model
        if not self.conn.connected:
            return
        if self.host.boards[dev].hello is None:
            self.out.state(model.id, "init")
            return
        await self.out.announce(model, self.values(dev, model), self.child_state(dev))

    # ---- broker side -----------------------------------------------------------------

    async def run_link(self) -> None:
        """The host job of the Homie MQTT link. The link itself runs in a task of its own
        that the host's cancellation does not reach (`LINK_GRACE_S`): the shutdown hook
        still needs it to publish `disconnected`."""
        if self._link is None or self._link.done():
            self._link = asyncio.get_running_loop().create_task(self.conn.run(), name="homie")
        link = self._link
        try:
            await asyncio.shield(link)
        except asyncio.CancelledError:
            if not link.done():
                asyncio.get_running_loop().call_later(LINK_GRACE_S, link.cancel)
            raise

    async def on_connect(self) -> None:
        """After every (re)connect of the Homie link: subscribe to the children's `/set`
        topics, then announce the children and, last, the root (`ready`)."""
        await self.conn.subscribe([self.topics.set_filter(c) for c in self.child_of.values()])
        async with self._lock:
            root = self.root_model()
            self.models[root.id] = root
            version = root.bound(Binding("bridge", "version"))
            values = [] if version is None else [(*version, self.options.bridge_version)]
            await self.out.announce(root, [], None)
            for dev in self.child_of:
                await self.announce_child(dev)
            for node, prop, value in values:
                self.out.value(root.id, node, prop, value)
            await self.out.settle()
            self.out.state(root.id, "ready")

    async def read_descriptions(self) -> None:
        """Start hook: read the retained `$description`s of the root and the children so
        that unchanged documents keep their versions across restarts."""
        mqtt = self.host.mqtt
        if not mqtt.connected:
            return
        devices = [self.root, *self.child_of.values()]
        try:
            found = await mqtt.fetch_retained([self.topics.description(d) for d in devices])
        except aiomqtt.MqttError as exc:
            log.info("could not read retained Homie descriptions", error=describe_exception(exc))
            return
        for device in devices:
            payload = found.get(self.topics.description(device))
            if payload:
                self.out.remember(device, payload)

    async def on_message(self, message: aiomqtt.Message) -> None:
        """A message on the Homie link: a `/set` becomes a `HomieSet` job for its board."""
        topic = message.topic.value
        parsed = self.topics.parse_set(topic)
        dev = self.dev_of.get(parsed[0]) if parsed is not None else None
        if parsed is None or dev is None:
            log.debug("Homie message on an unknown topic", topic=topic)
            return
        board = self.host.boards[dev]
        device, node, prop_id = parsed
        raw = message.payload
        payload = raw if isinstance(raw, bytes) else str(raw or "").encode()
        limit = set_limit(board)
        if len(payload) > limit:
            error = ConduytPayloadError(
                f"payload of {len(payload)} bytes is longer than any value for board "
                f"'{dev}' can be ({limit} bytes at most)",
                ErrorName.PAYLOAD_TOO_LONG,
            )
            self.report(board, topic, error)
            return
        prop = self.model(device).property(node, prop_id)
        if prop is None:
            error = ConduytPayloadError(
                f"device '{device}' has no property '{node}/{prop_id}' (see its $description)",
                ErrorName.BAD_TOPIC,
            )
            self.report(board, topic, error)
            return
        board.submit(
            HomieSet(topic, node, prop, payload, bool(message.retain), self.done, self.refused)
        )

    def done(self, board: Board, command: HomieSet, value: Any) -> None:
        """A `/set` succeeded: publish the value (pins, module commands; a datastream's
        value comes with its `DatastreamUpdated`)."""
        if value is None:
            return
        binding = command.prop.binding
        if binding.kind == "pin" and isinstance(value, int):
            self.pin_values[(board.dev, int(binding.key))] = value
        self.out.value(self.child_of[board.dev], command.node, command.prop, value)

    def refused(self, board: Board, command: HomieSet, error: ConduytError) -> None:
        """A `/set` was refused or failed: the error report."""
        self.report(board, command.topic, error)

    def report(self, board: Board, topic: str, error: ConduytError) -> None:
        """Publish the error report of `docs/topics.md` §6 for `/set` topic `topic` on
        `{base}/{dev}/error` through the bridge's link, and keep it in the board's recent
        errors. Debug level: any client allowed on the broker can cause one."""
        doc = error_report(topic, error)
        board.errors.append({**doc, "ts": time.time()})
        log.debug(
            "Homie command refused",
            device=board.dev,
            topic=topic,
            error=error_kind(error),
            reason=str(error),
        )
        error_topic = f"{self.options.base_topic}/{board.dev}/error"
        self.host.mqtt.publish(error_topic, dumps(doc), qos=1, coalesce=False)

    # ---- board events ------------------------------------------------------------------

    def on_event(self, event: BoardEvent) -> None:
        """Datastream values, pin values, module events and boards going away."""
        device = self.child_of.get(event.dev)
        if device is None or self._stopping:
            return
        if isinstance(event, DatastreamUpdated):
            bound = self.model(device).bound(Binding("datastream", event.slug))
            if bound is not None:
                self.out.value(device, bound[0], bound[1], event.value)
        elif isinstance(event, PinValue):
            self.pin_values[(event.dev, event.pin)] = event.value
            bound = self.model(device).bound(Binding("pin", str(event.pin)))
            if bound is not None:
                self.out.value(device, bound[0], bound[1], event.value)
        elif isinstance(event, PacketReceived):
            if event.packet.type == PacketType.MOD_EVENT:
                self.module_event(event.dev, device, event.packet.payload)
        elif (
            isinstance(event, BoardOffline)
            and self.conn.connected
            and self.out.states.get(device) == "ready"
        ):
            self.out.state(device, "lost")

    async def on_online(self, event: BoardEvent) -> None:
        """`BoardOnline`: re-announce the board's child device, `ready`."""
        if event.dev not in self.child_of or self._stopping:
            return
        if isinstance(event, BoardOnline) and event.changed:
            self.pin_values = {k: v for k, v in self.pin_values.items() if k[0] != event.dev}
        async with self._lock:
            await self.announce_child(event.dev)

    def module_event(self, dev: str, device: str, payload: bytes) -> None:
        """A MOD_EVENT on its module's event property, attributed by shape as on the
        Conduyt topics (`docs/topics.md` §5); one that cannot be attributed is skipped."""
        hello = self.host.boards[dev].hello
        if hello is None:
            return
        try:
            event = parse_mod_event(payload)
            ordered = sorted(hello.modules, key=lambda m: m.module_id)
            name = attribute_event([m.name for m in ordered], event.event, event.data)
            if name is None:
                return
            event_name, fields = decode_event(name, event.event, event.data)
        except PayloadDecodeError as exc:
            log.debug("malformed MOD_EVENT", device=dev, error=describe_exception(exc))
            return
        slug = next(s for s, m in module_slugs(hello.modules).items() if m.name == name)
        bound = self.model(device).bound(Binding("event", slug, event_name))
        if bound is not None:
            self.out.value(device, bound[0], bound[1], fields)

    async def refresh_loop(self) -> None:
        """Every `REFRESH_S`: re-announce an online board whose description changed (a
        pin mode or subscription set since)."""
        while True:
            await asyncio.sleep(REFRESH_S)
            for dev, device in self.child_of.items():
                if self.host.boards[dev].online and self.out.changed(self.child_model(dev)):
                    async with self._lock:
                        await self.announce_child(dev)
                    log.debug("Homie description changed", device=device)

    # ---- shutdown --------------------------------------------------------------------

    def final_messages(self) -> list[OutMessage]:
        """`disconnected` for every child, then for the root."""
        return self.out.final_messages([*self.child_of.values(), self.root])

    async def shutdown(self) -> None:
        """Shutdown hook: the final states, then the link's clean DISCONNECT."""
        self._stopping = True
        await self.conn.close(self.final_messages())
        link = self._link
        if link is not None and not link.done():
            link.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({link}, timeout=1.0)


def homie_adapter(options: HomieOptions) -> Adapter:
    """The adapter factory for the composition root: installs nothing unless enabled."""

    def install(host: AdapterHost) -> None:
        if options.enabled:
            HomieAdapter(host, options).install()

    return install


__all__ = ["HomieAdapter", "HomieOptions", "homie_adapter", "root_device_id", "set_limit"]
