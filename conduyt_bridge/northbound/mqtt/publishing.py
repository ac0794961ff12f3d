"""The publishing half of `MqttConnection`: publish now (the QoS 0 fast path, the QoS 1
window) or through the coalescing outbox, and the task that drains the outbox
(`docs/architecture.md` §6, §6.1). Apart from `connection` only to keep modules small:
`MqttConnection` inherits it and owns the state declared here.
"""

from __future__ import annotations

import asyncio
import itertools
from abc import ABC, abstractmethod
from collections.abc import Sequence

import aiomqtt
from paho.mqtt.properties import Properties

from conduyt_bridge.northbound.mqtt.client import PUBLISH_WINDOW
from conduyt_bridge.northbound.mqtt.fastpath import PublishRate, Qos0Writer, send_qos0, set_nodelay
from conduyt_bridge.northbound.mqtt.outbox import Outbox, OutMessage

__all__ = ["QOS0_BACKOFF_S", "Publishing"]

QOS0_BACKOFF_S = 0.005
"""Pause of the outbox drain while the QoS 0 writer (or paho's queue) is full."""


class Publishing(ABC):
    """Publishing for `MqttConnection` (which sets every attribute below in `__init__`)."""

    _outbox: Outbox
    _counter: itertools.count[int]
    _wakeup: asyncio.Event
    _connected: asyncio.Event
    _client: aiomqtt.Client | None
    _writer: Qos0Writer | None
    _finalizing: bool
    _in_flight: int
    _rate: PublishRate
    _nodelay: bool
    _latest: dict[str, OutMessage]
    published: int
    dropped: int

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
        coalesce: bool = True,
    ) -> None:
        """Publish without waiting: at once while connected and the publish window has room,
        else through the outbox. With `coalesce`, a newer message for the same topic
        replaces one still waiting in the outbox (state topics: the latest value wins).
        Nothing overtakes a message for the same topic still waiting in the outbox.
        Raises ValueError for a topic a PUBLISH may not carry (`packets.topic_prefix`)."""
        bulk = self._rate.tick()
        if bulk is not None:
            self._follow_rate(bulk)
        self._publish(topic, payload, qos, retain, properties, coalesce)

    def _publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int,
        retain: bool,
        properties: Properties | None,
        coalesce: bool,
    ) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        writer = self._writer
        if (
            qos == 0
            and writer is not None
            and properties is None
            and not (coalesce and topic in self._latest)
            and self._may_send(topic)
            and writer.write(topic, data, retain)
        ):
            self.published += 1  # the fast path (§6.1): no OutMessage, no paho objects
            return
        seq = next(self._counter)
        key: object = topic if coalesce else ("seq", seq)
        msg = OutMessage(topic, data, qos, retain, properties)
        if coalesce and (qos > 0 or topic in self._latest):
            # A QoS 0 message supersedes a failed QoS 1 one for the same topic too.
            self._latest[topic] = msg
        client = self._client
        if client is not None and self._may_send(topic):
            if qos == 0:
                if send_qos0(client, self._writer, msg):
                    self.published += 1
                    return
            elif self._in_flight < PUBLISH_WINDOW:
                self._start_send(client, key, seq, msg)
                return
        if self._outbox.put(key, seq, msg, coalesce=coalesce):
            self.dropped += 1
        self._wakeup.set()

    def publish_many(self, messages: Sequence[tuple[str, bytes]], *, coalesce: bool = True) -> None:
        """`publish(topic, payload, coalesce=coalesce)` for each (QoS 0, not retained), in
        order: the batch path (`docs/architecture.md` §6.1) checks the rate, the link and
        the writer's room once for all and encodes them in one `Qos0Writer.write_many`
        call; if a topic has a message waiting in the outbox (or, coalesced, a QoS 1 one
        pending), the link is down or the writer is full, each takes `publish`'s way."""
        bulk = self._rate.tick(len(messages))
        if bulk is not None:
            self._follow_rate(bulk)
        writer, waiting = self._writer, self._outbox.topics
        latest = self._latest if coalesce else {}
        if writer is not None and self._connected.is_set() and not self._finalizing:
            for topic, _ in messages:
                if topic in latest or topic in waiting:
                    break
            else:
                if writer.write_many(messages):
                    self.published += len(messages)
                    return
        for topic, payload in messages:
            self._publish(topic, payload, 0, False, None, coalesce)

    def _follow_rate(self, bulk: bool) -> None:
        # Latency first (Nagle off), unless publishing in bulk: then let TCP coalesce
        # segments again (`fastpath.PublishRate` says which, once per window).
        client = self._client
        if bulk == self._nodelay and client is not None and self._connected.is_set():
            self._nodelay = not bulk
            set_nodelay(client, self._nodelay)

    def _may_send(self, topic: str) -> bool:
        # Connected, no finals going out, nothing for `topic` waiting (not to overtake).
        outbox = self._outbox.topics
        return self._connected.is_set() and not self._finalizing and topic not in outbox

    @abstractmethod
    def _start_send(self, client: aiomqtt.Client, key: object, seq: int, msg: OutMessage) -> None:
        """Hand a QoS 1 message to paho in a task (`MqttConnection._start_send`, beside the
        publish timeout it uses)."""

    async def _publisher(self, client: aiomqtt.Client) -> None:
        # Drains the outbox (messages queued while away or while the window was full).
        while True:
            if not self._outbox:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            key = next(iter(self._outbox))
            seq, msg = self._outbox[key]
            if msg.qos == 0:
                if self._finalizing or not send_qos0(client, self._writer, msg):
                    await asyncio.sleep(QOS0_BACKOFF_S)  # the socket is behind: let it drain
                    continue
                self.published += 1
                del self._outbox[key]
            elif self._in_flight < PUBLISH_WINDOW:
                del self._outbox[key]
                self._start_send(client, key, seq, msg)
            else:
                self._wakeup.clear()
                await self._wakeup.wait()
