"""The edge node's session: births, deaths, data and commands (`docs/sparkplug.md` §2-§6).

One `EdgeNode` per bridge, on an MQTT connection of its own (client id `{client_id}-spb`,
clean session, the NDEATH as its Will), because the Will is the edge node's death
certificate (Sparkplug 3.0 §5.2):

- every connect attempt builds a new Will with the next `bdSeq` (0..255, §5.2); after a
  connect (and, with `primary_host_id`, once `spBv1.0/STATE/{host}` says online, §5.3):
  NBIRTH (`seq` 0, the same `bdSeq`) then one DBIRTH per online board;
- every later message (NDATA, DBIRTH, DDATA, DDEATH) takes the next `seq` (0..255,
  wrapping, §6.4.1); nothing is published while the node is not born;
- a handshake: DBIRTH; a lost board: DDEATH; a new value: DDATA (aliases only);
- NCMD `Node Control/Rebirth` = true: NBIRTH and every DBIRTH again (§5.6); DCMD: writes
  through `Board.submit`; hostile payloads are ignored, counted and logged at debug level;
- the primary host going offline stops publishing until it is back, then a rebirth;
- a clean stop: DDEATH of every born device and NDEATH with the connection's `bdSeq`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import aiomqtt
import structlog

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.events import BoardEvent, BoardOffline, BoardOnline, DatastreamUpdated
from conduyt_bridge.errors import ConduytError
from conduyt_bridge.northbound.conduyt.payloads import dumps, error_kind, error_report
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
from conduyt_bridge.northbound.sparkplug.topics import SparkplugTopics, state_topic
from conduyt_bridge.protocol.values import DatastreamValue
from conduyt_bridge.version import __version__

log = structlog.stdlib.get_logger(__name__)

MAX_STATE_BYTES = 1024
"""Largest `STATE` payload read; a bigger one is ignored."""


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """What the edge node needs: ids (`docs/sparkplug.md` §1), the Conduyt base topic for
    error reports, the MQTT settings of its own connection (`session_expiry_s` 0: clean
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
        self.host_online: bool | None = None
        self._state_ts = -1
        self.refused_total = 0
        self.ignored_total = 0
        self._node_sent: dict[str, tuple[DataType, DatastreamValue]] = {}
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
        self._link: asyncio.Task[None] | None = None

    # ---- wiring -----------------------------------------------------------------------------

    def install(self) -> None:
        """Register on the host: the link job, the boards' events and the shutdown hook."""
        filters = [self.topics.ncmd, self.topics.dcmd_filter]
        if self.config.primary_host_id:
            filters.append(state_topic(self.config.primary_host_id))
        self.host.on_start(lambda: self.conn.subscribe(filters, qos=1))
        self.host.add_job("sparkplug-mqtt", self.run_link)
        self.host.add_job("sparkplug-stats", self.run_stats)
        self.host.bus.subscribe(
            self.on_event, kinds=(BoardOnline, BoardOffline, DatastreamUpdated), late=True
        )
        self.host.on_shutdown(self.close)

    async def run_link(self) -> None:
        """The edge node's connection, shielded: the host cancels its jobs before the
        shutdown hooks run, and `close` must still publish the NDEATH on it."""
        if self._link is None or self._link.done():
            self._link = asyncio.get_running_loop().create_task(self.conn.run())
        await asyncio.shield(self._link)

    async def run_stats(self) -> None:
        """Every `stats_interval_s`: the node metrics that changed, as NDATA."""
        while True:
            await asyncio.sleep(self.config.stats_interval_s)
            self.publish_node_changes()

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

    def _publish(self, topic: str, payload_metrics: list[Metric]) -> None:
        payload = encode_payload(payload_metrics, ts_ms=now_ms(), seq=self._next_seq())
        self.conn.publish(topic, payload, qos=0, retain=False, coalesce=False)

    def _node_values(self) -> dict[str, tuple[DataType, DatastreamValue]]:
        return metrics.node_values(
            self.host.boards,
            self.host.sessions,
            __version__,
            self.refused_total,
            self.ignored_total,
        )

    def rebirth(self) -> None:
        """NBIRTH (`seq` 0) then a DBIRTH per online board (3.0 §5.6)."""
        if not self.conn.connected:
            return
        self._seq = 0
        values = self._node_values()
        self._node_sent = dict(values)
        self._publish(
            self.topics.node("NBIRTH"),
            metrics.node_birth_metrics(self.aliases, self.bdseq, values),
        )
        self.born = True
        self.devices_born.clear()
        for board in self.host.boards.values():
            if board.online and board.hello is not None:
                self.device_birth(board)
        log.info("sparkplug birth", edge_node=self.config.edge_node_id, bdseq=self.bdseq)

    def device_birth(self, board: Board) -> None:
        """DBIRTH of `board` (every handshake)."""
        self._publish(
            self.topics.device("DBIRTH", board.dev),
            metrics.device_birth_metrics(self.aliases, board),
        )
        self.devices_born.add(board.dev)

    def publish_node_changes(self) -> None:
        """NDATA with the node metrics whose value changed since the last birth or NDATA."""
        if not self.born or not self.conn.connected:
            return
        values = self._node_values()
        changed = [(k, v) for k, v in values.items() if self._node_sent.get(k) != v]
        if changed:
            self._node_sent.update(changed)
            self._publish(
                self.topics.node("NDATA"), metrics.node_data_metrics(self.aliases, changed)
            )

    # ---- events -----------------------------------------------------------------------------

    def on_event(self, event: BoardEvent) -> None:
        """Board events as DBIRTH, DDEATH, DDATA (and the board's `online` as NDATA)."""
        if not self.born or not self.conn.connected:
            return
        if isinstance(event, DatastreamUpdated):
            if event.dev not in self.devices_born:
                return
            datatype = datatype_of(event.datastream)
            metric = Metric(
                None,
                self.aliases.alias(event.dev, event.slug),
                None,
                event.value,
                ts_ms=int(event.at * 1000),
                value_type=datatype,
            )
            self._publish(self.topics.device("DDATA", event.dev), [metric])
        elif isinstance(event, BoardOnline):
            board = self.host.boards.get(event.dev)
            if board is not None:
                self.device_birth(board)
                self.publish_node_changes()
        elif event.dev in self.devices_born:
            self.devices_born.discard(event.dev)
            self._publish(self.topics.device("DDEATH", event.dev), [])
            self.publish_node_changes()

    # ---- connection -------------------------------------------------------------------------

    async def on_connect(self) -> None:
        """A new session: births now, or once the primary host says online."""
        self.born = False
        self.devices_born.clear()
        if not self.config.primary_host_id:
            self.rebirth()

    async def on_message(self, message: aiomqtt.Message) -> None:
        """NCMD, DCMD and STATE; anything unusable is ignored, counted and logged."""
        topic = message.topic.value
        payload = message.payload
        data = payload if isinstance(payload, bytes) else b""
        if self.config.primary_host_id and topic == state_topic(self.config.primary_host_id):
            self.on_state(data)
        elif topic == self.topics.ncmd:
            self.on_ncmd(topic, data)
        else:
            dev = self.topics.dcmd_device(topic)
            if dev is not None:
                self.on_dcmd(topic, dev, data, message.retain)

    def _ignore(self, topic: str, why: str, count: int = 1) -> None:
        self.ignored_total += count
        log.debug("sparkplug command ignored", topic=topic, reason=why)

    def on_state(self, data: bytes) -> None:
        """`STATE` of the primary host (3.0 §7.4: JSON `{"online": bool, "timestamp": ms}`;
        one older than the last one seen is stale and ignored)."""
        try:
            if len(data) > MAX_STATE_BYTES:
                raise ValueError("too large")
            doc = json.loads(data)
            online, ts = doc["online"], doc.get("timestamp", 0)
            if not isinstance(online, bool) or not isinstance(ts, int):
                raise ValueError("wrong types")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
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
        else:
            self.born = False
            self.devices_born.clear()

    def on_ncmd(self, topic: str, data: bytes) -> None:
        """NCMD: `Node Control/Rebirth` = true → a full rebirth; anything else is ignored."""
        try:
            found, extra = decode_command(data)
        except SparkplugPayloadError as exc:
            self._ignore(topic, str(exc))
            return
        if extra:
            self._ignore(topic, "too many metrics", extra)
        if commands.asks_rebirth(found, self.aliases):
            if self.born or not self.config.primary_host_id or self.host_online:
                self.rebirth()
        else:
            self._ignore(topic, "no metric this edge node acts on")

    def on_dcmd(self, topic: str, dev: str, data: bytes, retained: bool) -> None:
        """DCMD: each usable metric becomes a `SparkplugWrite` on the board."""
        board = self.host.boards.get(dev)
        if board is None:
            self._ignore(topic, f"no board '{dev}'")
            return
        try:
            found, extra = decode_command(data)
        except SparkplugPayloadError as exc:
            self._ignore(topic, str(exc))
            return
        writes, unusable = commands.dcmd_writes(dev, found, self.aliases)
        if extra or unusable:
            self._ignore(topic, "metrics without a known name or value", extra + unusable)
        for write in writes:
            board.submit(commands.SparkplugWrite(self, topic, write.slug, write.value, retained))

    def refused(self, board: Board, topic: str, error: ConduytError) -> None:
        """A DCMD write was refused: logged, counted, and reported on `{base}/{dev}/error`
        (`docs/topics.md` §6)."""
        self.refused_total += 1
        doc = error_report(topic, error)
        board.errors.append({**doc, "ts": time.time()})
        log.debug(
            "sparkplug command refused",
            device=board.dev,
            topic=topic,
            error=error_kind(error),
            reason=str(error),
        )
        error_topic = f"{self.config.base_topic}/{board.dev}/error"
        self.host.mqtt.publish(error_topic, dumps(doc), qos=1, coalesce=False)

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
        """Publish the final messages, then end the link (clean DISCONNECT)."""
        await self.conn.close(self.final_messages())
        self.born = False
        link = self._link
        if link is not None and not link.done():
            link.cancel()
            await asyncio.wait({link}, timeout=1.0)


__all__ = ["EdgeConfig", "EdgeNode", "now_ms"]
