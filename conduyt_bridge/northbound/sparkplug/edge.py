"""The edge node's session: births, deaths, data and commands (`docs/sparkplug.md` §2-§6).

One `EdgeNode` per bridge, on an MQTT connection of its own (client id `{client_id}-spb`,
clean session, the NDEATH as its Will), because the Will is the edge node's death
certificate (Sparkplug 3.0 §5.2):

- every connect attempt builds a new Will with the next `bdSeq` (0..255, §5.2); after a
  connect (and, with `primary_host_id`, once `spBv1.0/STATE/{host}` says online, §5.3,
  `tck-id-message-flow-edge-node-birth-publish-phid-wait`): NBIRTH (`seq` 0, the same
  `bdSeq`) then one DBIRTH per online board this bridge runs (`host.runs`);
- every later message (NDATA, DBIRTH, DDATA, DDEATH) takes the next `seq` (0..255,
  wrapping, §6.4.1); nothing is published while the node is not born;
- no stale message in a new session: a (re)connect and every birth first drop what still
  waits in the connection's outbox (it carries the old session's `seq` and aliases,
  `MqttConnection.discard_queued`); a message the outbox had to drop, or one queued
  behind others (it could be overtaken), ends the birth and a rebirth follows;
- a handshake: DBIRTH; a lost board: DDEATH; a new value: DDATA (aliases only); a board
  another bridge owns (`host.refused`, `docs/fleet.md` §2): no DBIRTH, no DDATA, its
  DCMDs ignored and counted, re-evaluated on `host.on_refused_changed`;
- NCMD `Node Control/Rebirth` = true, by name: NBIRTH and every DBIRTH again (§5.6);
  DCMD: writes through `Board.submit`; hostile payloads are ignored, counted and logged;
- the primary host going offline ends a born session: NDEATH (the current `bdSeq`) and a
  disconnect, then a reconnect with the next `bdSeq`
  (`tck-id-message-flow-edge-node-birth-publish-phid-offline`);
- a clean stop (a shutdown hook, while the link job still runs): DDEATH of every born
  device and NDEATH with the connection's `bdSeq`, then `MqttConnection.close`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiomqtt
import structlog

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.events import BoardEvent, BoardOffline, BoardOnline, DatastreamUpdated
from conduyt_bridge.errors import ConduytError
from conduyt_bridge.northbound.host import AdapterHost
from conduyt_bridge.northbound.mqtt.client import MqttSettings
from conduyt_bridge.northbound.mqtt.connection import MqttConnection, OutMessage
from conduyt_bridge.northbound.sparkplug import commands, metrics
from conduyt_bridge.northbound.sparkplug.codec import (
    DataType,
    Metric,
    SparkplugPayloadError,
    datatype_of,
    decode_command,
    encode_payload,
)
from conduyt_bridge.northbound.sparkplug.topics import SparkplugTopics, parse_state, state_topic
from conduyt_bridge.protocol.values import DatastreamValue
from conduyt_bridge.version import __version__

log = structlog.stdlib.get_logger(__name__)

RESYNC_DELAY_S = 0.5
"""Pause before the rebirth that follows a message which could not go out in order."""


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """What the edge node needs: ids (`docs/sparkplug.md` §1), the Conduyt base topic,
    the MQTT settings of its own connection (`session_expiry_s` 0: clean
    session) and how often changed node counters go out as NDATA (s)."""

    group_id: str
    edge_node_id: str
    primary_host_id: str
    base_topic: str
    mqtt: MqttSettings
    stats_interval_s: float = 30.0


def now_ms() -> int:
    """Wall-clock time in ms since the epoch (Sparkplug timestamps, 3.0 §6.4.1)."""
    return int(time.time() * 1000)


class EdgeNode:
    """The bridge as a Sparkplug B edge node (see the module docstring)."""

    def __init__(self, host: AdapterHost, config: EdgeConfig) -> None:
        self.host = host
        self.config = config
        self.topics = SparkplugTopics(config.group_id, config.edge_node_id)
        self.aliases = metrics.AliasTable()
        self.bdseq = 0
        """`bdSeq` of the Will of the current (or next) connection."""
        self._next_bdseq = 0
        self._seq = 0
        self.born = False
        self.devices_born: set[str] = set()
        self.leaving: set[str] = set()
        """Boards being removed at run time: left out of the node metrics and births."""
        self.host_online: bool | None = None
        self._state_ts = -1
        self.refused_total = 0
        self.ignored_total = 0
        self._node_sent: dict[str, tuple[DataType, DatastreamValue]] = {}
        self._resync = asyncio.Event()
        """Set when a message could not go out in order: a rebirth follows."""
        self.conn = MqttConnection(
            config.mqtt,
            self.topics.node("NDEATH"),
            self.on_message,
            self.on_connect,
            will=self.will,
            birth=None,
            client_id=f"{config.mqtt.client_id}-spb",
        )
        # The constructor built (and discarded) a first client: its bdSeq is not used.
        self._next_bdseq = self.bdseq

    # ---- wiring -----------------------------------------------------------------------------

    def install(self) -> None:
        """Register on the host: the link and stats jobs, the boards' events, the claims'
        changes and the shutdown hook (run before the host cancels the jobs)."""
        filters = [self.topics.ncmd, self.topics.dcmd_filter]
        if self.config.primary_host_id:
            filters.append(state_topic(self.config.primary_host_id))
        self.host.on_start(lambda: self.conn.subscribe(filters, qos=1))
        self.host.add_job("sparkplug-mqtt", self.conn.run)
        self.host.add_job("sparkplug-stats", self.run_stats)
        self.host.add_job("sparkplug-resync", self.run_resync)
        self.host.bus.subscribe(
            self.on_event, kinds=(BoardOnline, BoardOffline, DatastreamUpdated), late=True
        )
        self.host.on_refused_changed(self.on_refused_changed)
        self.host.on_shutdown(self.close)
        self.host.on_board_added(self.board_added)
        self.host.on_board_removed(self.board_removed)

    async def board_added(self, board: Board) -> None:
        """A board added at run time (`docs/sparkplug.md` §2): its `Boards/{dev}/…` node
        metrics are new, so the node is born again (NBIRTH may not gain metrics by
        NDATA); its DBIRTH follows its handshake (`BoardOnline`)."""
        self.leaving.discard(board.dev)
        self.publish_node_changes()

    async def board_removed(self, board: Board, successor: str | None) -> None:
        """A board removed (or restarted) at run time: DDEATH if it is still born; unless
        it comes back under the same id at once, the node is born again without its
        metrics (it is still in `host.boards` while this hook runs, hence `leaving`)."""
        if board.dev in self.devices_born and self.born and self.conn.connected:
            self.device_death(board.dev)
        self.devices_born.discard(board.dev)
        if successor != board.dev:
            self.leaving.add(board.dev)
            self.publish_node_changes()

    async def run_stats(self) -> None:
        """Every `stats_interval_s`: the node metrics that changed, as NDATA."""
        while True:
            await asyncio.sleep(self.config.stats_interval_s)
            self.publish_node_changes()

    async def run_resync(self) -> None:
        """A rebirth shortly after a message could not go out in order (`_publish`)."""
        while True:
            await self._resync.wait()
            await asyncio.sleep(RESYNC_DELAY_S)
            self._resync.clear()
            if self.may_birth():
                self.rebirth()

    def will(self) -> OutMessage:
        """The NDEATH Will of the next connect attempt, with the next `bdSeq` (3.0 §5.2:
        QoS 1, not retained)."""
        self.bdseq = self._next_bdseq
        self._next_bdseq = (self.bdseq + 1) % 256
        return OutMessage(self.topics.node("NDEATH"), self.ndeath_payload(), 1, False)

    def ndeath_payload(self) -> bytes:
        """NDEATH: the `bdSeq` metric, no `seq` (3.0 §6.4.1)."""
        bd = Metric(metrics.BDSEQ, None, DataType.INT64, self.bdseq)
        return encode_payload([bd], ts_ms=now_ms(), seq=None)

    # ---- births -----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) % 256
        return seq

    def _publish(self, topic: str, payload_metrics: list[Metric], ts_ms: int) -> None:
        """Publish with the next `seq`. A message that waits in the outbox behind others
        (it could be overtaken) or made the outbox drop one breaks the `seq` order: the
        node stops publishing (not born) and `run_resync` rebirths (3.0 §6.4.1)."""
        payload = encode_payload(payload_metrics, ts_ms=ts_ms, seq=self._next_seq())
        dropped, queued = self.conn.dropped, self.conn.queue_depth
        self.conn.publish(topic, payload, qos=0, retain=False, coalesce=False)
        if self.conn.dropped != dropped or (queued and self.conn.queue_depth):
            log.warning("sparkplug message could not go out in order; rebirth", topic=topic)
            self.born = False
            self.devices_born.clear()
            self._resync.set()

    def _node_values(self) -> dict[str, tuple[DataType, DatastreamValue]]:
        boards = {d: b for d, b in self.host.boards.items() if d not in self.leaving}
        return metrics.node_values(
            boards,
            self.host.sessions,
            __version__,
            self.refused_total,
            self.ignored_total,
        )

    def may_birth(self) -> bool:
        """Connected, and the primary host (if any) said online in this session."""
        return self.conn.connected and (not self.config.primary_host_id or bool(self.host_online))

    def rebirth(self) -> None:
        """Drop what the outbox still holds (old `seq`), then NBIRTH (`seq` 0) and a DBIRTH
        per online board this bridge runs (3.0 §5.6)."""
        if not self.conn.connected:
            return
        self.conn.discard_queued()
        self._seq = 0
        ts = now_ms()
        values = self._node_values()
        self._node_sent = dict(values)
        self.born = True
        self.devices_born.clear()
        self._publish(
            self.topics.node("NBIRTH"),
            metrics.node_birth_metrics(self.aliases, self.bdseq, values, ts),
            ts,
        )
        for board in self.host.boards.values():
            usable = board.online and board.hello is not None
            if self.born and usable and board.dev not in self.leaving:
                self.device_birth(board)
        log.info("sparkplug birth", edge_node=self.config.edge_node_id, bdseq=self.bdseq)

    def device_birth(self, board: Board) -> None:
        """DBIRTH of `board` (every handshake), unless another bridge runs it."""
        if not self.host.runs(board.dev):
            return
        ts = now_ms()
        self.devices_born.add(board.dev)
        self._publish(
            self.topics.device("DBIRTH", board.dev),
            metrics.device_birth_metrics(self.aliases, board, ts),
            ts,
        )

    def device_death(self, dev: str) -> None:
        """DDEATH of a born device."""
        self.devices_born.discard(dev)
        self._publish(self.topics.device("DDEATH", dev), [], now_ms())

    def publish_node_changes(self) -> None:
        """NDATA with the node metrics whose value changed since the last birth or NDATA;
        a rebirth instead when the set of node metrics changed (a board added or removed
        at run time: Sparkplug 3.0 §6.4.1, an NDATA carries only metrics of the NBIRTH)."""
        if not self.born or not self.conn.connected:
            return
        values = self._node_values()
        if values.keys() != self._node_sent.keys():
            if self.may_birth():
                self.rebirth()
            return
        changed = [(k, v) for k, v in values.items() if self._node_sent.get(k) != v]
        if changed:
            self._node_sent.update(changed)
            ts = now_ms()
            self._publish(
                self.topics.node("NDATA"), metrics.node_data_metrics(self.aliases, changed, ts), ts
            )

    # ---- events -----------------------------------------------------------------------------

    def on_event(self, event: BoardEvent) -> None:
        """Board events as DBIRTH, DDEATH, DDATA (and the board's `online` as NDATA)."""
        if not self.born or not self.conn.connected:
            return
        if isinstance(event, DatastreamUpdated):
            if event.dev not in self.devices_born:
                return
            metric = Metric(
                None,
                self.aliases.alias(event.dev, event.slug),
                None,
                event.value,
                ts_ms=int(event.at * 1000),
                value_type=datatype_of(event.datastream),
            )
            self._publish(self.topics.device("DDATA", event.dev), [metric], now_ms())
        elif isinstance(event, BoardOnline):
            board = self.host.boards.get(event.dev)
            if board is not None:
                self.device_birth(board)
                self.publish_node_changes()
        elif event.dev in self.devices_born:
            self.device_death(event.dev)
            self.publish_node_changes()

    def on_refused_changed(self) -> None:
        """The claims changed: DDEATH of a device another bridge now runs, DBIRTH of an
        online one this bridge runs now (`docs/fleet.md` §2)."""
        if not self.born or not self.conn.connected:
            return
        for dev in sorted(self.devices_born):
            if not self.host.runs(dev):
                self.device_death(dev)
        for board in self.host.boards.values():
            born = board.dev in self.devices_born or board.dev in self.leaving
            if not born and board.online and board.hello is not None:
                self.device_birth(board)
        self.publish_node_changes()

    # ---- connection -------------------------------------------------------------------------

    async def on_connect(self) -> None:
        """A new session: drop what the last one left queued (its `seq` and aliases mean
        nothing now), forget the primary host's state until its `STATE` arrives again,
        then births now, or once the primary host says online."""
        self.conn.discard_queued()
        self.born = False
        self.devices_born.clear()
        self.host_online = None
        if not self.config.primary_host_id:
            self.rebirth()

    async def on_message(self, message: aiomqtt.Message) -> None:
        """NCMD, DCMD and STATE; anything unusable is ignored, counted and logged."""
        topic = message.topic.value
        payload = message.payload
        data = payload if isinstance(payload, bytes) else b""
        if self.config.primary_host_id and topic == state_topic(self.config.primary_host_id):
            await self.on_state(data)
        elif topic == self.topics.ncmd:
            self.on_ncmd(topic, data)
        else:
            dev = self.topics.dcmd_device(topic)
            if dev is not None:
                self.on_dcmd(topic, dev, data, message.retain)

    def _ignore(self, topic: str, why: str, count: int = 1) -> None:
        self.ignored_total += count
        log.debug("sparkplug command ignored", topic=topic, reason=why)

    async def on_state(self, data: bytes) -> None:
        """`STATE` of the primary host (`topics.parse_state`; one older than the last is
        ignored). Online: a birth. Offline while born: NDEATH and a reconnect (3.0 §7.4,
        `tck-id-message-flow-edge-node-birth-publish-phid-offline`)."""
        try:
            online, ts = parse_state(data)
        except ValueError as exc:
            self._ignore("STATE", f"unusable STATE payload: {exc}")
            return
        if ts < self._state_ts:
            log.debug("stale STATE ignored", timestamp=ts)
            return
        self._state_ts = ts
        self.host_online = online
        log.info("primary host state", host=self.config.primary_host_id, online=online)
        if online:
            self.rebirth()
        elif self.born:
            self.born = False
            self.devices_born.clear()
            death = OutMessage(self.topics.node("NDEATH"), self.ndeath_payload(), 1, False)
            await self.conn.reconnect([death])

    def on_ncmd(self, topic: str, data: bytes) -> None:
        """NCMD: `Node Control/Rebirth` = true → a full rebirth; anything else is ignored."""
        try:
            found, extra = decode_command(data)
        except SparkplugPayloadError as exc:
            self._ignore(topic, str(exc))
            return
        if extra:
            self._ignore(topic, "too many metrics", extra)
        if commands.asks_rebirth(found):
            if self.may_birth():
                self.rebirth()
        else:
            self._ignore(topic, "no metric this edge node acts on")

    def on_dcmd(self, topic: str, dev: str, data: bytes, retained: bool) -> None:
        """DCMD: each usable metric becomes a `SparkplugWrite` on the board; a board this
        bridge does not run (another bridge's, `host.runs`) takes none."""
        board = self.host.boards.get(dev)
        if board is None or not self.host.runs(dev):
            self._ignore(topic, f"board '{dev}' not run by this bridge")
            return
        try:
            found, extra = decode_command(data)
        except SparkplugPayloadError as exc:
            self._ignore(topic, str(exc))
            return
        datatypes = {slug: datatype_of(ds) for slug, ds in board.ds_by_slug.items()}
        writes, unusable = commands.dcmd_writes(dev, found, self.aliases, datatypes)
        if extra or unusable:
            self._ignore(topic, "metrics without a known name or value", extra + unusable)
        for write in writes:
            board.submit(commands.SparkplugWrite(self, topic, write.slug, write.value, retained))

    def refused(self, board: Board, label: str, error: ConduytError) -> None:
        """A DCMD write was refused: counted and reported by the board (`CommandFailed`,
        which the Conduyt layout publishes on `{base}/{dev}/error`, `docs/topics.md` §6)."""
        self.refused_total += 1
        log.debug("sparkplug command refused", device=board.dev, label=label, reason=str(error))
        board.report_failure(label, error)

    # ---- shutdown ---------------------------------------------------------------------------

    def final_messages(self) -> list[OutMessage]:
        """DDEATH of every device still born, then NDEATH (a clean DISCONNECT suppresses
        the Will, so the NDEATH is sent by hand, 3.0 §5.2)."""
        final: list[OutMessage] = []
        if self.born:
            for dev in sorted(self.devices_born):
                payload = encode_payload([], ts_ms=now_ms(), seq=self._next_seq())
                final.append(OutMessage(self.topics.device("DDEATH", dev), payload, 0, False))
        final.append(OutMessage(self.topics.node("NDEATH"), self.ndeath_payload(), 1, False))
        return final

    async def close(self) -> None:
        """Shutdown hook: publish the final messages and stop reconnecting; the host then
        cancels the link job, whose clean DISCONNECT ends the session."""
        await self.conn.close(self.final_messages())
        self.born = False


__all__ = ["EdgeConfig", "EdgeNode", "now_ms"]
