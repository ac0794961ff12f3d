"""Stream framing: COBS + 0x00 delimiter (serial, USB, ser2net) and raw packets (TCP).

Sans-IO: feed bytes as they arrive, in any chunking, get packets out. Layout per
`docs/protocol.md` §3.1 (COBS) and §3.2 (TCP). Both deframers bound their buffers, count
every dropped frame by reason, and resynchronise after garbage (e.g. a sketch's
`Serial.print` text or an ESP32 boot banner in front of a frame, quirk Q19).

Text between frames (COBS links only): the serial line is shared with the sketch's own
`Serial.println`, so `CobsDeframer.feed_stream` also yields each printable line it finds
between frames as a `TextLine`. The bytes up to an LF are a line; ANSI CSI escape
sequences (`ESC [` parameters, final byte `@`..`~`, e.g. the colours ESP-IDF logs in) are
removed first. A byte is printable unless it is part of an invalid UTF-8 sequence or a
control character other than tab and CR. The line is text when all its bytes are
printable, or when it ends with LF and at least 90 % of its bytes (`MIN_PRINTABLE_PERCENT`,
LF excluded) are: a line with a few corrupted bytes is still the sketch's text, published
with U+FFFD for each bad byte. A line containing `43 44 02` is never text: every encoded
packet begins with a code byte then `43 44 02` (magic, version), so text can never hide a
frame; an LF directly followed by `CD` is held back (it may be a COBS code byte). Runs
without LF come out in `max_line` pieces when fully printable. Lines are emitted as soon as
their LF arrives, without waiting for the next frame. Everything else that is not a packet
is noise. The rule is described in `docs/serial-text.md`.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Protocol

from cobs import cobs

from conduyt_bridge.protocol.constants import OVERHEAD, PROTOCOL_VERSION
from conduyt_bridge.protocol.errors import (
    BadMagicError,
    CrcMismatchError,
    OversizePacketError,
    ProtocolError,
    TruncatedPacketError,
    VersionMismatchError,
)
from conduyt_bridge.protocol.packet import Packet, decode_prefix

DEFAULT_MAX_PAYLOAD = 2048
"""Largest payload a deframer accepts by default (bytes): above every board's 512 (§6.5)."""

DEFAULT_MAX_LINE = 256
"""Longest text line a COBS deframer yields, bytes of UTF-8; longer lines come in pieces."""

MIN_PRINTABLE_PERCENT = 90
"""Least share of printable bytes (percent, escape sequences and LF not counted) that makes
an LF-terminated line with some bad bytes text rather than noise."""

_CSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]")
"""An ANSI (ECMA-48) control sequence: `ESC [`, parameter bytes, intermediate bytes, final
byte."""

_FRAME_START = b"CD\x02"
"""What follows the code byte of every COBS-encoded packet: the magic and version."""

_UNPRINTABLE = re.compile("[\x00-\x08\n\x0b\x0c\x0e-\x1f\x7f-\x9f\udc80-\udcff]")
"""Characters of a line decoded with `surrogateescape` that are not printable text: control
characters other than tab and CR, and the lone surrogates that stand for invalid bytes."""

_CONTROL = re.compile("[\x00-\x08\n\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""Control characters a published line shows as U+FFFD, like the invalid bytes."""


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


def _classify(exc: Exception) -> FrameErrorReason:
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


def cobs_frame(packet: bytes) -> bytes:
    """COBS-encode one encoded packet and append the `0x00` delimiter (§3.1)."""
    return bytes(cobs.encode(packet)) + b"\x00"


@dataclass(slots=True)
class _Base:
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


def _line_text(raw: bytes | bytearray) -> bytes | None:
    """`raw` (bytes up to and including an LF, or a run without one) with its escape
    sequences removed if it is text by the module docstring's rule, else None."""
    if _FRAME_START in raw:
        return None
    clean = _CSI.sub(b"", bytes(raw))
    body = clean[:-1] if clean.endswith(b"\n") else clean
    bad = 0
    for match in _UNPRINTABLE.finditer(body.decode("utf-8", errors="surrogateescape")):
        # C1 controls take two bytes in UTF-8; a surrogate stands for one raw byte.
        bad += 1 if match.group() >= "\udc80" else len(match.group().encode())
    if bad == 0:
        return clean
    if clean.endswith(b"\n") and 100 * (len(body) - bad) >= MIN_PRINTABLE_PERCENT * len(body):
        return clean
    return None


def _utf8_cut(raw: bytes | bytearray, size: int) -> int:
    """The largest cut <= `size` that does not split a UTF-8 character of `raw`."""
    cut = min(size, len(raw))
    while 0 < cut < len(raw) and raw[cut] & 0xC0 == 0x80 and size - cut < 3:
        cut -= 1
    return cut


@dataclass(slots=True)
class CobsDeframer(_Base):
    """COBS stream deframer: split on `0x00`, COBS-decode, wire-decode (§3.1).

    Empty frames are skipped. A frame that fails is retried from each later position where
    an encoded packet could start (a code byte followed by `43 44`), so text printed in
    front of a frame costs only the text. A frame longer than the largest possible encoded
    packet (`max_payload`, bytes) is discarded up to its delimiter, so a stream without
    delimiters never grows the buffer past that bound.

    Text between frames comes out of `feed_stream` as `TextLine`s of at most `max_line`
    bytes (see the module docstring); a text fragment without LF in front of a frame is
    kept and joined with the text after the frame, as the sketch printed it.
    """

    max_line: int = DEFAULT_MAX_LINE
    _buf: bytearray = field(default_factory=bytearray)
    _discarding: bool = False
    _line: bytearray = field(default_factory=bytearray)

    @property
    def max_frame(self) -> int:
        """Largest encoded frame accepted, bytes (packet + COBS overhead)."""
        size = self.max_payload + OVERHEAD
        return size + size // 254 + 1

    def frame(self, packet: bytes) -> bytes:
        return cobs_frame(packet)

    def feed_stream(self, data: bytes | bytearray) -> list[StreamItem]:
        out: list[StreamItem] = []
        start = 0
        limit = self.max_frame
        while True:
            idx = data.find(0, start)
            if idx < 0:
                rest = data[start:]
                if self._discarding:
                    self.stats.garbage_bytes += len(rest)
                else:
                    self._buf += rest
                    self._pop_text(out)
                    if len(self._buf) > limit:
                        self._overflow(out)
                return out
            chunk = data[start:idx]
            start = idx + 1
            if self._discarding:
                self._discarding = False
                self.stats.garbage_bytes += len(chunk)
                continue
            if self._buf:
                self._buf += chunk
                frame = bytes(self._buf)
                self._buf.clear()
            else:
                frame = bytes(chunk)
            if not frame:
                self.stats.empty_frames += 1
            elif len(frame) > limit:
                self._drop(
                    out,
                    FrameErrorReason.OVERSIZE,
                    f"frame of {len(frame)} bytes exceeds {limit} bytes",
                    frame,
                )
                self.stats.garbage_bytes += len(frame)
            else:
                self._decode(frame, out)

    def _overflow(self, out: list[StreamItem]) -> None:
        self._drop(
            out, FrameErrorReason.OVERSIZE, f"no delimiter within {self.max_frame} bytes", self._buf
        )
        self.stats.garbage_bytes += len(self._buf)
        self._buf.clear()
        self._discarding = True

    def _pop_text(self, out: list[StreamItem]) -> None:
        """Take complete text lines off the front of the undelimited buffer at once, so a
        line is published when its LF arrives, not when the next frame ends."""
        self._sort(out, self._buf, final=False)

    def _absorb(self, out: list[StreamItem], raw: bytes) -> int:
        """Sort non-packet bytes into text lines and noise; returns the noise byte count."""
        return self._sort(out, bytearray(raw), final=True)

    def _sort(self, out: list[StreamItem], buf: bytearray, *, final: bool) -> int:
        """Take text lines (and, if `final`, noise) off the front of `buf`; returns the
        noise byte count. Not `final`: more bytes may follow, so it stops at the first
        line it cannot decide yet (left for the frame's delimiter)."""
        noise = 0
        while buf:
            step = self._next_cut(buf, final=final)
            if step is None:
                return noise
            cut, clean = step
            segment = bytes(buf[:cut])
            del buf[:cut]
            if clean is not None:
                self._take_text(out, segment, clean)
                continue
            noise += len(segment)
            self.stats.garbage_bytes += len(segment)
            if self._line:
                # Noise ends a text fragment: publish what was printed so far.
                self._emit_line(out, self._line.rstrip(b"\r"), complete=False)
                self._line.clear()
        return noise

    def _next_cut(self, buf: bytes | bytearray, *, final: bool) -> tuple[int, bytes | None] | None:
        """Length of the next segment of `buf` and its text (None: noise, only if `final`),
        or None if it cannot be decided before more bytes arrive. A decision depends only
        on the bytes it covers plus a short look-ahead, so both modes cut and judge the
        same segments and the result does not depend on how reads are chunked."""
        reach = self.max_line + 3
        nl = buf.find(b"\n", 0, reach)
        if nl < 0 and len(buf) >= reach:
            # A run too long for one line is taken in pieces when fully printable. A frame
            # starting inside the piece would have its `02` within 3 bytes after it.
            cut = _utf8_cut(buf, self.max_line)
            if 0x02 not in buf[cut:reach]:
                clean = _line_text(buf[:cut])
                if clean is not None:
                    return cut, clean
            nl = buf.find(b"\n", reach)
        if nl >= 0:
            after = bytes(buf[nl + 1 : nl + 3])
            if not final and after and b"CD".startswith(after):
                return None  # this LF may be the code byte of a frame
            cut = nl + 1
        elif final:
            cut = len(buf)
        else:
            return None
        clean = _line_text(buf[:cut])
        if clean is None and not final:
            return None  # noise or a frame: left for the delimiter
        return cut, clean

    def _text_prefix(self, frame: bytes) -> int:
        """Bytes at the front of `frame` that `_pop_text` takes as text when they arrive
        before the delimiter."""
        pos = 0
        while pos < len(frame):
            step = self._next_cut(frame[pos:], final=False)
            if step is None:
                break
            pos += step[0]
        return pos

    def _take_text_prefix(self, out: list[StreamItem], frame: bytes, end: int) -> int:
        """Take as text what `_pop_text` would have taken of `frame[:end]` had it come
        in several reads (its look-ahead reaches past `end`); returns the bytes taken."""
        pos = 0
        while pos < end:
            step = self._next_cut(frame[pos:], final=False)
            if step is None or step[1] is None or pos + step[0] > end:
                break
            self._take_text(out, frame[pos : pos + step[0]], step[1])
            pos += step[0]
        return pos

    def _take_text(self, out: list[StreamItem], raw: bytes, clean: bytes) -> None:
        """Count the wire bytes `raw` as text and add their text `clean` to the line."""
        self.stats.garbage_bytes += len(raw)
        self.stats.text_bytes += len(raw)
        line = self._line
        line += clean
        while line:
            nl = line.find(b"\n")
            body_end = nl - 1 if nl > 0 and line[nl - 1] == 0x0D else nl
            if 0 <= body_end <= self.max_line:
                if body_end:  # blank lines (banners are full of them) carry nothing
                    self._emit_line(out, line[:body_end], complete=True)
                del line[: nl + 1]
            elif len(line) >= self.max_line:
                cut = _utf8_cut(line, self.max_line)
                self._emit_line(out, line[:cut], complete=False)
                del line[:cut]
            else:
                return

    def _emit_line(self, out: list[StreamItem], raw: bytes | bytearray, *, complete: bool) -> None:
        self.stats.text_lines += 1
        text = bytes(raw).decode("utf-8", errors="replace")
        out.append(TextLine(_CONTROL.sub("\ufffd", text), complete))

    def _decode(self, frame: bytes, out: list[StreamItem]) -> None:
        try:
            packet = self._decode_at(frame, 0)
        except (cobs.DecodeError, ProtocolError) as first:
            # Resync: garbage in front of a frame shifts it; the encoded packet starts with
            # its code byte, then the magic "CD".
            pos = frame.find(b"CD", 2)
            while pos > 0:
                try:
                    packet = self._decode_at(frame, pos - 1)
                except (cobs.DecodeError, ProtocolError):
                    pos = frame.find(b"CD", pos + 1)
                    continue
                self.stats.resyncs += 1
                # First what `_pop_text` would have taken had the bytes come in several
                # reads (its look-ahead reaches into the packet), then the rest as final.
                taken = self._take_text_prefix(out, frame, pos - 1)
                self._absorb(out, frame[taken : pos - 1])
                self.stats.packets += 1
                out.append(packet)
                return
            # Report the frame as if its leading text had come in an earlier read (then
            # `_pop_text` takes it off first), so chunking never changes what is counted.
            skip = self._text_prefix(frame)
            if self._absorb(out, frame):
                rest = frame[skip:]
                error = self._error_of(rest, first) if skip else first
                self._drop(out, _classify(error), str(error) or "COBS decode failed", rest)
            elif skip == len(frame):
                self.stats.empty_frames += 1
            return
        self.stats.packets += 1
        out.append(packet)

    def _error_of(self, frame: bytes, fallback: Exception) -> Exception:
        """Why `frame` does not decode (`fallback` if it does: resync would have found
        that packet, so it is not expected)."""
        try:
            self._decode_at(frame, 0)
        except (cobs.DecodeError, ProtocolError) as exc:
            return exc
        return fallback

    def _decode_at(self, frame: bytes, offset: int) -> Packet:
        raw = cobs.decode(frame[offset:] if offset else frame)
        packet, _ = decode_prefix(raw, self.max_payload)
        return packet


@dataclass(slots=True)
class RawDeframer(_Base):
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
                self._skip(out, _classify(exc), str(exc))
                continue
            del buf[:used]
            self.stats.packets += 1
            out.append(packet)

    def _skip(self, out: list[StreamItem], reason: FrameErrorReason, detail: str) -> None:
        self._drop(out, reason, detail, self._buf[:OVERHEAD])
        self.stats.garbage_bytes += 1
        del self._buf[:1]
