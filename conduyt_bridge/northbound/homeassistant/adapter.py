"""Home Assistant discovery as a northbound adapter (payloads are built by
`conduyt_bridge.northbound.homeassistant.discovery`; this module decides when to publish,
replace and remove them).

- on every broker (re)connect, and when HA announces `online` on `{prefix}/status`:
  the bridge device and every board that has completed a handshake;
- the first time a node (the bridge device, or a board once it has completed a
  handshake) is announced: a read of its retained configs left by an earlier run; those
  of the other discovery mode are handed over with HA's `migrate_discovery` before the
  new configs go out, components dropped from a device config of the same topic get HA's
  `{"p": …}` placeholders first, and every leftover is emptied after them (so a
  `discovery_mode` switch keeps devices, entity ids, areas and renames, and HA never keeps
  ghosts); when that read fails, the node waits for the next connect;
- when a board comes online again: its configs, with removals for entities that vanished
  (another firmware on the port);
- with discovery disabled: a sweep that removes everything this bridge published before;
- on the first connect: the ownership record (`northbound.homeassistant.ownership`): what
  earlier runs of this bridge owned and this run does not (a board removed from the config,
  a former `client_id`, another discovery prefix) is cleared, then this run's record is published;
- a board another live bridge claims (`docs/fleet.md` §2, §4): its node's configs left by
  this bridge are removed (the owner announces the board under its own node), and it is
  announced again once this bridge takes it over.

See `docs/home-assistant.md` for the message sequences.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiomqtt
import structlog

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.events import BoardEvent, BoardOnline
from conduyt_bridge.errors import ConduytCapabilityError, describe_exception
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics, datastream_slugs
from conduyt_bridge.northbound.homeassistant.declared import declared_entities
from conduyt_bridge.northbound.homeassistant.discovery import (
    BoardDiscovery,
    DiscoveryConfig,
    DiscoveryMessage,
    board_messages,
    board_node_id,
    bridge_messages,
    bridge_node_id,
    handover_messages,
    node_config_filters,
    removal_messages,
    status_topic,
)
from conduyt_bridge.northbound.homeassistant.ownership import (
    OwnershipRecord,
    decode_record,
    plan_cleanup,
    record_topic,
    records_filter,
)
from conduyt_bridge.northbound.homeassistant.shaping import (
    board_problems,
    datastream_hints,
    device_name,
)
from conduyt_bridge.northbound.host import Adapter, AdapterHost
from conduyt_bridge.protocol.hello import HelloResp

log = structlog.stdlib.get_logger(__name__)

SHUTDOWN_WAIT_S = 1.0
"""How long shutdown waits for cancelled discovery sweeps to finish."""


@dataclass(frozen=True, slots=True)
class HomeAssistantOptions:
    """`[homeassistant] enabled` and where and how discovery is published."""

    enabled: bool = True
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)


class Discovery:
    """Publishes, refreshes and removes this bridge's Home Assistant discovery configs."""

    def __init__(self, host: AdapterHost, options: HomeAssistantOptions) -> None:
        self.host = host
        self.enabled = options.enabled
        self.cfg = options.discovery
        self.published: dict[str, list[DiscoveryMessage]] = {}
        self._announced: set[str] = set()
        self._unannounced: dict[str, list[DiscoveryMessage]] = {}
        """Boards online whose first announcement has not happened yet (the broker could
        not be read): retried on the next connect."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._reconciled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._swept: set[str] = set()
        """Refused boards whose node configs were removed (again after a takeover)."""

    def install(self) -> None:
        """Register on the host: connect and shutdown hooks, HA's status topic, and the
        boards' `BoardOnline` events."""
        self.host.on_connect(self.on_connect)
        self.host.on_shutdown(self.close)
        if not self.enabled:
            return
        self.host.route(status_topic(self.cfg), self.on_ha_status)
        self.host.bus.subscribe(self.on_event, kinds=(BoardOnline,))
        self.host.on_refused_changed(self._on_refused_changed)
        self.host.on_board_added(self.board_added)
        self.host.on_board_removed(self.board_removed)

    def node(self, dev: str) -> str:
        """The discovery node of board `dev`: built from its `discovery_id` when set, so
        a renamed board keeps its node and unique ids (`docs/requests.md` §3)."""
        board = self.host.boards.get(dev)
        key = board.config.discovery_id if board is not None else None
        return board_node_id(self.cfg, key or dev)

    # ---- boards added and removed at run time (`docs/architecture.md` §11) ----------------

    async def board_added(self, board: Board) -> None:
        """A new board is announced when it comes online; the ownership record now
        includes it."""
        self._publish_record()

    async def board_removed(self, board: Board, successor: str | None) -> None:
        """A restarted board keeps its configs (replaced when it is online again); a
        renamed one's pass to its successor, which keeps the node (its `discovery_id`);
        a removed one's are emptied, so HA deletes its device and entities."""
        dev = board.dev
        published = self.published.pop(dev, None)
        announced = dev in self._announced
        self._announced.discard(dev)
        self._unannounced.pop(dev, None)
        if successor is not None:
            if published is not None:
                self.published[successor] = published
            if announced:
                self._announced.add(successor)
            return
        async with self._lock(dev):
            await self.sweep([self.node(dev)], keep=set())
        self._locks.pop(dev, None)
        self._publish_record(without=dev)

    def _publish_record(self, without: str | None = None) -> None:
        """Publish this run's ownership record again (boards changed at run time)."""
        if self._reconciled and self.host.mqtt.connected:
            record = self.current_record(without)
            topic = record_topic(self.cfg.base_topic, record.client_id)
            self.host.mqtt.publish(topic, record.encode(), qos=1, retain=True)

    def _on_refused_changed(self) -> None:
        """Forget refused boards and remove their nodes (`docs/fleet.md` §4)."""
        if self.host.mqtt.connected:
            self._sweep_refused()

    def _sweep_refused(self) -> None:
        refused = self.host.refused
        self._swept &= set(refused)
        for dev in refused:
            self.published.pop(dev, None)
            self._announced.discard(dev)
            self._unannounced.pop(dev, None)
            if dev not in self._swept:
                self._swept.add(dev)
                self._spawn(self.sweep([self.node(dev)], keep=set()))

    async def on_event(self, event: BoardEvent) -> None:
        """`BoardOnline`: publish (or replace) the board's discovery configs."""
        if isinstance(event, BoardOnline):
            board = self.host.boards.get(event.dev)
            if board is not None:
                await self.on_board_online(board, event.hello, event.changed)

    # ---- hooks ------------------------------------------------------------------------------

    async def on_connect(self) -> None:
        if not self._reconciled:
            self._reconciled = True
            self._spawn(self._reconcile_once())
        if not self.enabled:
            nodes = [bridge_node_id(self.cfg)]
            nodes += [self.node(dev) for dev in self.host.boards]
            self._spawn(self.sweep(nodes, keep=set()))
            return
        await self.host.mqtt.subscribe([status_topic(self.cfg)])
        self._sweep_refused()
        self.publish_all()
        if "bridge" not in self._announced:
            self._spawn(
                self._announce("bridge", bridge_node_id(self.cfg), bridge_messages(self.cfg))
            )
        for dev, new in list(self._unannounced.items()):
            self._spawn(self._announce(dev, self.node(dev), new))

    async def on_ha_status(self, message: aiomqtt.Message) -> None:
        if message.payload in (b"online", "online"):
            log.info("Home Assistant is online: publishing discovery again")
            self.publish_all()

    async def on_board_online(self, board: Board, hello: HelloResp, changed: bool) -> None:
        shaped = self._board(board, hello)
        self._report_shaping(board, shaped)
        config = board.config
        declared = declared_entities(
            self.cfg, board.dev, hello, config.entity_specs, config.read_only, key=shaped.key
        )
        new = board_messages(self.cfg, shaped, declared)
        if board.dev not in self._announced:
            # The first announcement reads the broker first (a task: the board's session
            # must not wait for it); later ones are ordered behind it by the node's lock.
            self._unannounced[board.dev] = new
            self._spawn(self._announce(board.dev, self.node(board.dev), new))
            return
        async with self._lock(board.dev):
            self._replace(board.dev, new)

    def _report_shaping(self, board: Board, shaped: BoardDiscovery) -> None:
        """Datastream options that do not fit what the board declares (a real board's
        datastreams are known only now): a warning, and a report per option on
        `{base}/{dev}/error` about the datastream's topic, as for a refused declared
        entity (`docs/home-assistant.md`, "Shaping datastream entities"). A user's
        mistake, not a bridge bug: never error level."""
        problems = board_problems(shaped)
        if not problems:
            return
        topics = BridgeTopics(self.cfg.base_topic, self.cfg.gateway_id).device(board.dev)
        slugs = {ds.name: slug for slug, ds in datastream_slugs(shaped.hello.datastreams).items()}
        for problem in problems:
            log.warning("datastream options not applied", dev=board.dev, problem=str(problem))
            error = ConduytCapabilityError(
                f"{problem} (Home Assistant gets the entity without its shaping options)"
            )
            board.report_failure(topics.ds(slugs[problem.datastream]), error)

    def _replace(self, key: str, new: list[DiscoveryMessage]) -> None:
        old = self.published.get(key, [])
        for msg in removal_messages(self.cfg, old, new):
            self._publish(msg)
        for msg in new:
            self._publish(msg)
        self.published[key] = new

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _announce(self, key: str, node: str, new: list[DiscoveryMessage]) -> None:
        """First announcement of `node` (`key`: a board id, or `bridge`): hand over or
        empty what an earlier run left on the broker around publishing `new`. When the
        broker cannot be read nothing is published: without the old configs there is no
        hand-over, so the next connect tries again.

        A board's `new` is replaced, once the broker was read, by what the board is now
        (`_unannounced`): while it was read the board may have come online again, been
        restarted with other options or renamed (`docs/requests.md` §3), and the board
        as it was must not be published after that; a board no longer waiting (removed,
        renamed, refused) publishes nothing."""
        async with self._lock(key):
            if key in self._announced:
                # Another announcement got here first, with the node's latest configs.
                return
            try:
                found = await self.host.mqtt.fetch_retained(
                    node_config_filters(self.cfg.prefix, node)
                )
            except aiomqtt.MqttError as exc:
                log.info(
                    "discovery leftovers not read: node announced on the next connect",
                    node=node,
                    error=describe_exception(exc),
                )
                return
            if key != "bridge":
                latest = self._unannounced.get(key)
                if latest is None:
                    return
                new = latest
            keep = {m.topic for m in new}
            # An entity the firmware dropped while the bridge was down is still in the old
            # config on the same device topic: `{"p": …}` placeholders remove it from HA.
            same_topic = [DiscoveryMessage(t, p) for t, p in found.items() if t in keep]
            for msg in removal_messages(self.cfg, same_topic, new):
                self._publish(msg)
            before, after = handover_messages(self.cfg, found, new)
            for msg in before:
                self._publish(msg)
            for msg in new:
                self._publish(msg)
            for msg in after:
                self._publish(msg)
            self._announced.add(key)
            self._unannounced.pop(key, None)
            if key != "bridge":
                self.published[key] = new
            if before:
                log.info(
                    "discovery handed over to the new mode (migrate_discovery)",
                    node=node,
                    mode=self.cfg.mode,
                    migrated=len(before),
                )
            if after:
                log.info("removed stale discovery configs", node=node, count=len(after))

    # ---- ownership --------------------------------------------------------------------------

    def current_record(self, without: str | None = None) -> OwnershipRecord:
        """What this run owns: its boards (but `without`, one being removed), and its
        discovery nodes while discovery is on."""
        boards = {dev: b.config.port for dev, b in self.host.boards.items() if dev != without}
        nodes: tuple[str, ...] = ()
        if self.enabled:
            nodes = (bridge_node_id(self.cfg), *(self.node(d) for d in boards))
        return OwnershipRecord(
            client_id=self.cfg.bridge_id,
            host=socket.gethostname(),
            prefix=self.cfg.prefix,
            boards=boards,
            nodes=nodes,
        )

    async def _reconcile_once(self) -> None:
        if await self.reconcile() is None:
            self._reconciled = False  # the broker could not be read: try on the next connect

    async def reconcile(self) -> OwnershipRecord | None:
        """Read the ownership records, clear what earlier runs of this bridge owned and
        this one does not, then publish this run's record (retained). Returns the record
        published, or None when the records could not be read (nothing is cleared then,
        and the old record stays for the next start)."""
        base = self.cfg.base_topic
        current = self.current_record()
        own_topic = record_topic(base, current.client_id)
        mqtt = self.host.mqtt
        try:
            raw = await mqtt.fetch_retained([records_filter(base)])
        except aiomqtt.MqttError as exc:
            log.info("ownership records not read", error=describe_exception(exc))
            return None
        found = {t: r for t, p in raw.items() if (r := decode_record(p)) is not None}
        plan = plan_cleanup(current, found, own_topic)
        if plan.nodes or plan.boards:
            # The leftover sweep, over nodes and board subtrees this run does not own.
            stale = await self.sweep(
                [],
                keep=set(),
                filters=[
                    *(f for prefix, node in plan.nodes for f in node_config_filters(prefix, node)),
                    *(f"{base}/{dev}/#" for dev in plan.boards),
                ],
            )
            if stale is None:
                return None
            log.info(
                "cleared what earlier runs owned and this one does not",
                boards=list(plan.boards),
                nodes=[n for _, n in plan.nodes],
                topics=len(stale),
            )
        for topic in plan.records:
            mqtt.publish(topic, b"", qos=1, retain=True)
        mqtt.publish(own_topic, current.encode(), qos=1, retain=True)
        return current

    # ---- publishing -------------------------------------------------------------------------

    def publish_all(self) -> None:
        """Publish the bridge device and every board announced so far (a node not yet
        announced is published by its first announcement, after any hand-over)."""
        if "bridge" in self._announced:
            for msg in bridge_messages(self.cfg):
                self._publish(msg)
        for messages in self.published.values():
            for msg in messages:
                self._publish(msg)

    def _publish(self, msg: DiscoveryMessage) -> None:
        # Not coalesced: a removal and the clean config on the same topic must both go out.
        self.host.mqtt.publish(msg.topic, msg.payload, qos=1, retain=msg.retain, coalesce=False)

    def _board(self, board: Board, hello: HelloResp) -> BoardDiscovery:
        hints = {name: datastream_hints(opt) for name, opt in board.config.datastreams.items()}
        return BoardDiscovery(
            dev=board.dev,
            hello=hello,
            port=board.config.port,
            read_only=board.config.read_only,
            hints=hints,
            name=device_name(board.config),
            discovery_id=board.config.discovery_id,
        )

    async def sweep(
        self, nodes: Sequence[str], keep: set[str], filters: Sequence[str] = ()
    ) -> list[str] | None:
        """Remove retained discovery configs of `nodes` (in either discovery mode), and
        retained messages under `filters`, whose topic is not in `keep`; returns the
        topics cleared, or None when the broker could not be read.

        Uses a short-lived second connection so the retained configs are delivered to it
        alone (the main session's subscriptions stay as they are).
        """
        wanted = list(filters)
        for node in nodes:
            wanted += node_config_filters(self.cfg.prefix, node)
        try:
            found = await self.host.mqtt.fetch_retained(wanted)
        except aiomqtt.MqttError as exc:
            log.info("discovery sweep skipped", error=describe_exception(exc))
            return None
        stale = [t for t in found if t not in keep]
        for topic in stale:
            self.host.mqtt.publish(topic, b"", qos=1, retain=True)
        if stale:
            log.info("removed stale discovery configs", count=len(stale))
        return stale

    async def close(self) -> None:
        """Cancel sweeps still under way (their helper connections close with them)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a helper connection cancelled mid-handshake may take its client's
            # full timeout to close, and shutdown must not wait for that.
            await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT_S)

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def homeassistant_adapter(options: HomeAssistantOptions) -> Adapter:
    """The adapter factory for the composition root (also sweeps when disabled)."""

    def install(host: AdapterHost) -> None:
        Discovery(host, options).install()

    return install
