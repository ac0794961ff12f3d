"""An asyncio transport on a pty master that survives the host closing and reopening the slave.

On Linux, reading the master while no process has the slave open fails with EIO (and the
fd polls readable, so a plain `add_reader` would spin), and bytes written meanwhile are
queued for whoever opens the slave next. A board behind a serial port behaves otherwise:
while nobody listens, its output is simply lost. So this transport treats EIO as "host
gone": it stops watching the fd, discards what the board writes, and probes every
`probe_interval_s` until a read no longer fails, then resumes. Only `close()` ends it.
"""

from __future__ import annotations

import asyncio
import errno
import os
from typing import Any

HIGH_WATER = 64 * 1024
"""Buffered outgoing bytes above which the protocol is paused (drain() waits)."""
LOW_WATER = 16 * 1024
"""Buffered outgoing bytes below which it resumes."""
READ_SIZE = 65536
"""Bytes read from the master per wake-up."""


class PtyMasterTransport(asyncio.Transport):
    """Read/write transport on a non-blocking pty master fd, owned (closed) by it."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        protocol: asyncio.Protocol,
        *,
        probe_interval_s: float = 0.02,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(extra)
        os.set_blocking(fd, False)
        self._loop = loop
        self._fd = fd
        self._protocol = protocol
        self._probe_interval_s = probe_interval_s
        self._buffer = bytearray()
        self._closing = False
        self._reading = False
        self._read_paused = False
        self._write_paused = False
        self._host_present = False
        self._probe_handle: asyncio.TimerHandle | None = None
        protocol.connection_made(self)
        self._probe()

    @property
    def host_present(self) -> bool:
        """True while some process has the slave open (as far as the last read could tell)."""
        return self._host_present

    # ------------------------------------------------------------ reading side

    def _watch(self) -> None:
        if not self._reading and not self._read_paused and not self._closing:
            self._loop.add_reader(self._fd, self._read_ready)
            self._reading = True

    def _unwatch(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _read(self) -> bytes | None:
        """One read: data (maybe b""), or None when the host is gone."""
        try:
            data = os.read(self._fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return None
            raise
        # EOF on a master (seen on some BSDs) means the same as EIO on Linux.
        return data if data else None

    def _read_ready(self) -> None:
        try:
            data = self._read()
        except OSError as exc:
            self._fatal(exc)
            return
        if data is None:
            self._host_gone()
        elif data:
            self._protocol.data_received(data)

    def _host_gone(self) -> None:
        self._host_present = False
        self._unwatch()
        self._discard_output()
        self._schedule_probe()

    def _schedule_probe(self) -> None:
        if not self._closing and self._probe_handle is None:
            self._probe_handle = self._loop.call_later(self._probe_interval_s, self._probe)

    def _probe(self) -> None:
        self._probe_handle = None
        if self._closing:
            return
        try:
            data = self._read()
        except OSError as exc:
            self._fatal(exc)
            return
        if data is None:
            self._host_present = False
            self._schedule_probe()
            return
        self._host_present = True
        self._watch()
        if data:
            self._protocol.data_received(data)

    def pause_reading(self) -> None:
        self._read_paused = True
        self._unwatch()

    def resume_reading(self) -> None:
        self._read_paused = False
        if self._host_present:
            self._watch()

    def is_reading(self) -> bool:
        return self._reading

    # ------------------------------------------------------------ writing side

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        if not self._host_present:
            return  # nobody has the port open: the bytes go nowhere, as on a real UART
        if not self._buffer:
            try:
                n = os.write(self._fd, data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as exc:
                if exc.errno == errno.EIO:
                    self._host_gone()
                    return
                self._fatal(exc)
                return
            data = memoryview(data)[n:]
            if not data:
                return
            self._loop.add_writer(self._fd, self._write_ready)
        self._buffer += data
        self._maybe_pause_protocol()

    def _write_ready(self) -> None:
        try:
            n = os.write(self._fd, self._buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                self._host_gone()
                return
            self._fatal(exc)
            return
        del self._buffer[:n]
        if not self._buffer:
            self._loop.remove_writer(self._fd)
        self._maybe_resume_protocol()

    def _discard_output(self) -> None:
        if self._buffer:
            self._loop.remove_writer(self._fd)
            self._buffer.clear()
        self._maybe_resume_protocol()

    def _maybe_pause_protocol(self) -> None:
        if not self._write_paused and len(self._buffer) > HIGH_WATER:
            self._write_paused = True
            self._protocol.pause_writing()

    def _maybe_resume_protocol(self) -> None:
        if self._write_paused and len(self._buffer) <= LOW_WATER:
            self._write_paused = False
            self._protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (LOW_WATER, HIGH_WATER)

    def can_write_eof(self) -> bool:
        return False

    # ------------------------------------------------------------ closing

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Close the master: the host's next read of the slave fails (EIO) or sees EOF."""
        self._shutdown(None)

    def abort(self) -> None:
        self._shutdown(None)

    def _fatal(self, exc: OSError) -> None:
        self._shutdown(exc)

    def _shutdown(self, exc: Exception | None) -> None:
        if self._closing:
            return
        self._closing = True
        self._unwatch()
        if self._buffer:
            self._loop.remove_writer(self._fd)
            self._buffer.clear()
        if self._probe_handle is not None:
            self._probe_handle.cancel()
            self._probe_handle = None
        os.close(self._fd)
        self._loop.call_soon(self._protocol.connection_lost, exc)


def open_pty_master_stream(
    fd: int, *, probe_interval_s: float = 0.02
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, PtyMasterTransport]:
    """Wrap pty master `fd` in a (reader, writer) pair; the transport owns and closes `fd`."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = PtyMasterTransport(loop, fd, protocol, probe_interval_s=probe_interval_s)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer, transport
