"""The publish fast path: what the connection does below aiomqtt's public API.

aiomqtt exposes no accessor for its paho client, so these functions reach into
`aiomqtt.Client._client` (and paho's `_out_packet` queue). They are the only places that
do, so an aiomqtt or paho upgrade that moves those attributes breaks here, and
`tests/e2e/test_connection.py` and `tests/e2e/test_outbox_order.py` catch it. Why each
exists (measured on a local broker) is in `docs/libraries.md` §1 and
`docs/architecture.md` §6.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time

import aiomqtt
import paho.mqtt.client as mqtt

from conduyt_bridge.northbound.mqtt.outbox import OutMessage

__all__ = [
    "BULK_PUBLISH_RATE",
    "QOS0_QUEUE_LIMIT",
    "RATE_WINDOW_S",
    "PublishRate",
    "publish_qos0",
    "quiet_paho_logging",
    "set_nodelay",
]

QOS0_QUEUE_LIMIT = 2_000
"""QoS 0 packets paho may hold unsent before new ones wait in the (coalescing) outbox."""

BULK_PUBLISH_RATE = 2_000.0
"""Publishes/s above which Nagle's algorithm is turned back on (throughput over latency)."""

RATE_WINDOW_S = 0.25
"""Window over which the publish rate is measured for that choice."""


def publish_qos0(client: aiomqtt.Client, msg: OutMessage) -> bool:
    """Hand a QoS 0 message straight to paho; False if it must wait in the outbox.

    QoS 0 has no acknowledgement to wait for, so going through aiomqtt's `publish`
    coroutine (a task, a future and a scan of pending calls per message) only costs:
    paho queues the packet and aiomqtt's socket writer flushes the queue in batches.
    paho's own queue is bounded here so a stalled socket backs up into the coalescing
    outbox instead of growing without limit.
    """
    paho = client._client  # aiomqtt exposes no public accessor
    if len(paho._out_packet) >= QOS0_QUEUE_LIMIT:
        return False
    info = paho.publish(msg.topic, msg.payload, 0, msg.retain, msg.properties)
    return info.rc == mqtt.MQTT_ERR_SUCCESS


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

    def tick(self) -> bool | None:
        """Count one publish: None within a window, else whether the window that ends
        here was bulk (at least `BULK_PUBLISH_RATE` publishes/s)."""
        now = time.monotonic()
        idle = now - self._last >= RATE_WINDOW_S
        self._last = now
        if idle:  # after a pause: the first message goes out at once
            self._count, self._since = 0, now
        self._count += 1
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
