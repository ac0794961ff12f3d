"""The raw packet deframer for the Conduyt TCP transport (`docs/protocol.md` §3.2).

No COBS and no delimiter: packets follow each other on the stream, found by their magic
and checked by VER, LEN and CRC. Sans-IO: feed bytes as they arrive, in any chunking.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conduyt_bridge.protocol.constants import OVERHEAD, PROTOCOL_VERSION
from conduyt_bridge.protocol.deframer import (
    BaseDeframer,
    FrameErrorReason,
    StreamItem,
    frame_error_reason,
)
from conduyt_bridge.protocol.errors import (
    OversizePacketError,
    ProtocolError,
    VersionMismatchError,
)
from conduyt_bridge.protocol.packet import decode_prefix

__all__ = ["RawDeframer"]


@dataclass(slots=True)
class RawDeframer(BaseDeframer):
    """Raw packet stream deframer for the Conduyt TCP transport (§3.2): no COBS, no prefix.

    Scans for the magic `43 44`, waits for 8 + LEN bytes, verifies VER and CRC; on any
    failure it skips one byte and rescans (the magic can occur inside payloads). LEN is
    bounded by `max_payload` (bytes), so the buffer never holds more than one packet's worth.
    """

    _buf: bytearray = field(default_factory=bytearray)

    def frame(self, packet: bytes) -> bytes:
        return packet

    def feed_stream(self, data: bytes | bytearray) -> list[StreamItem]:
        out: list[StreamItem] = []
        buf = self._buf
        buf += data
        while True:
            pos = buf.find(b"CD")
            if pos < 0:
                keep = 1 if buf[-1:] == b"C" else 0
                self.stats.garbage_bytes += len(buf) - keep
                del buf[: len(buf) - keep]
                return out
            if pos:
                self.stats.garbage_bytes += pos
                del buf[:pos]
            if len(buf) < 7:
                return out
            if buf[2] != PROTOCOL_VERSION:
                self._skip(
                    out, FrameErrorReason.VERSION_MISMATCH, str(VersionMismatchError(buf[2]))
                )
                continue
            length = buf[5] | (buf[6] << 8)
            if length > self.max_payload:
                self._skip(
                    out,
                    FrameErrorReason.OVERSIZE,
                    str(OversizePacketError(length, self.max_payload)),
                )
                continue
            if len(buf) < OVERHEAD + length:
                return out
            try:
                packet, used = decode_prefix(buf, self.max_payload)
            except ProtocolError as exc:
                self._skip(out, frame_error_reason(exc), str(exc))
                continue
            del buf[:used]
            self.stats.packets += 1
            out.append(packet)

    def _skip(self, out: list[StreamItem], reason: FrameErrorReason, detail: str) -> None:
        self._drop(out, reason, detail, self._buf[:OVERHEAD])
        self.stats.garbage_bytes += 1
        del self._buf[:1]
