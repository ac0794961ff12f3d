"""Text printed between frames on a COBS link: which bytes are a line of text.

The serial line is shared with the sketch's own `Serial.println`, so
`conduyt_bridge.protocol.cobs_deframer.CobsDeframer.feed_stream` also yields each
printable line it finds between frames as a `TextLine`. The bytes up to an LF are a line;
ANSI CSI escape sequences (`ESC [` parameters, final byte `@`..`~`, e.g. the colours
ESP-IDF logs in) are removed first. A byte is printable unless it is part of an invalid
UTF-8 sequence or a control character other than tab and CR. The line is text when all
its bytes are printable, or when it ends with LF and at least 90 % of its bytes
(`MIN_PRINTABLE_PERCENT`, LF excluded) are: a line with a few corrupted bytes is still the
sketch's text, published with U+FFFD for each bad byte. A line containing `43 44 02` is
never text: every encoded packet begins with a code byte then `43 44 02` (magic,
version), so text can never hide a frame. The rule is described in
`docs/serial-text.md`; sans-IO like all of `conduyt_bridge.protocol`.
"""

from __future__ import annotations

import re

__all__ = [
    "DEFAULT_MAX_LINE",
    "MIN_PRINTABLE_PERCENT",
    "displayable",
    "line_text",
    "utf8_cut",
]

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


def line_text(raw: bytes | bytearray) -> bytes | None:
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


def utf8_cut(raw: bytes | bytearray, size: int) -> int:
    """The largest cut <= `size` that does not split a UTF-8 character of `raw`."""
    cut = min(size, len(raw))
    while 0 < cut < len(raw) and raw[cut] & 0xC0 == 0x80 and size - cut < 3:
        cut -= 1
    return cut


def displayable(raw: bytes | bytearray) -> str:
    """The text of a line as it is published: invalid bytes and control characters
    (other than tab and CR) as U+FFFD."""
    return _CONTROL.sub("\ufffd", bytes(raw).decode("utf-8", errors="replace"))
