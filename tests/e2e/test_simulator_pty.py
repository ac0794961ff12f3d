"""The simulator served for real: in-process streams, a pty opened with serialx, TCP, CLI.

The host side here is a minimal host written directly on conduyt_bridge/protocol, so these tests
check the simulator, not the bridge's own device code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import serialx

from conduyt_bridge.protocol import (
    CobsDeframer,
    Packet,
    PacketType,
    RawDeframer,
    cobs_frame,
    encode_packet,
    parse_hello,
)
from conduyt_bridge.protocol.constants import RESPONSE_TYPES
from conduyt_bridge.simulator import SimulatedBoard, get_profile, with_push_interval
from conduyt_bridge.simulator import command as sim_command
from conduyt_bridge.simulator.ptyboard import PtyBoard
from conduyt_bridge.simulator.runner import (
    MAX_BEHIND_S,
    MAX_TICKS_PER_PASS,
    BoardRunner,
    open_in_process,
    run_tcp_client,
)

T = PacketType
REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 3.0


class Host:
    """Just enough host: send framed commands, match replies by SEQ, keep events."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, raw: bool = False
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.raw = raw
        self.deframer: CobsDeframer | RawDeframer = RawDeframer() if raw else CobsDeframer()
        self.inbox: list[Packet] = []

    async def send(self, type_: int, seq: int, payload: bytes = b"") -> None:
        packet = encode_packet(type_, seq, payload)
        self.writer.write(packet if self.raw else cobs_frame(packet))
        await self.writer.drain()

    async def _pump(self) -> None:
        data = await self.reader.read(4096)
        if not data:
            raise EOFError("board closed the stream")
        self.inbox += self.deframer.feed(data)

    async def wait_for(self, want: Callable[[Packet], bool]) -> Packet:
        """The first packet (in arrival order) for which `want(packet)` is true."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                for i, packet in enumerate(self.inbox):
                    if want(packet):
                        del self.inbox[i]
                        return packet
                await self._pump()

    async def request(self, type_: int, seq: int, payload: bytes = b"") -> Packet:
        await self.send(type_, seq, payload)
        return await self.wait_for(lambda p: p.type in RESPONSE_TYPES and p.seq == seq)

    async def event(self, type_: int) -> Packet:
        return await self.wait_for(lambda p: p.type == type_)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def fast_thermostat(**kwargs: object) -> SimulatedBoard:
    profile = with_push_interval(get_profile("thermostat"), 0.05)
    return SimulatedBoard(profile, seed=11, **kwargs)  # type: ignore[arg-type]


async def read_until_gone(reader: asyncio.StreamReader) -> str:
    """Read until the stream ends; say how: "eof" or "EIO"."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            try:
                data = await reader.read(4096)
            except OSError as exc:
                assert exc.errno == errno.EIO, exc
                return "EIO"
            if not data:
                return "eof"


# ------------------------------------------------------------------- in-process


async def test_in_process_round_trip() -> None:
    board = fast_thermostat()
    reader, writer, runner = await open_in_process(board)
    host = Host(reader, writer)
    try:
        hello = parse_hello((await host.request(T.HELLO, 1)).payload)
        assert hello == board.hello
        assert (await host.request(T.DS_WRITE, 2, b"\x03\x01")).type == T.ACK
        assert board.written == [("heater", True)]
        event = await host.event(T.DS_EVENT)
        assert event.seq == 0 and len(event.payload) == 5
        assert (await host.request(T.DS_READ, 3, b"\x00")).payload == b"\x0d"
    finally:
        await runner.close()
    assert runner.task is not None and runner.task.done()
    assert await read_until_gone(reader) == "eof"
    await host.close()


async def test_in_process_reply_delay_and_disconnect() -> None:
    board = SimulatedBoard(get_profile("uno"), seed=1)
    reader, writer, runner = await open_in_process(board)
    host = Host(reader, writer)
    board.faults.delay_s = 0.2
    start = time.monotonic()
    assert (await host.request(T.PING, 1)).type == T.PONG
    assert time.monotonic() - start >= 0.2
    board.faults.delay_s = 0.0
    runner.disconnect()
    assert await read_until_gone(reader) == "eof"
    assert runner.task is not None
    await asyncio.wait_for(runner.task, TIMEOUT)
    await runner.close()
    await host.close()


async def test_in_process_firehose_ticks_back_to_back() -> None:
    board = SimulatedBoard(get_profile("firehose"), seed=1)
    reader, writer, runner = await open_in_process(board)
    host = Host(reader, writer)
    assert runner.tick_interval_s == 0
    try:
        values = []
        for _ in range(200):
            event = await host.event(T.DS_EVENT)
            values.append(struct.unpack("<f", event.payload[1:])[0])
        assert values == [float(i) for i in range(200)]
    finally:
        await runner.close()
        await host.close()


async def test_a_paced_firehose_pushes_its_rate_in_millisecond_bursts(tmp_path: Path) -> None:
    """`loop_rate_hz` (`simulate --rate`): exactly that many DS_EVENTs a second, the
    counter unbroken, written in bursts of about a millisecond's worth; on a real pty."""
    board = SimulatedBoard(get_profile("firehose"), seed=1)
    async with PtyBoard(board, loop_rate_hz=20_000) as served:
        reader, writer = await serialx.open_serial_connection(served.path, 115200)
        host = Host(reader, writer)
        try:
            await host.event(T.DS_EVENT)
            host.inbox.clear()
            chunks: list[int] = []
            started = time.monotonic()
            while time.monotonic() - started < 0.5:
                data = await reader.read(65536)
                chunks.append(len(data))
                host.inbox += host.deframer.feed(data)
            elapsed = time.monotonic() - started
            values = [struct.unpack("<f", p.payload[1:])[0] for p in host.inbox]
            assert values == [values[0] + i for i in range(len(values))]
            # 20k/s for ~0.5 s; a loaded machine may skip ticks (MAX_BEHIND_S), never add
            assert 0.5 * 20_000 * elapsed < len(values) < 1.3 * 20_000 * elapsed
            # ~20 frames of 15 bytes per write, not one write per frame
            assert sum(chunks) / len(chunks) > 150, chunks[:20]
        finally:
            await host.close()


async def test_a_paced_board_that_fell_behind_skips_instead_of_bursting() -> None:
    """A stall (the host stopped reading, the machine was busy) is not made up for with
    one huge write: past `MAX_BEHIND_S` the schedule restarts."""
    board = SimulatedBoard(get_profile("firehose"), seed=1)
    host_sock, board_sock = socket.socketpair()
    board_reader, board_writer = await asyncio.open_connection(sock=board_sock)
    reader, writer = await asyncio.open_connection(sock=host_sock)
    runner = BoardRunner(board, board_reader, board_writer, loop_rate_hz=10_000)
    runner.start()
    host = Host(reader, writer)
    try:
        await host.event(T.DS_EVENT)
        board.faults.stalled = True
        await asyncio.sleep(0.3)  # 3,000 ticks behind
        host.inbox.clear()
        while True:  # drain what was sent before the stall
            try:
                async with asyncio.timeout(0.05):
                    await host._pump()
            except TimeoutError:
                break
        host.inbox.clear()
        board.faults.stalled = False
        started = time.monotonic()
        while time.monotonic() - started < 0.1:
            await host._pump()
        # 0.1 s at 10k/s is ~1,000 events; making up for the stall would add 3,000
        assert 200 < len(host.inbox) < 1_000 + 10_000 * MAX_BEHIND_S + 500, len(host.inbox)
    finally:
        await runner.close()
        await host.close()


@pytest.mark.parametrize("rate_hz", [5.0, 19.0])
async def test_a_slow_paced_board_ticks_at_its_rate(rate_hz: float) -> None:
    """Below 1 / `MAX_BEHIND_S` (20 Hz) one tick already lies further apart than the
    catch-up limit: the schedule must still run, not restart at every tick."""
    board = SimulatedBoard(get_profile("firehose"), seed=1)
    host_sock, board_sock = socket.socketpair()
    board_reader, board_writer = await asyncio.open_connection(sock=board_sock)
    reader, writer = await asyncio.open_connection(sock=host_sock)
    paced = BoardRunner(board, board_reader, board_writer, loop_rate_hz=rate_hz)
    paced.start()
    host = Host(reader, writer)
    try:
        started = time.monotonic()
        await host.event(T.DS_EVENT)
        count = 1
        while time.monotonic() - started < 1.0:
            await host.event(T.DS_EVENT)
            count += 1
        assert abs(count - rate_hz * (time.monotonic() - started)) <= 2, count
    finally:
        await paced.close()
        await host.close()


async def test_a_very_fast_paced_board_does_not_block_the_event_loop() -> None:
    """At a million loop iterations a second the simulator cannot keep up; it must still
    run at most `MAX_TICKS_PER_PASS` ticks per pass of the event loop, so a host sharing
    the loop (an in-process test bridge) keeps running. Counted, not timed: a task
    bumps a marker on every pass, and each tick notes the marker it ran under."""
    board = SimulatedBoard(get_profile("firehose"), seed=1)
    passes = [0]
    ticks_per_pass: dict[int, int] = {}
    tick = board.tick

    def counted_tick(now: float) -> bytes:
        ticks_per_pass[passes[0]] = ticks_per_pass.get(passes[0], 0) + 1
        return tick(now)

    board.tick = counted_tick  # type: ignore[method-assign]

    async def mark_passes() -> None:
        while True:
            passes[0] += 1
            await asyncio.sleep(0)

    host_sock, board_sock = socket.socketpair()
    board_reader, board_writer = await asyncio.open_connection(sock=board_sock)
    reader, writer = await asyncio.open_connection(sock=host_sock)
    paced = BoardRunner(board, board_reader, board_writer, loop_rate_hz=1_000_000)
    marker = asyncio.create_task(mark_passes())
    drain = asyncio.create_task(_drain(reader))
    paced.start()
    try:
        await asyncio.sleep(0.5)
        assert sum(ticks_per_pass.values()) > 4 * MAX_TICKS_PER_PASS
        assert max(ticks_per_pass.values()) <= MAX_TICKS_PER_PASS
    finally:
        marker.cancel()
        drain.cancel()
        await paced.close()
        writer.close()


async def _drain(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


async def test_loop_rate_is_checked() -> None:
    board = SimulatedBoard(get_profile("firehose"), seed=1)
    reader = asyncio.StreamReader()
    with pytest.raises(ValueError, match=r"loop_rate_hz must be > 0 and excludes tick_interval_s"):
        BoardRunner(board, reader, None, loop_rate_hz=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"got 100 with tick_interval_s=0.01"):
        BoardRunner(board, reader, None, loop_rate_hz=100, tick_interval_s=0.01)  # type: ignore[arg-type]


# -------------------------------------------------------------------------- pty


async def open_host(path: str | Path) -> Host:
    reader, writer = await serialx.open_serial_connection(str(path), 115200)
    return Host(reader, writer)


async def test_pty_hello_write_events_unplug_replug(tmp_path: Path) -> None:
    board = fast_thermostat()
    link = tmp_path / "usb-Conduyt_Sim-if00"
    async with PtyBoard(board, link=link) as served:
        assert served.plugged and served.link == link
        assert os.readlink(link) == served.path
        host = await open_host(link)
        hello = parse_hello((await host.request(T.HELLO, 1)).payload)
        assert hello.firmware_name == "sim-thermostat"
        ack = await host.request(T.DS_WRITE, 2, b"\x02" + struct.pack("<f", 23.5))
        assert ack.type == T.ACK
        assert board.written == [("setpoint", 23.5)]
        events = [await host.event(T.DS_EVENT) for _ in range(4)]
        assert all(e.seq == 0 for e in events)
        assert {e.payload[0] for e in events} == {0, 1}

        await served.unplug()
        assert not served.plugged and not link.exists()
        with pytest.raises(RuntimeError):
            _ = served.path
        # serialx reports the vanished pty as EIO (OSError) on the next read
        assert await read_until_gone(host.reader) in ("EIO", "eof")
        await host.close()

        new_path = await served.replug()
        assert os.readlink(link) == new_path == served.path
        assert board.boots == 2  # a replug resets the board
        assert board.datastream_values["setpoint"] == 21.0
        host = await open_host(link)
        assert (await host.request(T.HELLO, 3)).payload == hello.encode()
        await host.close()
    assert not link.exists()


async def test_pty_host_can_close_and_reopen() -> None:
    board = fast_thermostat()
    async with PtyBoard(board) as served:
        for seq in (1, 2, 3):
            host = await open_host(served.path)
            assert (await host.request(T.PING, seq)).type == T.PONG
            await host.close()
            await asyncio.sleep(0.1)  # the board keeps pushing into the void meanwhile
        assert [p.seq for p in board.received] == [1, 2, 3]


async def test_pty_garbage_and_crc_faults(tmp_path: Path) -> None:
    board = SimulatedBoard(get_profile("uno"), seed=5)
    async with PtyBoard(board) as served:
        host = await open_host(served.path)
        deframer = host.deframer
        assert isinstance(deframer, CobsDeframer)

        board.faults.garbage = b"setup() done\r\n"
        assert (await host.request(T.PING, 1)).type == T.PONG
        assert deframer.stats.resyncs == 1
        assert deframer.stats.garbage_bytes >= len(b"setup() done\r\n")

        board.faults.corrupt_crc = 1
        await host.send(T.PING, 2)
        assert (await host.request(T.PING, 3)).type == T.PONG
        assert deframer.stats.crc_errors == 1
        assert all(p.seq != 2 for p in host.inbox)

        # and the other direction: a corrupted command is NAKed with seq 0
        bad = bytearray(encode_packet(T.PING, 4))
        bad[-1] ^= 0xFF
        host.writer.write(cobs_frame(bytes(bad)))
        nak = await host.wait_for(lambda p: p.type == T.NAK)
        assert (nak.seq, nak.payload) == (0, b"\x02")
        await host.close()


# -------------------------------------------------------------------------- TCP


async def test_tcp_client_mode() -> None:
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    board = fast_thermostat(framing="raw")
    client = asyncio.create_task(run_tcp_client(board, "127.0.0.1", port))
    try:
        reader, writer = await asyncio.wait_for(accepted.get(), TIMEOUT)
        host = Host(reader, writer, raw=True)
        hello = parse_hello((await host.request(T.HELLO, 1)).payload)
        assert hello == board.hello
        assert (await host.event(T.DS_EVENT)).seq == 0
        assert (await host.request(T.DS_WRITE, 2, b"\x00\x00\x00\x00\x00")).payload == b"\x0e"
        await host.close()
        # the firmware never reconnects (Q1): the client returns when the host hangs up
        await asyncio.wait_for(client, TIMEOUT)
    finally:
        client.cancel()
        server.close()
        await server.wait_closed()


async def test_tcp_client_retry_reconnects_after_a_reset() -> None:
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    board = SimulatedBoard(get_profile("uno"), framing="raw", seed=1)
    client = asyncio.create_task(
        run_tcp_client(board, "127.0.0.1", port, retry=True, retry_delay_s=0.05)
    )
    try:
        for seq in (1, 2):
            reader, writer = await asyncio.wait_for(accepted.get(), TIMEOUT)
            host = Host(reader, writer, raw=True)
            assert (await host.request(T.PING, seq)).type == T.PONG
            await host.close()
        assert board.boots == 2
    finally:
        client.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await client
        server.close()
        await server.wait_closed()


async def test_tcp_client_errors() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(OSError):
        await run_tcp_client(SimulatedBoard(get_profile("uno"), framing="raw"), "127.0.0.1", port)
    with pytest.raises(ValueError, match="raw"):
        await run_tcp_client(SimulatedBoard(get_profile("uno")), "127.0.0.1", port)


# -------------------------------------------------------------------------- CLI


async def test_simulate_command_in_a_subprocess(tmp_path: Path) -> None:
    link = tmp_path / "sim-link"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conduyt_bridge.simulator",
        "thermostat",
        "--pty",
        "--link",
        str(link),
        "--seed",
        "1",
        "--push-interval",
        "0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        path, shown_link = line.decode().split()
        assert shown_link == str(link) and os.readlink(link) == path
        host = await open_host(path)
        hello = parse_hello((await host.request(T.HELLO, 1)).payload)
        assert hello.firmware_name == "sim-thermostat"
        assert (await host.event(T.DS_EVENT)).seq == 0
        await host.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert await proc.stdout.read() == b""  # exactly one line
        assert not link.exists()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sim_command.add_arguments(parser)
    return parser.parse_args(argv)


async def test_simulate_command_rejects_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert await sim_command.run(_parse("toaster")) == 2
    assert "known profiles" in capsys.readouterr().err
    assert await sim_command.run(_parse("uno", "--tcp", "localhost:1", "--link", "/x")) == 2
    with pytest.raises(SystemExit):
        _parse("uno", "--pty", "--tcp", "localhost:1")
    with pytest.raises(SystemExit):
        _parse("uno", "--tcp", "nohost")
    with pytest.raises(SystemExit):
        _parse("uno", "--push-interval", "-1")
    for rate in ("0", "-5", "fast", "2000000"):
        with pytest.raises(SystemExit):
            _parse("firehose", "--rate", rate)
    assert _parse("firehose", "--rate", "66000").rate == 66000.0
