"""The Homie 5 convention as a northbound adapter (`docs/homie.md`; the Homie convention,
homieiot/convention `convention.md`).

The bridge is the root device `homie/5/{root}` and every board a child device
`homie/5/{root}-{board}`, on an MQTT session of its own (client id `{client_id}-homie`)
whose Will sets the root's `$state` to `lost`. Board events become property values; a
`/set` becomes a `HomieSet` job, refused with the error report of `docs/topics.md` §6
(`Board.report_failure`). Child states: `init` until the first handshake, `ready` while
online, `lost` while unreachable; `disconnected` at a clean stop. Only boards this bridge
runs have a child device (`docs/homie.md` §6, `docs/fleet.md` §2). Announcements run in
the adapter's own tasks, never in a board's session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
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
from conduyt_bridge.errors import (
    ConduytError,
    describe_exception,
)
from conduyt_bridge.northbound.homie.commands import HomieSet, set_limit, set_refusal
from conduyt_bridge.northbound.homie.devices import board_device, bridge_device, known_values
from conduyt_bridge.northbound.homie.ids import HomieTopics, unique_ids
from conduyt_bridge.northbound.homie.model import Binding, DeviceModel
from conduyt_bridge.northbound.homie.module_nodes import module_event
from conduyt_bridge.northbound.homie.options import HomieOptions, root_device_id
from conduyt_bridge.northbound.homie.publisher import (
    DevicePublisher,
    described_children,
    described_properties,
)
from conduyt_bridge.northbound.host import Adapter, AdapterHost
from conduyt_bridge.northbound.mqtt.connection import MqttConnection, OutMessage
from conduyt_bridge.northbound.mqtt.inbound import payload_bytes
from conduyt_bridge.protocol.constants import PacketType

log = structlog.stdlib.get_logger(__name__)

REFRESH_S = 1.0
"""How often the online boards' descriptions are rebuilt to notice pin modes and
subscriptions set since (a change re-announces the child device)."""


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
        self.active: list[str] = []
        """The boards that have a child device: those this bridge runs, in config order."""
        self.stale: dict[str, list[tuple[str, str]]] = {}
        """Child devices to remove at the next connect: ID → its property topics."""
        self.tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._stopping = False

    def install(self) -> None:
        """Register on the host: events, claims, the retained read, the link and refresh
        jobs, the shutdown hook."""
        host = self.host
        host.bus.subscribe(
            self.on_event, kinds=(DatastreamUpdated, PinValue, PacketReceived, BoardOffline)
        )
        host.bus.subscribe(self.on_online, kinds=(BoardOnline,))
        host.on_refused_changed(self.on_claims)
        host.on_start(self.read_descriptions)
        host.add_job("homie-mqtt", self.conn.run)
        host.add_job("homie-refresh", self.refresh_loop)
        host.on_shutdown(self.shutdown)
        host.on_board_added(self.board_added)
        host.on_board_removed(self.board_removed)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` in a task of the adapter's own: tracked, cancelled at shutdown, an
        error logged and never handed to the caller (a board's session)."""
        if self._stopping:
            work.close()
            return
        task = asyncio.get_running_loop().create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("Homie task failed", task=task.get_name(), exc_info=error)

    # ---- models ----------------------------------------------------------------------

    def running(self) -> list[str]:
        """The boards this bridge runs now (`host.runs`), in configuration order."""
        return [dev for dev in self.child_of if self.host.runs(dev)]

    def root_model(self) -> DeviceModel:
        """The root device (the bridge), its `children` the active boards' devices."""
        name = f"Conduyt bridge {self.options.mqtt.client_id}"
        children = tuple(self.child_of[dev] for dev in self.active)
        return bridge_device(self.root, name, children)

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

    def child_state(self, dev: str) -> str | None:
        """`ready` while the board is online, `lost` when it was reached before but is not
        now, None (stay `init`) before its first handshake."""
        board = self.host.boards[dev]
        if board.online:
            return "ready"
        return "lost" if board.hello is not None else None

    async def announce_child(self, dev: str) -> None:
        """(Re)announce board `dev`'s child device: init, description, values, state (the
        state decided after the rest left the outbox). Callers hold `_lock`.

        Not while the Homie link is down (`on_connect` announces everything then: queued
        in the outbox, a coalesced `ready` would overtake its `init`), nor for a board
        without a child device. Before the board's first handshake only `init`: its
        description is not known yet (a retained one from an earlier run stays, and keeps
        its version if the board is unchanged)."""
        model = self.child_model(dev)
        self.models[model.id] = model
        if not self.conn.connected or dev not in self.active or self._stopping:
            return
        if self.host.boards[dev].hello is None:
            self.out.state(model.id, "init")
            return
        pins = {pin: v for (owner, pin), v in self.pin_values.items() if owner == dev}
        values = known_values(self.host.boards[dev], pins, model)
        await self.out.announce(model, values, lambda: self.child_state(dev))

    async def announce_root(self, children: bool = False) -> None:
        """(Re)announce the root device: init, description, with `children` the child
        devices' announcements, its version, then `ready` (after the rest settled)."""
        root = self.root_model()
        self.models[root.id] = root
        self.out.state(root.id, "init")
        self.out.description(root)
        for dev in self.active if children else ():
            await self.announce_child(dev)
        version = root.bound(Binding("bridge", "version"))
        if version is not None:
            self.out.value(root.id, *version, self.options.bridge_version)
        await self.out.settle()
        self.out.state(root.id, "ready")

    async def announce_locked(self, dev: str) -> None:
        """`announce_child` under `_lock` (one announcement at a time, in order)."""
        async with self._lock:
            await self.announce_child(dev)

    # ---- claims: which boards have a child device --------------------------------------

    def on_claims(self) -> None:
        """`host.on_refused_changed`: re-evaluate the child devices in a task."""
        self.spawn(self.sync_children(), "homie-children")

    async def sync_children(self) -> None:
        """Give the boards this bridge now runs a child device and remove the child of a
        board it no longer runs (`docs/fleet.md` §2), then re-announce the root with its
        new `children`. While the link is down only remembered for `on_connect`."""
        async with self._lock:
            active = self.running()
            if active == self.active:
                return
            gone = [dev for dev in self.active if dev not in active]
            new = [dev for dev in active if dev not in self.active]
            self.active = active
            for dev in gone:
                device = self.child_of[dev]
                self.stale[device] = described_properties(self.model(device).content())
                self.models.pop(device, None)
            if not self.conn.connected or self._stopping:
                return
            self.remove_stale()
            for dev in new:
                await self.announce_child(dev)
            await self.announce_root()

    def remove_stale(self) -> None:
        """Remove the child devices in `stale` ($state first, the convention)."""
        for device, props in self.stale.items():
            self.out.remove(device, props)
            log.info("Homie child device removed", device=device)
        self.stale = {}

    # ---- boards added and removed at run time (`docs/architecture.md` §11) ------------

    async def board_added(self, board: Board) -> None:
        """Give a new board a child device ID (distinct from the others'), subscribe to
        its `/set` topics and announce it with the root's new `children`."""
        if board.dev not in self.child_of:
            taken = [child.removeprefix(f"{self.root}-") for child in self.dev_of]
            child = f"{self.root}-{unique_ids([board.dev], taken, fallback='board')[0]}"
            self.child_of[board.dev] = child
            self.dev_of[child] = board.dev
            await self.conn.subscribe([self.topics.set_filter(child)])
        await self.sync_children()

    async def board_removed(self, board: Board, successor: str | None) -> None:
        """Remove a board's child device (not for a restart under the same id): it is
        no longer run, so `sync_children` removes it and re-announces the root."""
        child = self.child_of.get(board.dev)
        if child is None or successor == board.dev:
            return
        await self.sync_children()
        del self.child_of[board.dev], self.dev_of[child]
        self.models.pop(child, None)
        self.pin_values = {k: v for k, v in self.pin_values.items() if k[0] != board.dev}
        await self.conn.unsubscribe([self.topics.set_filter(child)])

    # ---- broker side -----------------------------------------------------------------

    async def on_connect(self) -> None:
        """After every (re)connect of the Homie link: subscribe to the children's `/set`
        topics, remove stale children, then announce the children and, last, the root
        (`ready`)."""
        await self.conn.subscribe([self.topics.set_filter(c) for c in self.child_of.values()])
        async with self._lock:
            self.active = self.running()
            self.remove_stale()
            await self.announce_root(children=True)

    async def read_descriptions(self) -> None:
        """Start hook: read the retained `$description`s of the root and the children so
        that unchanged documents keep their versions across restarts, and those of the
        root's former children no longer configured, to remove them (`stale`)."""
        mqtt = self.host.mqtt
        if not mqtt.connected:
            return
        devices = [self.root, *self.child_of.values()]
        try:
            found = await mqtt.fetch_retained([self.topics.description(d) for d in devices])
            before = described_children(found.get(self.topics.description(self.root)))
            former = [c for c in before if c not in self.dev_of and c != self.root]
            if former:
                found |= await mqtt.fetch_retained([self.topics.description(c) for c in former])
        except aiomqtt.MqttError as exc:
            log.info("could not read retained Homie descriptions", error=describe_exception(exc))
            return
        for device in devices:
            payload = found.get(self.topics.description(device))
            if payload:
                self.out.remember(device, payload)
        for device in former:
            payload = found.get(self.topics.description(device))
            self.stale[device] = described_properties(payload)

    async def on_message(self, message: aiomqtt.Message) -> None:
        """A message on the Homie link: a `/set` becomes a `HomieSet` job for its board
        (ignored for a board without a child device)."""
        topic = message.topic.value
        parsed = self.topics.parse_set(topic)
        dev = self.dev_of.get(parsed[0]) if parsed is not None else None
        if parsed is None or dev is None or dev not in self.active or self._stopping:
            log.debug("Homie message on an unknown topic", topic=topic)
            return
        board = self.host.boards[dev]
        device, node, prop_id = parsed
        payload = payload_bytes(message)
        prop = self.model(device).property(node, prop_id)
        error = set_refusal(board, device, node, prop_id, prop, len(payload))
        if error is not None or prop is None:
            self.report(board, topic, error)
            return
        board.submit(
            HomieSet(topic, node, prop, payload, bool(message.retain), self.done, self.refused)
        )

    def done(self, board: Board, command: HomieSet, value: Any) -> None:
        """A `/set` succeeded: publish the value (pins, module commands; a datastream's
        value comes with its `DatastreamUpdated`)."""
        if value is None or board.dev not in self.active:
            return
        binding = command.prop.binding
        if binding.kind == "pin" and isinstance(value, int):
            self.pin_values[(board.dev, int(binding.key))] = value
        self.out.value(self.child_of[board.dev], command.node, command.prop, value)

    def refused(self, board: Board, command: HomieSet, error: ConduytError) -> None:
        """A `/set` was refused or failed: the error report."""
        self.report(board, command.topic, error)

    def report(self, board: Board, topic: str, error: ConduytError | None) -> None:
        """Report a refused `/set` on topic `topic` through `Board.report_failure` (the
        Conduyt layout's error report on `{base}/{dev}/error`, `docs/topics.md` §6, and
        the board's recent errors). Debug level: any client on the broker can cause one."""
        if error is None:
            return
        log.debug(
            "Homie command refused",
            device=board.dev,
            topic=topic,
            error=error.name,
            reason=str(error),
        )
        board.report_failure(topic, error)

    # ---- board events ------------------------------------------------------------------

    def on_event(self, event: BoardEvent) -> None:
        """Datastream values, pin values, module events and boards going away."""
        device = self.child_of.get(event.dev)
        if device is None or event.dev not in self.active or self._stopping:
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
                self.on_module_event(event.dev, device, event.packet.payload)
        elif (
            isinstance(event, BoardOffline)
            and self.conn.connected
            and self.out.states.get(device) not in (None, "lost")
            and self.child_state(event.dev) == "lost"
        ):
            self.out.state(device, "lost")

    def on_online(self, event: BoardEvent) -> None:
        """`BoardOnline`: re-announce the board's child device (`ready`) in a task of the
        adapter's own; the board's handshake does not wait for it."""
        if event.dev not in self.child_of or self._stopping:
            return
        if isinstance(event, BoardOnline) and event.changed:
            self.pin_values = {k: v for k, v in self.pin_values.items() if k[0] != event.dev}
        self.spawn(self.announce_locked(event.dev), f"homie-announce-{event.dev}")

    def on_module_event(self, dev: str, device: str, payload: bytes) -> None:
        """A MOD_EVENT on its module's event property, attributed by shape as on the
        Conduyt topics (`docs/topics.md` §5); one that cannot be attributed is skipped."""
        found = module_event(self.host.boards[dev].hello, payload)
        if found is None:
            return
        slug, event_name, fields = found
        bound = self.model(device).bound(Binding("event", slug, event_name))
        if bound is not None:
            self.out.value(device, bound[0], bound[1], fields)

    async def refresh_loop(self) -> None:
        """Every `REFRESH_S`: re-announce an online board whose description changed (a
        pin mode or subscription set since)."""
        while True:
            await asyncio.sleep(REFRESH_S)
            for dev in list(self.active):
                if self.host.boards[dev].online and self.out.changed(self.child_model(dev)):
                    await self.announce_locked(dev)
                    log.debug("Homie description changed", device=self.child_of[dev])

    # ---- shutdown --------------------------------------------------------------------

    def final_messages(self) -> list[OutMessage]:
        """`disconnected` for every child device, then for the root."""
        return self.out.final_messages([*(self.child_of[d] for d in self.active), self.root])

    async def shutdown(self) -> None:
        """Shutdown hook (the host cancels the link's job only after it): stop the
        announcements, then the final states and the link's clean DISCONNECT."""
        self._stopping = True
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=0.5)
        await self.conn.close(self.final_messages())


def homie_adapter(options: HomieOptions) -> Adapter:
    """The adapter factory for the composition root: installs nothing unless enabled."""

    def install(host: AdapterHost) -> None:
        if options.enabled:
            HomieAdapter(host, options).install()

    return install


__all__ = ["HomieAdapter", "HomieOptions", "homie_adapter", "root_device_id", "set_limit"]
