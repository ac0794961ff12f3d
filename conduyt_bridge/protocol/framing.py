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

This module is the one to import from; the parts live beside it: `deframer` (what every
deframer yields and counts), `text_lines` (the text rule), `cobs_deframer` and
`raw_deframer`.
"""

from __future__ import annotations

from conduyt_bridge.protocol.cobs_deframer import CobsDeframer, cobs_frame
from conduyt_bridge.protocol.deframer import (
    DEFAULT_MAX_PAYLOAD,
    Deframer,
    DeframerStats,
    FrameError,
    FrameErrorReason,
    StreamItem,
    TextLine,
)
from conduyt_bridge.protocol.raw_deframer import RawDeframer
from conduyt_bridge.protocol.text_lines import DEFAULT_MAX_LINE, MIN_PRINTABLE_PERCENT

__all__ = [
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_PAYLOAD",
    "MIN_PRINTABLE_PERCENT",
    "CobsDeframer",
    "Deframer",
    "DeframerStats",
    "FrameError",
    "FrameErrorReason",
    "RawDeframer",
    "StreamItem",
    "TextLine",
    "cobs_frame",
]
