"""The board's receive path: host bytes in, packets and dropped-frame reports out.

COBS links (§3.1) follow the firmware's buffer sizing: it accumulates at most
`max_payload + 8` encoded bytes before a delimiter; a longer frame overflows the buffer
and is lost, which is why the effective host→device limit over COBS is a few bytes below
`max_payload` (§1.5). Frames that fit are decoded by `CobsDeframer`. Raw links (TCP,
§3.2) use `RawDeframer`.

Known difference from the firmware: the protocol core's deframers resynchronise after
garbage (they are built for the host side), so a frame with junk in front of it is still
executed here where the firmware would drop it; and a raw (TCP) link does not wedge on
garbage the way the firmware does (quirk Q3).
"""

from __future__ import annotations

from collections import deque
from typing import Literal

from conduyt_bridge.protocol.constants import OVERHEAD
from conduyt_bridge.protocol.framing import (
    CobsDeframer,
    FrameError,
    FrameErrorReason,
    RawDeframer,
)
from conduyt_bridge.protocol.packet import Packet

Framing = Literal["cobs", "raw"]


class Receiver:
    """Device-side deframer for `framing` with the board's `max_payload` (bytes)."""

    def __init__(self, framing: Framing, max_payload: int) -> None:
        if framing not in ("cobs", "raw"):
            raise ValueError(f"framing must be 'cobs' or 'raw', not {framing!r}")
        self.framing: Framing = framing
        self.max_payload = max_payload
        self.rx_capacity = max_payload + OVERHEAD
        """Encoded bytes the firmware buffers before a delimiter (`_rxBuf` = M + 8)."""
        self._cobs = CobsDeframer(max_payload=max_payload)
        self._raw = RawDeframer(max_payload=max_payload)
        self._frame = bytearray()
        self._overflow = False
        self._backlog: deque[Packet | FrameError] = deque()

    @property
    def backlog(self) -> int:
        """Complete packets waiting in the `feed_one` buffer (the firmware's TCP backlog)."""
        return len(self._backlog)

    def feed_one(self, data: bytes) -> list[Packet | FrameError]:
        """The firmware's TCP receive (quirks Q4 and Q24): at most one packet per poll.

        `data` is what one `poll()` found; only a poll that found bytes decodes, and it
        decodes the oldest complete packet in the buffer, so packets that arrived together
        wait for later arrivals, even ones that complete nothing.
        """
        if not data:
            return []
        self._backlog.extend(self._raw.feed_events(data))
        return [self._backlog.popleft()] if self._backlog else []

    def reset(self) -> None:
        """Forget a partly received frame (RESET clears the receive buffer, §4.2)."""
        self._frame.clear()
        self._overflow = False
        self._backlog.clear()
        self._cobs = CobsDeframer(max_payload=self.max_payload)
        self._raw = RawDeframer(max_payload=self.max_payload)

    def feed(self, data: bytes) -> list[Packet | FrameError]:
        """Packets and dropped frames completed by `data`, in stream order."""
        if self.framing == "raw":
            return self._raw.feed_events(data)
        out: list[Packet | FrameError] = []
        start = 0
        while True:
            idx = data.find(0, start)
            chunk = data[start:] if idx < 0 else data[start:idx]
            if not self._overflow:
                self._frame += chunk
                if len(self._frame) > self.rx_capacity:
                    self._overflow = True
                    self._frame.clear()
            if idx < 0:
                return out
            start = idx + 1
            if self._overflow:
                self._overflow = False
                out.append(
                    FrameError(
                        FrameErrorReason.OVERSIZE,
                        f"frame longer than the {self.rx_capacity}-byte receive buffer",
                    )
                )
            elif self._frame:
                out.extend(self._cobs.feed_events(bytes(self._frame) + b"\x00"))
                self._frame.clear()
