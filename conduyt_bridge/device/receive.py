"""A board's read loop: what one serial read carries, sorted and delivered in one pass.

Each read of the link (`Link.receive_stream`) yields the packets, dropped-frame reports
and text lines it completes. Replies go to the session's pending-request table (or the
CRC-NAK retransmit); event packets go to the observer, a run of consecutive ones in one
`on_events` call when the observer has it (the batch path of `docs/architecture.md`
§6.1), else one `on_event` call each; text lines to `on_text`. Delivery keeps the order
of the read: a run ends at the first reply, error or text line, which is handled next.
The session's own parts (`_dispatch`, `_on_text`, `_last_rx`) are used from here: this
module is the session's receive half, apart only to keep modules small.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from conduyt_bridge.device.link import Link
from conduyt_bridge.device.reboot import BOOT_NOISE_BYTES
from conduyt_bridge.device.session_stats import SessionStats
from conduyt_bridge.protocol.constants import RESPONSE_TYPES
from conduyt_bridge.protocol.framing import FrameError, TextLine
from conduyt_bridge.protocol.packet import Packet

__all__ = ["BatchObserver", "ReceivingSession", "read_loop"]


class BatchObserver(Protocol):
    """A `SessionObserver` that also takes a run of event packets at once."""

    def on_events(self, session: Any, packets: Sequence[Packet]) -> None:
        """Event packets that arrived one after the other in one read, in order, from the
        `DeviceSession` `session`: the same as `on_event` for each, in one call. Must not
        block."""
        ...


class ReceivingSession(Protocol):
    """What the read loop uses of a `DeviceSession` (typed here, not imported: the
    session imports this module)."""

    observer: Any
    stats: SessionStats
    log: Any
    _last_rx: float

    def _dispatch(self, packet: Packet) -> None: ...

    def _on_text(self, line: TextLine) -> None: ...

    def suspect_reboot(self, why: str) -> None: ...


async def read_loop(session: ReceivingSession, link: Link) -> None:
    """Read `link` until it fails (the exception ends the session's link) or the task is
    cancelled. Raises ConduytDisconnectedError (LinkClosedError at end of stream)."""
    deframer_stats = link.deframer.stats
    noise = deframer_stats.noise_bytes
    stats = session.stats
    on_events: EventsHandler | None = getattr(session.observer, "on_events", None)
    while True:
        items = await link.receive_stream()
        if link.buffered:
            # StreamReader.read returns without suspending while bytes are buffered, so a
            # board that pushes faster than we decode would starve every other task
            # (MQTT publishing, other boards): yield once per chunk. With nothing
            # buffered the next read suspends anyway, and a loop iteration is saved.
            await asyncio.sleep(0)
        now = time.monotonic()  # once per chunk (up to ~270 DS_EVENTs), not per packet
        stats.reads_in += 1
        run: list[Packet] = []
        received = 0
        for item in items:
            if isinstance(item, Packet):  # the common case first
                received += 1
                if item.type not in RESPONSE_TYPES:
                    run.append(item)
                    continue
                if run:
                    _deliver(session, on_events, run)
                    run = []
                session._dispatch(item)
                continue
            if run:
                _deliver(session, on_events, run)
                run = []
            if isinstance(item, FrameError):
                stats.frame_error(item.reason)
                session.log.debug("frame dropped", reason=str(item.reason), detail=item.detail)
            else:
                session._on_text(item)
        if received:
            session._last_rx = now
            stats.packets_in += received
        if run:
            _deliver(session, on_events, run)
        if deframer_stats.noise_bytes - noise >= BOOT_NOISE_BYTES:
            session.suspect_reboot(
                f"{deframer_stats.noise_bytes - noise} bytes of non-text noise on the line"
            )
        noise = deframer_stats.noise_bytes


EventsHandler = Callable[[ReceivingSession, Sequence[Packet]], None]


def _deliver(session: ReceivingSession, on_events: EventsHandler | None, run: list[Packet]) -> None:
    """Hand a run of event packets to the observer (an observer bug is logged: it must
    not end the board's read loop)."""
    if on_events is None:
        for packet in run:
            session._dispatch(packet)
        return
    try:
        on_events(session, run)
    except Exception:
        session.log.exception("event handler failed", packets=len(run))
