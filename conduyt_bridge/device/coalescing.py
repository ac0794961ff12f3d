"""Read coalescing: while a board streams, reading its link pauses after each small read.

A streaming board wakes the bridge for every few frames: a USB-CDC board's bytes reach
the tty in 64- to 128-byte USB transfers, a pty or a socket on every write, so each read
carries a handful of frames and the fixed cost of a read (the wake-up, the `read` and
`send` system calls, one pass of the event loop, one MQTT write) dominates the cost of
a DS_EVENT. Like a USB serial adapter's latency timer or a network card's interrupt
coalescing, `ReadCoalescer` stops reading for `interval_s` after a small read that came
less than `interval_s` after the previous one; the kernel keeps what arrives meanwhile,
and the next read takes it at once. A read of `FULL_READ` bytes or more is never
followed by a pause (a tty hands over at most its 4 KiB line buffer per read, so more
may be waiting), so a pause never limits how fast a board can be read, only how often.
A read on a quiet link (an event after a pause) is never delayed, and neither is a
reply: while a command waits for one, or as soon as one is sent, the link is read at
once, so command round trips and handshakes are as fast as without coalescing. A
streaming board's events wait at most `interval_s` more. Figures:
`docs/architecture.md` §6.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["FULL_READ", "ReadCoalescer", "can_pause_reading"]

FULL_READ = 2048
"""Bytes from which a read is not followed by a pause: the kernel may hold more than one
read hands over, and a read this large already spreads its fixed cost over some 130
DS_EVENTs."""


def can_pause_reading(transport: asyncio.BaseTransport) -> bool:
    """True if `transport` implements asyncio's read flow control (`pause_reading` /
    `resume_reading`): every transport the bridge opens does (serialx's serial,
    `socket://` and RFC 2217 ones, asyncio's sockets); a library user's own may not."""
    method = getattr(type(transport), "pause_reading", None)
    return method is not None and method is not asyncio.ReadTransport.pause_reading


class ReadCoalescer:
    """Pauses reading on `transport` for `interval_s` (seconds, > 0) after each read of
    fewer than `FULL_READ` bytes that followed the previous read (or the last resume)
    within `interval_s`, unless `prompt()` is true (a command waits for its reply);
    `wake()` ends a pause at once.

    Call `after_read(size)` once per read, and only when the stream's own buffer is
    empty (the read returned less than asked): asyncio's `StreamReader` pauses the
    transport itself when its buffer is full, and a resume from here must not undo
    that. `close()` ends a pause (resuming a transport that is still open: serialx's
    RFC 2217 transport waits for the server's answer when it closes, which a paused
    transport would never read) and pauses no more.
    """

    __slots__ = (
        "_closed",
        "_handle",
        "_interval_s",
        "_last",
        "_loop",
        "_prompt",
        "_transport",
        "paused_reads",
    )

    def __init__(
        self,
        transport: asyncio.BaseTransport,
        interval_s: float,
        prompt: Callable[[], bool] = lambda: False,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self._transport = transport
        self._interval_s = interval_s
        self._prompt = prompt
        self._loop = asyncio.get_running_loop()
        self._last = -interval_s
        self._handle: asyncio.TimerHandle | None = None
        self._closed = False
        self.paused_reads = 0
        """Reads after which reading was paused (the link was streaming)."""

    @property
    def interval_s(self) -> float:
        """The pause after a read while the board streams, seconds."""
        return self._interval_s

    @property
    def pausing(self) -> bool:
        """True while reading is paused by this coalescer."""
        return self._handle is not None

    def after_read(self, size: int) -> None:
        """Note one read of `size` bytes; pause reading for `interval_s` if the link is
        streaming and the read was small."""
        now = self._loop.time()
        streaming = now - self._last < self._interval_s
        self._last = now
        if (
            not streaming
            or size >= FULL_READ
            or self._handle is not None
            or self._closed
            or self._prompt()
            or self._transport.is_closing()
        ):
            return
        self._transport.pause_reading()  # type: ignore[attr-defined]
        self._handle = self._loop.call_later(self._interval_s, self._resume)
        self.paused_reads += 1

    def wake(self) -> None:
        """End a pause now (a command was sent: its reply must not wait)."""
        if self._handle is not None:
            self._handle.cancel()
            self._resume()

    def _resume(self) -> None:
        self._handle = None
        # The read right after a resume takes what waited; it counts as streaming only
        # if it comes within the interval from here, i.e. when bytes did wait.
        self._last = self._loop.time()
        if not self._transport.is_closing():
            self._transport.resume_reading()  # type: ignore[attr-defined]

    def close(self) -> None:
        """End a pause now and never pause again (the link is closing, or coalescing is
        being turned off)."""
        self._closed = True
        self.wake()
