"""What every deframer yields, counts and shares: packets, `FrameError`s and `TextLine`s.

Sans-IO, like all of `conduyt_bridge.protocol`. The two framings (`docs/protocol.md` §3.1
COBS, §3.2 raw packets on TCP) are `conduyt_bridge.protocol.cobs_deframer.CobsDeframer`
and `conduyt_bridge.protocol.raw_deframer.RawDeframer`; both satisfy `Deframer`, count
into `DeframerStats` and report every dropped frame as a `FrameError` with its
`FrameErrorReason`.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Protocol

from conduyt_bridge.protocol.errors import (
    BadMagicError,
    CrcMismatchError,
    OversizePacketError,
    TruncatedPacketError,
    VersionMismatchError,
)
from conduyt_bridge.protocol.packet import Packet

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "BaseDeframer",
    "Deframer",
    "DeframerStats",
    "FrameError",
    "FrameErrorReason",
    "StreamItem",
    "TextLine",
    "frame_error_reason",
]

DEFAULT_MAX_PAYLOAD = 2048
"""Largest payload a deframer accepts by default (bytes): above every board's 512 (§6.5)."""


class FrameErrorReason(StrEnum):
    """Why a frame (or, on TCP, a candidate packet) was dropped."""

    COBS = "cobs"
    BAD_MAGIC = "bad_magic"
    VERSION_MISMATCH = "version_mismatch"
    TRUNCATED = "truncated"
    CRC_MISMATCH = "crc_mismatch"
    OVERSIZE = "oversize"


@dataclass(frozen=True, slots=True)
class FrameError:
    """A dropped frame: the reason, a readable detail and (up to 64 of) the raw bytes."""

    reason: FrameErrorReason
    detail: str
    raw: bytes = b""


@dataclass(slots=True)
class DeframerStats:
    """Counters of a deframer since it was created (all in frames/packets unless noted)."""

    packets: int = 0
    empty_frames: int = 0
    cobs_errors: int = 0
    bad_magic: int = 0
    version_mismatch: int = 0
    truncated: int = 0
    crc_errors: int = 0
    oversize: int = 0
    resyncs: int = 0
    garbage_bytes: int = 0
    """Bytes skipped in front of a good packet or thrown away with a bad frame (text
    lines included)."""
    text_lines: int = 0
    """Text lines (or pieces of over-long lines) found between frames."""
    text_bytes: int = 0
    """Bytes of those text lines, terminators included (a part of `garbage_bytes`)."""

    @property
    def noise_bytes(self) -> int:
        """Non-protocol bytes that were not text: binary junk, broken frames."""
        return self.garbage_bytes - self.text_bytes

    @property
    def dropped(self) -> int:
        """Frames dropped for any reason (empty frames are not errors and not counted)."""
        return (
            self.cobs_errors
            + self.bad_magic
            + self.version_mismatch
            + self.truncated
            + self.crc_errors
            + self.oversize
        )

    def as_dict(self) -> dict[str, int]:
        """All counters by name, plus `dropped`."""
        out = {f.name: int(getattr(self, f.name)) for f in fields(self)}
        out["dropped"] = self.dropped
        out["noise_bytes"] = self.noise_bytes
        return out


@dataclass(frozen=True, slots=True)
class TextLine:
    """A line of text printed on the link between frames (e.g. a sketch's `Serial.println`).

    `text` has no line terminator; `complete` is False for a piece of a line longer than
    the deframer's `max_line` (the rest follows in the next `TextLine`).
    """

    text: str
    complete: bool = True


StreamItem = Packet | FrameError | TextLine
"""What `Deframer.feed_stream` yields."""


_REASON_COUNTER = {
    FrameErrorReason.COBS: "cobs_errors",
    FrameErrorReason.BAD_MAGIC: "bad_magic",
    FrameErrorReason.VERSION_MISMATCH: "version_mismatch",
    FrameErrorReason.TRUNCATED: "truncated",
    FrameErrorReason.CRC_MISMATCH: "crc_errors",
    FrameErrorReason.OVERSIZE: "oversize",
}


def frame_error_reason(exc: Exception) -> FrameErrorReason:
    """The reason a frame that raised `exc` while decoding is dropped for."""
    if isinstance(exc, CrcMismatchError):
        return FrameErrorReason.CRC_MISMATCH
    if isinstance(exc, VersionMismatchError):
        return FrameErrorReason.VERSION_MISMATCH
    if isinstance(exc, BadMagicError):
        return FrameErrorReason.BAD_MAGIC
    if isinstance(exc, TruncatedPacketError):
        return FrameErrorReason.TRUNCATED
    if isinstance(exc, OversizePacketError):
        return FrameErrorReason.OVERSIZE
    return FrameErrorReason.COBS


class Deframer(Protocol):
    """What the transports need from a framing: bytes in, packets out, and the reverse."""

    stats: DeframerStats

    def feed(self, data: bytes | bytearray) -> list[Packet]:
        """Packets completed by `data`, in order; dropped frames are only counted."""
        ...

    def feed_events(self, data: bytes | bytearray) -> list[Packet | FrameError]:
        """Packets and dropped-frame reports completed by `data`, in stream order."""
        ...

    def feed_stream(self, data: bytes | bytearray) -> list[StreamItem]:
        """Packets, dropped-frame reports and text lines completed by `data`, in order."""
        ...

    def frame(self, packet: bytes) -> bytes:
        """Wire bytes that carry one encoded packet on this framing."""
        ...


@dataclass(slots=True)
class BaseDeframer:
    """What the deframers share: the payload bound, the counters, `feed` and
    `feed_events` derived from `feed_stream`, and counting a dropped frame."""

    max_payload: int = DEFAULT_MAX_PAYLOAD
    stats: DeframerStats = field(default_factory=DeframerStats)

    def feed(self, data: bytes | bytearray) -> list[Packet]:
        return [e for e in self.feed_stream(data) if isinstance(e, Packet)]

    def feed_events(self, data: bytes | bytearray) -> list[Packet | FrameError]:
        """Packets and dropped-frame reports completed by `data`, in stream order."""
        return [e for e in self.feed_stream(data) if not isinstance(e, TextLine)]

    @abstractmethod
    def feed_stream(self, data: bytes | bytearray) -> list[StreamItem]:
        """Packets, dropped-frame reports and text lines completed by `data`, in order."""

    def _drop(
        self,
        out: list[StreamItem],
        reason: FrameErrorReason,
        detail: str,
        raw: bytes | bytearray,
    ) -> None:
        counter = _REASON_COUNTER[reason]
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        out.append(FrameError(reason, detail, bytes(raw[:64])))
