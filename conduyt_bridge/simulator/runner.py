"""Serve a `SimulatedBoard` over an asyncio byte stream: in-process, or as a TCP client.

`BoardRunner` is the one code path for every way of serving (in-process socket pair, pty,
TCP): a read loop feeds the host's bytes to `board.receive` and writes the replies, a tick
loop calls `board.tick` and writes the events. The pty server lives in
`conduyt_bridge.simulator.ptyboard` and uses the same runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

from conduyt_bridge.simulator.board import SimulatedBoard

DEFAULT_TICK_S = 0.01
"""Tick period in seconds: fine enough for 100 Hz streams and 100 ms subscriptions."""

READ_SIZE = 65536
"""Bytes requested per read from the host."""

STALL_POLL_S = 0.01
"""How often a stalled runner looks whether the stall is over, seconds."""

BURST_S = 0.001
"""With `loop_rate_hz`: the ticks of this many seconds go out in one write, seconds."""

MAX_TICKS_PER_PASS = 2048
"""With `loop_rate_hz`: ticks run in one pass of the event loop at most (about 10 ms of
CPU), so a very high rate cannot block a loop the board shares with a host."""

MAX_BEHIND_S = 0.05
"""With `loop_rate_hz`: a runner this far behind its schedule (the host stopped reading
and the write blocked, or the machine is overloaded) drops the missed ticks instead of
sending them in one burst, like a sketch whose loop waited on a full USB buffer."""


class BoardRunner:
    """Pumps one board over a (StreamReader, StreamWriter) pair until the stream closes.

    Args:
        board: the simulated board to serve.
        reader, writer: the device end of the byte stream (framing is the board's).
        tick_interval_s: seconds between ticks; None = 10 ms, or back-to-back (yielding
            to the event loop in between) when the profile pushes a datastream on every
            tick (the `firehose` profile).
        clock: monotonic time source in seconds, passed to the board as `now`.
        loop_rate_hz: instead of `tick_interval_s`: run the sketch's loop this many
            times per second (> 0), sending what the ticks of each `BURST_S` produce in
            one write, as a fast native-USB board's output reaches the host in bulk
            transfers; the `firehose` profile then pushes `loop_rate_hz` events/s.

    Raises ValueError for a `loop_rate_hz` <= 0 or given with `tick_interval_s`.

    Replies are delayed by `board.faults.delay_s` (the read loop waits before writing, so
    the board, like the firmware, handles one command at a time).
    """

    def __init__(
        self,
        board: SimulatedBoard,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        tick_interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        loop_rate_hz: float | None = None,
    ) -> None:
        if loop_rate_hz is not None and (loop_rate_hz <= 0 or tick_interval_s is not None):
            raise ValueError(
                "loop_rate_hz must be > 0 and excludes tick_interval_s, got "
                f"{loop_rate_hz!r} with tick_interval_s={tick_interval_s!r}"
            )
        self._loop_rate_hz = loop_rate_hz
        self.board = board
        self._reader = reader
        self._writer = writer
        self._tick_interval_s = tick_interval_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.bytes_received = 0
        """Bytes read from the host so far (what a port monitor on the board would see)."""

    @property
    def tick_interval_s(self) -> float:
        """The tick period in force, seconds (0 = as fast as the event loop allows)."""
        if self._tick_interval_s is not None:
            return self._tick_interval_s
        return 0.0 if self.board.profile.fastest_push_s == 0 else DEFAULT_TICK_S

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task started by `start()`, if any."""
        return self._task

    def start(self) -> asyncio.Task[None]:
        """Run `run()` in a task owned by this runner (stop it with `close()`)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="conduyt-sim-runner")
        return self._task

    async def run(self) -> None:
        """Serve until the stream closes (host EOF, a connection error, or `disconnect()`).

        Exceptions other than connection errors (bugs) propagate.
        """
        loops = [
            asyncio.create_task(self._read_loop(), name="conduyt-sim-read"),
            asyncio.create_task(self._tick_loop(), name="conduyt-sim-tick"),
        ]
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            self.disconnect()
        for task in done:
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc

    def disconnect(self) -> None:
        """Close the stream (the "disconnect" fault): the host sees EOF, `run()` returns."""
        if not self._writer.is_closing():
            self._writer.close()

    async def close(self) -> None:
        """Disconnect and wait for the runner task to finish."""
        self.disconnect()
        if self._task is not None:
            task = self._task
            if not task.done():
                # Give the loops a moment to notice the closed stream, then insist.
                await asyncio.wait([task], timeout=1.0)
                task.cancel()
            # asyncio.wait, not suppress(CancelledError): a cancellation of the caller
            # must still propagate.
            await asyncio.wait([task])
            if not task.cancelled():
                task.exception()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()

    async def _resumed(self) -> None:
        """Wait while the board is stalled (`Faults.stalled`, like SIGSTOP)."""
        # Faults is a plain flag a test flips at any time; there is no event to await.
        while self.board.faults.stalled:  # noqa: ASYNC110
            await asyncio.sleep(STALL_POLL_S)

    async def _read_loop(self) -> None:
        board = self.board
        while True:
            await self._resumed()
            try:
                data = await self._reader.read(READ_SIZE)
            except (ConnectionError, OSError):
                return
            self.bytes_received += len(data)
            # Bytes that arrive during a stall wait, with the EOF, until it ends.
            await self._resumed()
            if data and board.faults.tcp_backlog:
                data += await self._waiting_bytes()
            if not data:
                return
            out = board.receive(data, self._clock())
            if out:
                if board.faults.delay_s > 0:
                    await asyncio.sleep(board.faults.delay_s)
                if not await self._write(out):
                    return

    async def _waiting_bytes(self) -> bytes:
        """Bytes already received and not yet read, without waiting for more: the
        firmware's `poll()` moves all of them into its buffer at once (Q24)."""
        out = b""
        while True:
            try:
                # A read of buffered bytes completes without suspending, so a zero
                # timeout only stops the read that would wait for new ones.
                async with asyncio.timeout(0):
                    more = await self._reader.read(READ_SIZE)
            except (TimeoutError, ConnectionError, OSError):
                return out
            if not more:
                return out
            self.bytes_received += len(more)
            out += more

    async def _tick_loop(self) -> None:
        if self._loop_rate_hz is not None:
            await self._paced_tick_loop(self._loop_rate_hz)
            return
        while True:
            await self._resumed()
            out = self.board.tick(self._clock())
            if out and not await self._write(out):
                return
            await asyncio.sleep(self.tick_interval_s)

    async def _paced_tick_loop(self, rate_hz: float) -> None:
        board, clock = self.board, self._clock
        start, done = clock(), 0
        while True:
            await self._resumed()
            now = clock()
            due = int((now - start) * rate_hz) - done
            if due > 0 and now - (start + (done + 1) / rate_hz) > MAX_BEHIND_S:
                # the oldest due tick is more than MAX_BEHIND_S late: skip the backlog, run
                # the tick that is due now, and keep the schedule from here
                start, done, due = now - 1 / rate_hz, 0, 1
            due = min(due, MAX_TICKS_PER_PASS)
            # each tick at its own time on the schedule, as the sketch's loop would see it
            out = b"".join(board.tick(start + (done + k + 1) / rate_hz) for k in range(due))
            done += due
            if out and not await self._write(out):
                return
            next_tick = start + (done + 1) / rate_hz
            await asyncio.sleep(max(BURST_S, next_tick - clock()))

    async def _write(self, data: bytes) -> bool:
        """Write and drain; False once the stream is gone."""
        if self._writer.is_closing():
            return False
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError):
            return False
        return True


async def open_in_process(
    board: SimulatedBoard, *, tick_interval_s: float | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, BoardRunner]:
    """Serve `board` on one end of a socket pair; return the host end and the runner.

    The host end is a real byte stream carrying the board's framing (COBS unless the
    board was built with `framing="raw"`). The runner is already started and owns its
    task: `await runner.close()` stops it (the host then reads EOF).
    """
    host_sock, board_sock = socket.socketpair()
    try:
        board_reader, board_writer = await asyncio.open_connection(sock=board_sock)
        host_reader, host_writer = await asyncio.open_connection(sock=host_sock)
    except BaseException:
        host_sock.close()
        board_sock.close()
        raise
    runner = BoardRunner(board, board_reader, board_writer, tick_interval_s=tick_interval_s)
    runner.start()
    return host_reader, host_writer, runner


async def run_tcp_client(
    board: SimulatedBoard,
    host: str,
    port: int,
    *,
    retry: bool = False,
    retry_delay_s: float = 1.0,
    tick_interval_s: float | None = None,
    loop_rate_hz: float | None = None,
) -> None:
    """Connect to a listening host like the firmware's ConduytTCP and serve until it drops.

    The board must use raw framing (§3.2: no COBS). The firmware connects once and never
    reconnects (quirk Q1), so by default this returns when the connection closes and
    raises OSError if the first connect fails. With `retry=True` it keeps (re)connecting
    every `retry_delay_s` seconds and reboots the board before each reconnect, since on
    real hardware only a reset brings a dropped TCP board back; cancel the task to stop.
    A board with `faults.tcp_backlog` reconnects without that reboot, keeping its receive
    buffer like the firmware's TCP transport does (`docs/protocol.md` Q24).

    Raises ValueError if the board uses COBS framing.
    """
    if board.framing != "raw":
        raise ValueError("a TCP board needs framing='raw' (ConduytTCP sends no COBS, §3.2)")
    first = True
    while True:
        if not first and not board.faults.tcp_backlog:
            board.reboot()
        first = False
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            if not retry:
                raise
            await asyncio.sleep(retry_delay_s)
            continue
        runner = BoardRunner(
            board, reader, writer, tick_interval_s=tick_interval_s, loop_rate_hz=loop_rate_hz
        )
        try:
            await runner.run()
        finally:
            await runner.close()
        if not retry:
            return
        await asyncio.sleep(retry_delay_s)
