"""An open byte stream to one board, with its framing (COBS or raw packets)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from conduyt_bridge.device.coalescing import ReadCoalescer, can_pause_reading
from conduyt_bridge.device.link_loss import LinkClosedError
from conduyt_bridge.errors import ConduytDisconnectedError, describe_exception
from conduyt_bridge.protocol.framing import Deframer, FrameError, StreamItem, TextLine
from conduyt_bridge.protocol.packet import Packet

READ_CHUNK = 4096
"""Bytes asked of the stream per read."""


@dataclass(eq=False)
class Link:
    """A connected board: reader/writer streams plus the framing that applies on them.

    `stop_and_wait` is True on raw-packet links (Conduyt TCP), where the firmware stalls on a
    second packet already in its buffer (quirk Q4), so only one command may be in flight.
    """

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    deframer: Deframer
    description: str
    stop_and_wait: bool = False
    on_close: Callable[[], Awaitable[None]] | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    buffered: bool = False
    """True when the last read took a whole `READ_CHUNK`, so more bytes may wait in the
    stream's buffer and the next read may return without suspending; False when it took
    less: the buffer is empty (`StreamReader.read` returns what is buffered, up to n)."""
    reads: int = 0
    """Reads of the stream that returned bytes (`bytes_in` / `reads` is the mean read)."""
    coalescer: ReadCoalescer | None = None
    """Set by `coalesce_reads`; None: every read follows the bytes' arrival at once."""
    _closed: bool = field(default=False, repr=False)
    _drained: int = field(default=0, repr=False)
    """Bytes of the reads since the stream's buffer was last empty: what the transport's
    own read brought, which `READ_CHUNK` slices."""

    def coalesce_reads(self, interval_s: float, prompt: Callable[[], bool] = lambda: False) -> bool:
        """While the board streams, pause reading `interval_s` seconds after each small
        read, except while `prompt()` is true (`conduyt_bridge.device.coalescing`; 0
        turns it off); `send` ends a pause. Call from the event loop. Returns False, and
        reads as before, when the transport cannot pause reading."""
        if self.coalescer is not None:
            self.coalescer.close()
            self.coalescer = None
        if interval_s <= 0 or not can_pause_reading(self.writer.transport):
            return False
        self.coalescer = ReadCoalescer(self.writer.transport, interval_s, prompt)
        return True

    async def receive(self) -> list[Packet | FrameError]:
        """Wait for bytes and return the packets and dropped-frame reports they complete.

        Raises ConduytDisconnectedError on an OS error (a pulled USB cable reads as EIO), its
        subclass LinkClosedError on end of stream.
        """
        return [e for e in await self.receive_stream() if not isinstance(e, TextLine)]

    async def receive_stream(self) -> list[StreamItem]:
        """Like `receive`, plus the text lines printed between frames (`TextLine`)."""
        try:
            data = await self.reader.read(READ_CHUNK)
        except (OSError, ConnectionError) as exc:
            raise ConduytDisconnectedError(
                f"{self.description}: {describe_exception(exc)}"
            ) from exc
        if not data:
            raise LinkClosedError(f"{self.description}: end of stream")
        self.bytes_in += len(data)
        self.reads += 1
        self.buffered = len(data) == READ_CHUNK
        self._drained += len(data)
        if not self.buffered:
            if self.coalescer is not None:
                self.coalescer.after_read(self._drained)
            self._drained = 0
        return self.deframer.feed_stream(data)

    async def send(self, packet: bytes) -> None:
        """Frame and write one encoded packet. Raises ConduytDisconnectedError if the link is
        down."""
        if self._closed:
            raise ConduytDisconnectedError(f"{self.description}: link closed")
        data = self.deframer.frame(packet)
        try:
            self.writer.write(data)
            if self.coalescer is not None:
                self.coalescer.wake()  # the reply must not wait for a pause to end
            await self.writer.drain()
        except (OSError, ConnectionError, RuntimeError) as exc:
            raise ConduytDisconnectedError(
                f"{self.description}: {describe_exception(exc)}"
            ) from exc
        self.bytes_out += len(data)

    @property
    def closed(self) -> bool:
        """True once `close()` ran."""
        return self._closed

    async def close(self) -> None:
        """Close the stream (idempotent; errors on close are ignored: the link is gone anyway)."""
        if self._closed:
            return
        self._closed = True
        if self.coalescer is not None:
            self.coalescer.close()
        with contextlib.suppress(Exception):
            self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.writer.wait_closed()
        if self.on_close is not None:
            with contextlib.suppress(Exception):
                await self.on_close()
