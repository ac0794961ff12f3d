"""DeviceSession against a simulated board over a real byte stream (COBS framing):
sequence numbers, CRC-NAK retransmission, NAKs, timeouts, the handshake routine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conduyt_bridge.app.config import DeviceConfig
from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.device.transports import SerialTransport, SimTransport
from conduyt_bridge.errors import ConduytDisconnectedError, ConduytNAKError, ConduytTimeoutError
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.framing import TextLine
from conduyt_bridge.protocol.hello import HelloResp
from conduyt_bridge.protocol.packet import Packet
from conduyt_bridge.simulator.board import SimulatedBoard


class Observer:
    def __init__(self) -> None:
        self.online = asyncio.Event()
        self.events: list[Packet] = []
        self.changes: list[bool] = []
        self.lines: list[str] = []

    async def on_online(self, session: DeviceSession, hello: HelloResp, changed: bool) -> None:
        self.changes.append(changed)
        self.online.set()

    async def on_offline(self, session: DeviceSession, reason: str) -> None:
        self.online.clear()

    def on_event(self, session: DeviceSession, packet: Packet) -> None:
        self.events.append(packet)

    def on_text(self, session: DeviceSession, line: TextLine) -> None:
        self.lines.append(line.text)


@contextlib.asynccontextmanager
async def session_for(
    profile: str, **cfg: Any
) -> AsyncIterator[tuple[DeviceSession, SimulatedBoard, Observer]]:
    config = DeviceConfig(id="s", port=f"sim://{profile}", keepalive_s=0, **cfg)
    transport = SimTransport(profile)
    observer = Observer()
    session = DeviceSession(config, transport, observer)
    task = asyncio.create_task(session.run())
    try:
        await asyncio.wait_for(observer.online.wait(), 5)
        assert isinstance(transport.board, SimulatedBoard)
        yield session, transport.board, observer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_handshake_routine_and_sequence_numbers() -> None:
    async with session_for("thermostat") as (session, board, _):
        assert [p.type for p in board.received[:3]] == [
            PacketType.HELLO,
            PacketType.RESET,
            PacketType.STREAM_STOP,
        ]
        for _ in range(300):
            reply = await session.request(PacketType.PING)
            assert reply.type == PacketType.PONG
        seqs = [p.seq for p in board.received]
        assert 0 not in seqs  # 0 is what events and CRC-NAKs carry
        assert seqs[:3] == [1, 2, 3]
        assert max(seqs) == 255 and seqs[seqs.index(255) + 1] == 1  # wraps, skipping 0


async def test_crc_nak_with_seq_0_resends_the_pending_command() -> None:
    async with session_for("thermostat") as (session, board, _):
        link = session._link
        assert link is not None
        real_send = link.send
        corrupted = []

        async def corrupt_once(packet: bytes) -> None:
            if not corrupted:
                corrupted.append(packet)
                packet = packet[:-1] + bytes([packet[-1] ^ 0xFF])
            await real_send(packet)

        link.send = corrupt_once  # type: ignore[method-assign]
        reply = await session.request(PacketType.PING)
        assert reply.type == PacketType.PONG
        assert session.stats.crc_naks == 1
        assert session.stats.retransmits == 1
        assert board.received[-1].type == PacketType.PING


async def test_nak_and_timeout_errors() -> None:
    async with session_for("thermostat", command_timeout_ms=200) as (session, board, _):
        with pytest.raises(ConduytNAKError) as nak:
            await session.request(PacketType.DS_READ, b"\x00")
        assert nak.value.code == 0x0D and nak.value.name == "UNKNOWN_DATASTREAM"
        board.faults.drop_replies = 1
        with pytest.raises(ConduytTimeoutError, match="no answer to PING within 200 ms"):
            await session.request(PacketType.PING)
        assert session.stats.naks == 1 and session.stats.timeouts == 1
        # Still usable afterwards: nothing is left pending.
        assert (await session.request(PacketType.PING)).type == PacketType.PONG


async def test_events_reach_the_observer_with_seq_0() -> None:
    async with session_for("thermostat") as (_session, _board, observer):
        await asyncio.sleep(1.2)  # the thermostat pushes every second
        ds_events = [p for p in observer.events if p.type == PacketType.DS_EVENT]
        assert ds_events and all(p.seq == 0 for p in ds_events)


async def test_request_while_offline_is_refused_at_once() -> None:
    config = DeviceConfig(id="x", port="/dev/nonexistent-conduyt")
    session = DeviceSession(config, SimTransport("uno"), Observer())
    with pytest.raises(ConduytDisconnectedError, match="x is offline"):
        await session.request(PacketType.PING)


async def _count_connects(delay_s: float, *, server_down: bool) -> tuple[int, float]:
    """Connect attempts a listening socket sees while a `socket://` session waits out a
    backoff of `delay_s`, and how long the wait took (seconds)."""
    accepted = 0

    async def on_connect(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"socket://127.0.0.1:{port}"
    session = DeviceSession(DeviceConfig(id="n", port=url), SerialTransport(url), Observer())
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with server:
        await session._wait_before_reopen(delay_s, server_down=server_down)
        took = loop.time() - start
        await asyncio.sleep(0.1)  # let a pending accept callback run
    return accepted, took


async def test_no_probe_while_the_server_is_up() -> None:
    """`docs/network-serial.md`: after an open the server took, the wait is a plain sleep;
    a probe would make a raw TCP server open, and maybe reset, the board once more."""
    accepted, took = await _count_connects(2.6, server_down=False)
    assert accepted == 0
    assert took >= 2.6


async def test_a_probe_ends_the_wait_once_a_refusing_server_is_back() -> None:
    accepted, took = await _count_connects(6.0, server_down=True)
    assert accepted == 1
    assert 2.0 <= took < 3.5
