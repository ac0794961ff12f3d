"""The COBS stream deframer for serial, USB and ser2net links (`docs/protocol.md` §3.1).

Split on `0x00`, COBS-decode, wire-decode; resynchronise after garbage in front of a
frame (e.g. an ESP32 boot banner, quirk Q19) and take the printable lines between frames
out as `TextLine`s (the rule is in `conduyt_bridge.protocol.text_lines` and
`docs/serial-text.md`). A line is emitted as soon as its LF arrives, without waiting for
the next frame, except that an LF directly followed by `CD` is held back (it may be the
code byte of a frame); runs without LF come out in `max_line` pieces when fully
printable. Sans-IO: feed bytes as they arrive, in any chunking.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cobs import cobs

from conduyt_bridge.protocol.constants import HEADER_SIZE, OVERHEAD, PROTOCOL_VERSION
from conduyt_bridge.protocol.crc8 import crc8_compiled
from conduyt_bridge.protocol.deframer import (
    BaseDeframer,
    FrameErrorReason,
    StreamItem,
    TextLine,
    frame_error_reason,
)
from conduyt_bridge.protocol.errors import ProtocolError
from conduyt_bridge.protocol.packet import PACKET_SETTERS, Packet, decode_prefix
from conduyt_bridge.protocol.text_lines import DEFAULT_MAX_LINE, displayable, line_text, utf8_cut

__all__ = ["CobsDeframer", "cobs_frame"]


def cobs_frame(packet: bytes) -> bytes:
    """COBS-encode one encoded packet and append the `0x00` delimiter (§3.1)."""
    return bytes(cobs.encode(packet)) + b"\x00"


@dataclass(slots=True)
class CobsDeframer(BaseDeframer):
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
        if type(data) is not bytes:
            data = bytes(data)  # frames are bytes, so packets keep them as `wire`
        # One C call splits the whole read into its frames (a firehose board's 4 KiB read
        # holds ~270): the last part is the start of a frame still arriving.
        *frames, rest = data.split(b"\x00")
        if frames:
            # The first one may complete a frame begun in an earlier read.
            self._end_frame(frames[0], out)
            if len(frames) > 1:
                self._decode_whole(frames, out)
        if self._discarding:
            self.stats.garbage_bytes += len(rest)
        else:
            self._buf += rest
            self._pop_text(out)
            if len(self._buf) > self.max_frame:
                self._overflow(out)
        return out

    def _decode_whole(self, frames: list[bytes], out: list[StreamItem]) -> None:
        """`_end_frame` for `frames[1:]`, frames that lay whole within one read.

        The hot path (`docs/architecture.md` §6.1): a frame holding exactly one valid
        packet is decoded inline, with the checks of `decode_prefix` in its order
        (length, magic, version, LEN against `max_payload`, CRC); any other frame (empty,
        oversize, text, garbage, an error) takes `_end_frame`, which decodes it again and
        reports exactly what it reports for a frame read in pieces."""
        limit = self.max_frame
        max_payload = self.max_payload
        decode = cobs.decode
        crc8 = crc8_compiled
        version = PROTOCOL_VERSION
        new, set_type, set_seq, set_payload, set_wire = PACKET_SETTERS
        decoded = 0
        for i in range(1, len(frames)):
            frame = frames[i]
            if 0 < len(frame) <= limit:
                try:
                    raw = decode(frame)
                except cobs.DecodeError:
                    raw = b""
                size = len(raw)
                if size >= OVERHEAD and raw[0] == 0x43 and raw[1] == 0x44 and raw[2] == version:
                    length = raw[5] | (raw[6] << 8)
                    end = HEADER_SIZE + length
                    if length <= max_payload and size > end and crc8(raw[2:end], 0) == raw[end]:
                        # `decoded_packet` inlined: one Python call less per packet.
                        packet = new(Packet)
                        set_type(packet, raw[3])
                        set_seq(packet, raw[4])
                        set_payload(packet, raw[HEADER_SIZE:end])
                        set_wire(packet, raw if size == end + 1 else None)
                        out.append(packet)
                        decoded += 1
                        continue
            self._end_frame(frame, out)
        self.stats.packets += decoded

    def _end_frame(self, chunk: bytes, out: list[StreamItem]) -> None:
        """The bytes up to a delimiter: the end of the buffered frame, or a whole one."""
        if self._discarding:
            self._discarding = False
            self.stats.garbage_bytes += len(chunk)
            return
        if self._buf:
            self._buf += chunk
            frame = bytes(self._buf)
            self._buf.clear()
        else:
            frame = bytes(chunk)
        if not frame:
            self.stats.empty_frames += 1
        elif len(frame) > self.max_frame:
            self._drop(
                out,
                FrameErrorReason.OVERSIZE,
                f"frame of {len(frame)} bytes exceeds {self.max_frame} bytes",
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
            cut = utf8_cut(buf, self.max_line)
            if 0x02 not in buf[cut:reach]:
                clean = line_text(buf[:cut])
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
        clean = line_text(buf[:cut])
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
                cut = utf8_cut(line, self.max_line)
                self._emit_line(out, line[:cut], complete=False)
                del line[:cut]
            else:
                return

    def _emit_line(self, out: list[StreamItem], raw: bytes | bytearray, *, complete: bool) -> None:
        self.stats.text_lines += 1
        out.append(TextLine(displayable(raw), complete))

    def _decode(self, frame: bytes, out: list[StreamItem]) -> None:
        try:
            packet = decode_prefix(cobs.decode(frame), self.max_payload)[0]  # `_decode_at(…, 0)`
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
                self._drop(out, frame_error_reason(error), str(error) or "COBS decode failed", rest)
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
