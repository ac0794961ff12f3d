"""The publish fast path: what the connection does below aiomqtt's public API.

aiomqtt keeps the session (CONNECT, Will, SUBSCRIBE, QoS 1, reconnect); QoS 0 telemetry
skips it and paho (`docs/architecture.md` §6.1): `Qos0Writer` encodes QoS 0 PUBLISH
packets itself (`conduyt_bridge.northbound.mqtt.packets`) and writes one buffer per
event-loop iteration onto paho's broker socket, behind anything paho still holds.

These are the only places that reach into aiomqtt's and paho's private attributes
(`aiomqtt.Client._client`; paho's `_sock`, `_sock_send`, `_out_packet`,
`_call_socket_register_write`, the `_OutPacket` dict shape). aiomqtt and paho-mqtt are
pinned to the versions this was written against (`pyproject.toml`), and
`tests/unit/test_pinned_internals.py` names the attribute that an upgrade changed.
Why each exists, with figures, is in `docs/libraries.md` §1-2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
import structlog

from conduyt_bridge.northbound.mqtt.outbox import OutMessage
from conduyt_bridge.northbound.mqtt.packets import TopicCache, encode_remaining_length

__all__ = [
    "BULK_PUBLISH_RATE",
    "FLUSH_BYTES",
    "QOS0_BYTES_LIMIT",
    "QOS0_QUEUE_LIMIT",
    "RATE_WINDOW_S",
    "PublishRate",
    "Qos0Writer",
    "paho_queue_bytes",
    "prepare_session",
    "publish_qos0",
    "quiet_paho_logging",
    "register_writes_in_loop",
    "send_qos0",
    "set_nodelay",
]

QOS0_QUEUE_LIMIT = 2_000
"""QoS 0 packets paho may hold unsent (messages with MQTT 5 properties, which go through
paho) before new ones wait in the (coalescing) outbox."""

QOS0_BYTES_LIMIT = 1024 * 1024
"""Bytes of fast-path QoS 0 packets that may wait for the broker socket (a stalled or
slow broker); beyond it new messages wait in the coalescing outbox instead."""

FLUSH_BYTES = 64 * 1024
"""The writer's buffer is written at once when it reaches this size, without waiting for
the end of the event-loop iteration (bounds the buffer of one long burst)."""

BULK_PUBLISH_RATE = 2_000.0
"""Publishes/s above which Nagle's algorithm is turned back on (throughput over latency)."""

RATE_WINDOW_S = 0.25
"""Window over which the publish rate is measured for that choice."""

_CHUNK_COMMAND = 0
"""`command` of the byte chunks the writer queues in paho's `_out_packet`: not PUBLISH
(paho would build a PUBACK `Properties` and `ReasonCode` for aiomqtt's `on_publish`
callback after each) and not DISCONNECT, so paho's writer only sends the bytes."""


class Qos0Writer:
    """Encodes QoS 0 PUBLISH packets and writes them to the broker socket of one session.

    `write` appends a packet to a buffer; the buffer goes to the socket once per
    event-loop iteration (`loop.call_soon`), or at once past `FLUSH_BYTES`. Before the
    connection hands paho a message (a QoS 1 publish, which aiomqtt passes to paho in the
    first step of its task) it calls `barrier`: what is buffered goes out before that
    step, what follows after it (callbacks run in the order they were scheduled: the
    barrier's release callback runs after the task's step, and segments sealed while
    an earlier barrier holds are released by that earlier barrier's callback). So no
    QoS 0 message overtakes one published before it, nor is overtaken by one published
    after it. Written directly with paho's
    `_sock_send` (plain TCP, TLS and WebSocket alike) while paho's own packet queue
    `_out_packet` is empty; otherwise, and for what the socket did not take, the bytes
    join that queue as one chunk and paho's writer sends them in turn. So bytes reach the
    socket in the order they were handed over, whoever writes them.

    Bytes waiting (`waiting_bytes`) are bounded by `QOS0_BYTES_LIMIT`: past it `write`
    returns False and the connection keeps the message in its coalescing outbox. One
    writer per session: a new connection gets a new writer, paho's queue having been
    cleared.
    """

    __slots__ = (
        "_buf",
        "_chunk_bytes",
        "_chunks",
        "_handle",
        "_holds",
        "_loop",
        "_out",
        "_paho",
        "_sealed",
        "_topics",
        "bytes_written",
        "lost_bytes",
    )

    def __init__(self, client: aiomqtt.Client, v5: bool) -> None:
        self._paho = client._client  # aiomqtt exposes no public accessor
        self._out: deque[Any] = self._paho._out_packet
        self._topics = TopicCache(v5)
        self._buf = bytearray()
        self._handle: asyncio.Handle | None = None
        self._holds = 0
        """Barriers whose QoS 1 task has not had its first step yet: no flush until 0."""
        self._sealed: deque[bytearray] = deque()
        """Buffers sealed by barriers while held, each released by the barrier before."""
        self._loop = asyncio.get_running_loop()
        self._chunks: deque[tuple[dict[str, Any], int]] = deque()
        """Chunks of ours in paho's queue, oldest first, with their size when queued."""
        self._chunk_bytes = 0
        """Sum of those sizes."""
        self.bytes_written = 0
        """Bytes the socket took directly (not counting chunks paho wrote)."""
        self.lost_bytes = 0
        """Bytes of packets dropped because the socket was gone or failed (QoS 0: at most
        once); the link is down then and aiomqtt reports it."""

    @property
    def waiting_bytes(self) -> int:
        """Bytes of QoS 0 packets not yet on the socket: the buffer plus the unsent part
        of the chunks in paho's queue."""
        chunks = self._chunks
        while chunks and chunks[0][0]["to_process"] == 0:
            self._chunk_bytes -= chunks.popleft()[1]
        buffered = self.buffered_bytes
        if not chunks:
            return buffered
        first, size = chunks[0]
        return buffered + self._chunk_bytes - (size - int(first["to_process"]))

    @property
    def buffered_bytes(self) -> int:
        """Bytes in the buffer (and sealed buffers), not yet handed to the socket or to
        paho's queue."""
        return len(self._buf) + sum(len(b) for b in self._sealed)

    def write(self, topic: str, payload: bytes, retain: bool) -> bool:
        """Queue one QoS 0 PUBLISH; False (nothing queued) when the socket is gone or
        `QOS0_BYTES_LIMIT` bytes wait already. Raises ValueError for a topic a PUBLISH
        may not carry or a payload too large (`conduyt_bridge.northbound.mqtt.packets`)."""
        if self._paho._sock is None or (self._chunks and self.waiting_bytes >= QOS0_BYTES_LIMIT):
            return False
        prefix = self._topics[topic]
        size = len(prefix) + len(payload)
        buf = self._buf
        if size < 128:  # one-byte Remaining Length: most telemetry
            buf.append(0x31 if retain else 0x30)
            buf.append(size)
        else:
            length = encode_remaining_length(size)  # raises before anything is queued
            buf.append(0x31 if retain else 0x30)
            buf += length
        buf += prefix
        buf += payload
        if len(buf) >= FLUSH_BYTES:
            self.flush()
        elif self._handle is None:
            self._handle = self._loop.call_soon(self.flush)
        return True

    def write_many(self, messages: Sequence[tuple[str, bytes]]) -> bool:
        """`write(topic, payload, False)` for each message, with the socket and
        `QOS0_BYTES_LIMIT` checked once for all (so the bytes waiting may pass the limit
        by one batch); False (nothing queued) when `write` would refuse the first. Raises
        ValueError like `write`, with the messages before the bad one queued."""
        if self._paho._sock is None or (self._chunks and self.waiting_bytes >= QOS0_BYTES_LIMIT):
            return False
        topics = self._topics
        buf = self._buf
        try:
            for topic, payload in messages:
                prefix = topics[topic]
                size = len(prefix) + len(payload)
                if size < 128:  # one-byte Remaining Length: most telemetry
                    buf.append(0x30)
                    buf.append(size)
                else:
                    buf += b"\x30" + encode_remaining_length(size)
                buf += prefix
                buf += payload
        finally:
            if len(buf) >= FLUSH_BYTES:
                self.flush()
            elif self._handle is None and buf:
                self._handle = self._loop.call_soon(self.flush)
        return True

    @property
    def held(self) -> bool:
        """True while a barrier holds the buffer back (see `barrier`)."""
        return self._holds > 0

    def barrier(self) -> None:
        """What is buffered goes out before, what is written from now on after, the
        callbacks scheduled so far (the first step of a QoS 1 publish task created just
        before)."""
        if self._holds:
            self._sealed.append(self._buf)  # released by the barrier before this one
            self._buf = bytearray()
        else:
            self.flush()
        self._holds += 1
        self._loop.call_soon(self._release)

    def _release(self) -> None:
        self._holds -= 1
        if self._sealed:
            self._send(self._sealed.popleft())
        elif not self._holds:
            self.flush()

    def flush(self) -> None:
        """Hand the buffer to the socket now, unless a barrier holds it (see the class
        docstring)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        data = self._buf
        if data and not self._holds:
            self._buf = bytearray()
            self._send(data)

    def _send(self, data: bytearray) -> None:
        if not data:
            return
        paho = self._paho
        if paho._sock is None:
            self.lost_bytes += len(data)
            return
        sent = 0
        if not self._out:  # nothing of paho's waits: the bytes may go first
            try:
                sent = paho._sock_send(data)  # registers the writer itself on EAGAIN
            except BlockingIOError:
                sent = 0
            except OSError:
                # The link broke: aiomqtt's reader sees it too and ends the session.
                self.lost_bytes += len(data)
                return
            self.bytes_written += sent
            if sent == len(data):
                return
        chunk = {
            "command": _CHUNK_COMMAND,
            "mid": 0,
            "qos": 0,
            "pos": sent,
            "to_process": len(data) - sent,
            "packet": data,
            "info": None,
        }
        self._out.append(chunk)
        self._chunks.append((chunk, len(data) - sent))
        self._chunk_bytes += len(data) - sent
        paho._call_socket_register_write()


def prepare_session(client: aiomqtt.Client) -> None:
    """Set up a freshly connected client for the hot path, from the loop thread: Nagle
    off (`set_nodelay`), paho's per-packet debug records off (`quiet_paho_logging`: they
    cost on every publish), write registration in order (`register_writes_in_loop`)."""
    set_nodelay(client)
    quiet_paho_logging(client)
    register_writes_in_loop(client)


def register_writes_in_loop(client: aiomqtt.Client) -> None:
    """Watch the broker socket for writability at once when paho asks from the event
    loop's own thread, instead of through aiomqtt's `call_soon_threadsafe(add_writer)`.

    aiomqtt defers the `add_writer` by one loop iteration even on the loop thread. When
    the link closes within that iteration (a broker stopping while we publish), paho's
    unregister (`remove_writer`) runs first and the deferred `add_writer` then meets a
    closed file descriptor: asyncio logs it as an error, and a reused descriptor number
    would even be watched by mistake. Done synchronously, register and unregister stay in
    order. Calls from another thread (paho's CONNECT, run in an executor) keep aiomqtt's
    way. Call it from the loop thread once the client is connected.
    """
    paho = client._client  # aiomqtt exposes no public accessor
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    deferred = paho.on_socket_register_write

    def write_ready() -> None:
        try:
            paho.loop_write()  # returns error codes for a broken link; it raises only on a bug
        except Exception:
            sock = paho._sock
            if sock is not None:
                loop.remove_writer(sock.fileno())
            structlog.stdlib.get_logger(__name__).warning(
                "broker socket write failed", exc_info=True
            )

    def on_register(c: mqtt.Client, userdata: Any, sock: Any) -> None:
        if threading.get_ident() != loop_thread:
            if deferred is not None:
                deferred(c, userdata, sock)
            return
        loop.add_writer(sock.fileno(), write_ready)

    paho.on_socket_register_write = on_register


def paho_queue_bytes(client: aiomqtt.Client) -> int:
    """Bytes of the packets in paho's queue not yet written (QoS 1 publishes, the fast
    path's chunks, acknowledgements): O(queue length), for health only."""
    return sum(int(p["to_process"]) for p in client._client._out_packet)


def publish_qos0(client: aiomqtt.Client, msg: OutMessage) -> bool:
    """Hand a QoS 0 message to paho; False if it must wait in the outbox.

    For the messages the writer does not encode (MQTT 5 properties: a reply's
    CorrelationData) and when no writer exists. Going through aiomqtt's `publish`
    coroutine would only cost a task, a future and a scan of pending calls; paho's queue is
    bounded here so a stalled socket backs up into the coalescing outbox.
    """
    paho = client._client  # aiomqtt exposes no public accessor
    if len(paho._out_packet) >= QOS0_QUEUE_LIMIT:
        return False
    info = paho.publish(msg.topic, msg.payload, 0, msg.retain, msg.properties)
    return info.rc == mqtt.MQTT_ERR_SUCCESS


def send_qos0(client: aiomqtt.Client, writer: Qos0Writer | None, msg: OutMessage) -> bool:
    """Send a QoS 0 message through `writer`, or through paho (`publish_qos0`) when it has
    MQTT 5 properties or there is no writer; the writer's buffer goes first then, so the
    message cannot overtake it (or, while a barrier holds the buffer, the message waits).
    False: it must wait in the outbox."""
    if writer is not None and msg.properties is None:
        return writer.write(msg.topic, msg.payload, msg.retain)
    if writer is not None:
        if writer.held:
            return False
        writer.flush()
    return publish_qos0(client, msg)


def set_nodelay(client: aiomqtt.Client, on: bool = True) -> None:
    """Turn Nagle's algorithm off (`on=True`) or back on for the broker socket.

    paho leaves it on, and small PUBLISH/PUBACK packets then wait ~40 ms for the peer's
    delayed ACK (measured: /set → state p50 88 ms with it, ~1 ms without). Under a flood
    of small publishes, though, Nagle's coalescing of segments is worth ~20% throughput.
    """
    sock = client._client.socket()  # aiomqtt exposes no public accessor
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if on else 0)


class PublishRate:
    """The publish rate, measured over `RATE_WINDOW_S` windows, for `set_nodelay`.

    Latency first (Nagle off), unless publishing in bulk: then TCP may coalesce segments
    again. Decided per window, so a /set round trip at ordinary rates is never held back
    by Nagle; after a pause the first message counts as not bulk, so it goes out at once.
    """

    __slots__ = ("_count", "_last", "_since")

    def __init__(self) -> None:
        self._count = 0
        self._since = time.monotonic()
        self._last = self._since

    def tick(self, count: int = 1) -> bool | None:
        """Count `count` publishes made now: None within a window, else whether the
        window that ends here was bulk (at least `BULK_PUBLISH_RATE` publishes/s)."""
        now = time.monotonic()
        idle = now - self._last >= RATE_WINDOW_S
        self._last = now
        if idle:  # after a pause: the first message goes out at once
            self._count, self._since = 0, now
        self._count += count
        elapsed = now - self._since
        if elapsed < RATE_WINDOW_S and not idle:
            return None
        bulk = not idle and self._count / elapsed >= BULK_PUBLISH_RATE
        self._count, self._since = 0, now
        return bulk


def quiet_paho_logging(client: aiomqtt.Client) -> None:
    """Stop paho's per-packet debug records unless the `mqtt` logger is at debug level.

    paho formats a debug record for every packet it sends or receives; on the hot path
    (one per datastream event) that is measurable.
    """
    if not logging.getLogger("mqtt").isEnabledFor(logging.DEBUG):
        client._client.disable_logger()
