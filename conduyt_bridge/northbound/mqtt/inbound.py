"""The bounded queue of incoming MQTT messages (docs/hostile-input.md).

aiomqtt 2.5 puts every message paho receives into one `asyncio.Queue` (the `queue_type`
argument of `aiomqtt.Client`) and reads `client.messages` from it; by default that queue
has no bound, so a client flooding the base topic grows the bridge's memory for as long as
the flood outruns the bridge. `inbound_queue_type` makes the queue class aiomqtt builds:
bounded in messages (aiomqtt's own `max_queued_incoming_messages` would be that alone) and
in payload bytes, and counting what it drops in an `InboundStats`.

aiomqtt hands messages over with `put_nowait` from paho's `on_message` callback and, when
that raises `QueueFull`, logs a warning per message. This queue drops without raising, so
a flood costs one rate-limited warning here instead of one log line per message;
`tests/e2e/test_hostile_input.py` checks the count against a real broker, so a change in how
aiomqtt fills its queue fails there.
"""

from __future__ import annotations

import asyncio
import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt
import structlog

log = structlog.stdlib.get_logger("conduyt_bridge.northbound.mqtt")

INBOUND_MESSAGE_LIMIT = 1_000
"""Incoming messages waiting for the bridge at most; more are dropped (and counted)."""

INBOUND_BYTES_LIMIT = 8 * 1024 * 1024
"""Payload bytes of the waiting incoming messages at most; a message that would go past it
is dropped, unless the queue is empty (so that any one message can still be refused with
an error report)."""

DROP_WARNING_INTERVAL_S = 10.0
"""At most one warning about dropped incoming messages per this many seconds."""

TRIM_AFTER_BYTES = 4 * 1024 * 1024
"""Payload bytes received since the last `malloc_trim` that make the next drained queue
trim again (see `InboundStats.release_memory`)."""

TRIM_INTERVAL_S = 1.0
"""At most one `malloc_trim` per this many seconds."""


def _find_malloc_trim() -> Callable[[int], int] | None:
    # glibc only (musl and other C libraries have no malloc_trim): None elsewhere.
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    return trim


_malloc_trim = _find_malloc_trim()


@dataclass(slots=True)
class InboundStats:
    """What the incoming-message queue holds and has dropped."""

    queued_bytes: int = 0
    dropped: int = 0
    dropped_bytes: int = 0
    queue: asyncio.Queue[aiomqtt.Message] | None = None
    """The queue aiomqtt built (set by the queue itself), for `take_nowait`."""
    received_bytes: int = 0
    """Payload bytes of every message queued (not dropped), ever."""
    _warned_at: float = float("-inf")
    _warned_dropped: int = 0
    _trimmed_at: float = float("-inf")
    _trimmed_bytes: int = 0
    _trim_pending: bool = False

    def release_memory(self) -> None:
        """Give the C heap's free memory back to the system after a burst of input.

        Call when the queue has just been drained. Large payloads make glibc's heap grow
        and, once freed, the memory stays with the process (measured, `bench/hostile.py`:
        +15 MB after a 1.2 GB flood, flat on later floods); `malloc_trim(0)` returns it.
        Done only after `TRIM_AFTER_BYTES` of new input, at most every `TRIM_INTERVAL_S`;
        a trim that comes too soon is put off to the end of the interval, so the last
        burst is trimmed too.
        """
        if self._trim_pending or self.received_bytes - self._trimmed_bytes < TRIM_AFTER_BYTES:
            return
        wait = self._trimmed_at + TRIM_INTERVAL_S - time.monotonic()
        if wait > 0:
            self._trim_pending = True
            asyncio.get_running_loop().call_later(wait, self._trim)
            return
        self._trim()

    def _trim(self) -> None:
        self._trim_pending = False
        self._trimmed_at, self._trimmed_bytes = time.monotonic(), self.received_bytes
        if _malloc_trim is not None:
            _malloc_trim(0)

    def take_nowait(self) -> aiomqtt.Message | None:
        """The next queued message, or None when none is waiting.

        aiomqtt's `client.messages` hands out one message per turn of the event loop, but
        paho reads up to one packet per message of its own in flight in each turn (every
        QoS 1 error report is one), so under a burst the queue fills faster than
        `client.messages` empties it. Whoever reads `client.messages` takes what else is
        already waiting with this, between two of its messages (never while aiomqtt waits
        on the queue itself).
        """
        queue = self.queue
        if queue is None or queue.empty():
            return None
        return queue.get_nowait()

    def note_drop(self, size: int) -> None:
        """Count one dropped message of `size` payload bytes; warn now and then."""
        self.dropped += 1
        self.dropped_bytes += size
        now = time.monotonic()
        if now - self._warned_at >= DROP_WARNING_INTERVAL_S:
            log.warning(
                "incoming MQTT messages dropped: the bridge cannot keep up",
                dropped=self.dropped - self._warned_dropped,
                dropped_total=self.dropped,
            )
            self._warned_at = now
            self._warned_dropped = self.dropped


def payload_bytes(message: aiomqtt.Message) -> bytes:
    """A received message's payload as bytes (aiomqtt types it `bytes | str | int | float |
    None`; from the broker it is bytes, and an empty or missing one is `b""`)."""
    payload = message.payload
    return payload if isinstance(payload, bytes) else str(payload or "").encode()


def response_route(message: aiomqtt.Message) -> tuple[str | None, bytes | None]:
    """A request's MQTT 5 Response Topic (None when absent or empty) and Correlation
    Data; `(None, None)` for MQTT 3.1.1, which has no properties."""
    props = message.properties
    if props is None:
        return None, None
    topic = getattr(props, "ResponseTopic", None) or None
    return topic, getattr(props, "CorrelationData", None)


def _size(message: aiomqtt.Message) -> int:
    payload = message.payload
    return len(payload) if isinstance(payload, bytes | bytearray | str) else 0


def inbound_queue_type(
    stats: InboundStats,
    max_messages: int = INBOUND_MESSAGE_LIMIT,
    max_bytes: int | None = INBOUND_BYTES_LIMIT,
) -> type[asyncio.Queue[aiomqtt.Message]]:
    """The queue class to pass as `queue_type` to `aiomqtt.Client`, counting into `stats`.

    aiomqtt constructs it with its own `maxsize` (0, unbounded, unless
    `max_queued_incoming_messages` is given); `max_messages` replaces that, and 0 means
    no bound on the count (as for `asyncio.Queue`). `max_bytes=None` means no bound on
    the payload bytes.
    """

    class InboundQueue(asyncio.Queue[aiomqtt.Message]):
        def __init__(self, maxsize: int = 0) -> None:
            super().__init__(maxsize=max_messages)
            stats.queue = self

        def put_nowait(self, item: aiomqtt.Message) -> None:
            size = _size(item)
            over_bytes = (
                max_bytes is not None and self.qsize() > 0 and stats.queued_bytes + size > max_bytes
            )
            if self.full() or over_bytes:
                stats.note_drop(size)
                return
            super().put_nowait(item)
            stats.queued_bytes += size
            stats.received_bytes += size

        def _get(self) -> aiomqtt.Message:
            # The hook both `get` and `get_nowait` take (as LifoQueue's and
            # PriorityQueue's overrides rely on).
            item: aiomqtt.Message = super()._get()
            stats.queued_bytes -= _size(item)
            return item

    return InboundQueue
