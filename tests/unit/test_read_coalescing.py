"""Read coalescing (`conduyt_bridge.device.coalescing`, `docs/architecture.md` §6.1) on
real asyncio streams over a socket pair: when it pauses, when it never does, and what a
link reads with it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator

import pytest
from serialx.platforms.serial_rfc2217 import RFC2217SerialTransport
from support.harness import wait_until

from conduyt_bridge.device.coalescing import FULL_READ, ReadCoalescer, can_pause_reading
from conduyt_bridge.device.conduyt_device import ConduytDevice
from conduyt_bridge.device.link import Link
from conduyt_bridge.device.rfc2217 import Ser2netRfc2217Transport
from conduyt_bridge.device.session_config import SessionOptions
from conduyt_bridge.protocol.cobs_deframer import CobsDeframer, cobs_frame
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.packet import Packet, encode_packet

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def stream_pair() -> AsyncIterator[tuple[Streams, Streams]]:
    """(reader, writer) of the host end and of the board end of a socket pair."""
    host_sock, board_sock = socket.socketpair()
    host = await asyncio.open_connection(sock=host_sock)
    board = await asyncio.open_connection(sock=board_sock)
    try:
        yield host, board
    finally:
        for _, writer in (host, board):
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def reading(writer: asyncio.StreamWriter) -> bool:
    transport = writer.transport
    assert isinstance(transport, asyncio.ReadTransport)
    return transport.is_reading()


async def test_a_read_on_a_quiet_link_never_pauses() -> None:
    async with stream_pair() as ((_, writer), _board):
        coalescer = ReadCoalescer(writer.transport, 0.05)
        coalescer.after_read(15)
        await asyncio.sleep(0.06)
        coalescer.after_read(15)  # 60 ms after the previous one: still a quiet link
        assert (coalescer.pausing, coalescer.paused_reads, reading(writer)) == (False, 0, True)


async def test_a_second_read_within_the_interval_pauses_for_the_interval() -> None:
    async with stream_pair() as ((_, writer), _board):
        coalescer = ReadCoalescer(writer.transport, 0.5)
        coalescer.after_read(15)
        coalescer.after_read(15)
        assert (coalescer.pausing, coalescer.paused_reads, reading(writer)) == (True, 1, False)
        await asyncio.sleep(0.05)
        assert reading(writer) is False
        await wait_until(lambda: reading(writer), 2.0)
        assert coalescer.pausing is False
        # the read right after the resume takes what waited: the board still streams
        coalescer.after_read(15)
        assert (coalescer.pausing, coalescer.paused_reads) == (True, 2)
        coalescer.close()
        assert (coalescer.pausing, reading(writer)) == (False, True)


async def test_a_large_read_is_never_followed_by_a_pause() -> None:
    """A tty hands over at most its 4 KiB line buffer per read: after a large read more
    may wait, so the next read must come at once whatever the interval."""
    async with stream_pair() as ((_, writer), _board):
        coalescer = ReadCoalescer(writer.transport, 0.5)
        for _ in range(3):
            coalescer.after_read(FULL_READ)
            assert (coalescer.pausing, reading(writer)) == (False, True)
        coalescer.after_read(FULL_READ - 1)
        assert (coalescer.pausing, reading(writer)) == (True, False)


async def test_close_ends_a_pause_and_pauses_no_more() -> None:
    async with stream_pair() as ((_, writer), _board):
        coalescer = ReadCoalescer(writer.transport, 0.5)
        coalescer.after_read(15)
        coalescer.after_read(15)
        assert reading(writer) is False
        coalescer.close()
        assert (coalescer.pausing, reading(writer)) == (False, True)
        coalescer.after_read(15)
        coalescer.after_read(15)
        assert (coalescer.pausing, reading(writer)) == (False, True)


async def test_no_pause_while_a_command_waits_and_a_send_ends_a_pause() -> None:
    waiting = [True]
    async with stream_pair() as ((_, writer), _board):
        coalescer = ReadCoalescer(writer.transport, 0.05, prompt=lambda: waiting[0])
        coalescer.after_read(15)
        coalescer.after_read(15)
        assert (coalescer.pausing, reading(writer)) == (False, True)
        waiting[0] = False
        coalescer.after_read(15)
        assert (coalescer.pausing, reading(writer)) == (True, False)
        coalescer.wake()
        assert (coalescer.pausing, reading(writer)) == (False, True)
        coalescer.wake()  # nothing to end: no effect
        assert reading(writer) is True


async def test_a_transport_closed_during_a_pause_is_left_alone() -> None:
    async with stream_pair() as ((_, writer), _board):
        coalescer = ReadCoalescer(writer.transport, 0.02)
        coalescer.after_read(15)
        coalescer.after_read(15)
        writer.close()
        await asyncio.sleep(0.04)  # the resume runs on a closed transport: no error
        assert coalescer.pausing is False
        coalescer.after_read(15)
        coalescer.after_read(15)
        assert coalescer.pausing is False  # a closing transport is not paused again


async def test_the_interval_must_be_positive() -> None:
    async with stream_pair() as ((_, writer), _board):
        with pytest.raises(ValueError, match=r"interval_s must be > 0, got 0"):
            ReadCoalescer(writer.transport, 0)


async def test_only_transports_with_read_flow_control_are_coalesced() -> None:
    async with stream_pair() as ((_, writer), _board):
        assert can_pause_reading(writer.transport) is True
    # every serialx transport the bridge opens has it, RFC 2217 included ...
    assert can_pause_reading(object.__new__(Ser2netRfc2217Transport)) is True
    assert RFC2217SerialTransport.pause_reading is not asyncio.ReadTransport.pause_reading

    # ... and a transport without it (a user's own) is read as before
    class NoFlowControl(asyncio.Transport):
        pass

    assert can_pause_reading(NoFlowControl()) is False


def ds_event(value: float) -> bytes:
    return cobs_frame(encode_packet(PacketType.DS_EVENT, 0, b"\x00" + struct.pack("<f", value)))


async def write_slowly(writer: asyncio.StreamWriter, count: int) -> None:
    for i in range(count):
        writer.write(ds_event(float(i)))
        await writer.drain()
        await asyncio.sleep(0.002)


async def read_all(link: Link, count: int) -> list[float]:
    values: list[float] = []
    async with asyncio.timeout(5):
        while len(values) < count:
            for item in await link.receive_stream():
                assert isinstance(item, Packet)
                values.append(struct.unpack("<f", item.payload[1:])[0])
    return values


async def test_a_link_reads_a_stream_in_few_reads_and_in_order() -> None:
    async with stream_pair() as ((reader, writer), (_, board_writer)):
        link = Link(reader, writer, CobsDeframer(), "pair")
        assert link.coalesce_reads(0.5) is True
        writer_task = asyncio.create_task(write_slowly(board_writer, 20))
        values = await read_all(link, 20)
        await writer_task
        assert values == [float(i) for i in range(20)]
        # 20 frames 2 ms apart: the first read, one within 500 ms, then a pause that
        # collects the remaining ones (without coalescing: one read per frame)
        assert link.reads <= 3
        await link.close()
        assert link.coalescer is not None and link.coalescer.pausing is False


async def test_a_large_transport_read_sliced_by_the_link_is_not_followed_by_a_pause() -> None:
    """The link takes 4 KiB slices of what the transport read (a socket reads up to
    256 KiB at once): the size that counts is the whole, not its last slice."""
    async with stream_pair() as ((reader, writer), (_, board_writer)):
        link = Link(reader, writer, CobsDeframer(), "pair")
        link.coalesce_reads(0.5)
        board_writer.write(ds_event(0.0))
        await board_writer.drain()
        await link.receive_stream()
        burst = b""
        while len(burst) < 8192 + 500:  # ~8.7 KB at once: two whole slices and a small one
            burst += ds_event(float(len(burst)))
        board_writer.write(burst)
        await board_writer.drain()
        await asyncio.sleep(0.05)  # all of it in the stream's buffer
        sizes: list[int] = []
        while sum(sizes) < len(burst):
            await link.receive_stream()
            sizes.append(link.bytes_in - 15 - sum(sizes))
        assert sizes[-1] < FULL_READ <= len(burst)  # a small last slice ...
        assert link.coalescer is not None and not link.coalescer.pausing  # ... no pause


async def test_a_send_reads_the_reply_at_once_during_a_pause() -> None:
    async with stream_pair() as ((reader, writer), (board_reader, board_writer)):
        link = Link(reader, writer, CobsDeframer(), "pair")
        link.coalesce_reads(1.0)
        for value in (1.0, 2.0):
            board_writer.write(ds_event(value))
            await board_writer.drain()
            await link.receive_stream()
        assert link.coalescer is not None and link.coalescer.pausing
        loop = asyncio.get_running_loop()
        started = loop.time()
        await link.send(encode_packet(PacketType.PING, 7))
        assert await board_reader.read(64)  # the board got the PING and answers
        board_writer.write(cobs_frame(encode_packet(PacketType.PONG, 7)))
        items = await link.receive_stream()
        assert [(p.type, p.seq) for p in items if isinstance(p, Packet)] == [(PacketType.PONG, 7)]
        assert loop.time() - started < 0.5  # not held until the 1 s pause ended


async def test_zero_turns_coalescing_off_even_during_a_pause() -> None:
    async with stream_pair() as ((reader, writer), _board):
        link = Link(reader, writer, CobsDeframer(), "pair")
        assert link.coalesce_reads(0.5) is True
        assert link.coalescer is not None
        link.coalescer.after_read(15)
        link.coalescer.after_read(15)
        assert reading(writer) is False
        assert link.coalesce_reads(0) is False
        assert link.coalescer is None
        assert reading(writer) is True  # the pause ended with it, not left for good


@pytest.mark.parametrize("value", [-1.0, 250.5])
def test_out_of_range_settings_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match=rf"read_coalesce_ms must be 0-250 \(ms\), got {value}"):
        SessionOptions(read_coalesce_ms=value)
    with pytest.raises(ValueError, match=r"read_coalesce_ms must be 0-250"):
        ConduytDevice("sim://thermostat", read_coalesce_ms=value)


def test_the_library_default_is_one_millisecond() -> None:
    assert SessionOptions().read_coalesce_ms == 1.0
