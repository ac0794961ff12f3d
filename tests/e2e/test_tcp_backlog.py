"""A WiFi board's stale TCP receive backlog (`docs/protocol.md` Q24), and `simulate --tcp`.

The firmware's TCP transport decodes one packet per poll, only when bytes arrive, and keeps
its buffer across reconnects; after a stall past the keepalive window every request gets
the answer to an older one. The simulator has it as `Faults.tcp_backlog`; the bridge's
handshake drains it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys

from support.broker import Broker
from support.harness import make_settings, running_bridge
from support.recorder import Recorder

from conduyt_bridge.device.session import stale_answers
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.framing import RawDeframer
from conduyt_bridge.protocol.hello import parse_hello
from conduyt_bridge.protocol.packet import Packet, encode_packet
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import get_profile
from conduyt_bridge.simulator.runner import run_tcp_client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def packets(data: bytes) -> list[Packet]:
    return [p for p in RawDeframer().feed_events(data) if isinstance(p, Packet)]


def test_backlog_board_answers_one_packet_per_arrival() -> None:
    board = SimulatedBoard(get_profile("thermostat"), framing="raw", seed=1)
    board.faults.tcp_backlog = True
    # Two PINGs in one arrival: only the first is decoded.
    out = board.receive(encode_packet(PacketType.PING, 15) + encode_packet(PacketType.PING, 16), 0)
    assert [(p.type, p.seq) for p in packets(out)] == [(PacketType.PONG, 15)]
    # HELLO 17 gets the answer to PING 16.
    out = board.receive(encode_packet(PacketType.HELLO, 17), 0.1)
    assert [(p.type, p.seq) for p in packets(out)] == [(PacketType.PONG, 16)]
    # A lone byte completes nothing but is a poll that decodes the queued HELLO.
    ping = encode_packet(PacketType.PING, 18)
    out = board.receive(ping[:1], 0.2)
    assert [(p.type, p.seq) for p in packets(out)] == [(PacketType.HELLO_RESP, 17)]
    out = b"".join(board.receive(ping[i : i + 1], 0.3) for i in range(1, len(ping)))
    assert [(p.type, p.seq) for p in packets(out)] == [(PacketType.PONG, 18)]


def test_stale_answers_names_older_sequence_numbers_only() -> None:
    assert (
        stale_answers(17, [(PacketType.PONG, 15), (PacketType.HELLO_RESP, 16)])
        == "request seq 17 answered by PONG seq 15, HELLO_RESP seq 16"
    )
    # Wrap-around: 255 is older than 1.
    assert stale_answers(1, [(PacketType.PONG, 255)]) == "request seq 1 answered by PONG seq 255"
    # Newer sequence numbers (18, and 100 = 172 ahead in the 1..255 cycle) are no backlog.
    assert stale_answers(17, [(PacketType.PONG, 18), (PacketType.PONG, 100)]) == ""
    assert stale_answers(17, []) == ""


async def test_stalled_backlog_board_comes_back_online_by_itself(
    mqtt_broker: Broker, base_topic: str
) -> None:
    port = free_port()
    settings = make_settings(
        mqtt_broker, base_topic, [{"id": "wifi", "port": f"listen://127.0.0.1:{port}"}]
    )
    board = SimulatedBoard(get_profile("thermostat"), framing="raw", seed=1)
    board.faults.tcp_backlog = True
    p = f"{base_topic}/wifi"
    async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings):
        client = asyncio.create_task(
            run_tcp_client(board, "127.0.0.1", port, retry=True, retry_delay_s=0.2)
        )
        try:
            await rec.wait_for(f"{p}/status", payload=b"online", timeout=5)
            # SIGSTOP past the keepalive window (0.5 s x 2 misses): the bridge drops the
            # link, the unanswered PINGs wait in the board's socket.
            board.faults.stalled = True
            await rec.wait_for_new(f"{p}/status", payload=b"offline", timeout=5)
            await asyncio.sleep(1.0)
            boots = board.boots
            board.faults.stalled = False  # SIGCONT
            await rec.wait_for_new(f"{p}/status", payload=b"online", timeout=15)
            assert board.boots == boots  # recovered without a reboot of the board
            await rec.wait_for_new(f"{p}/ds/temperature_celsius", timeout=4)
        finally:
            client.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await client


async def simulate_thermostat(*args: str) -> asyncio.subprocess.Process:
    """`conduyt-bridge simulate thermostat ARGS…` as its own process, output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conduyt_bridge.app.cli",
        "simulate",
        "thermostat",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_simulate_tcp_with_mcu_id() -> None:
    """`conduyt-bridge simulate PROFILE --tcp HOST:PORT --mcu-id HEX` answers HELLO with it."""
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await accepted.put((r, w))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proc = await simulate_thermostat(
        "--tcp", f"127.0.0.1:{port}", "--mcu-id", "a1b2c3d4e5f60000", "--tcp-backlog"
    )
    try:
        async with asyncio.timeout(10):
            reader, writer = await accepted.get()
            writer.write(encode_packet(PacketType.HELLO, 1))
            deframer = RawDeframer()
            reply: list[Packet] = []
            while not reply:
                reply = [
                    p
                    for p in deframer.feed_events(await reader.read(4096))
                    if isinstance(p, Packet) and p.type == PacketType.HELLO_RESP
                ]
        assert parse_hello(reply[0].payload).mcu_id_hex == "a1b2c3d4e5f60000"
        writer.close()
    finally:
        proc.terminate()
        await proc.wait()
        server.close()
        await server.wait_closed()


async def test_simulate_rejects_bad_mcu_id_and_backlog_without_tcp() -> None:
    for args, message in (
        (["--tcp", "127.0.0.1:1", "--mcu-id", "zz"], "expected hex digits, got 'zz'"),
        (["--tcp", "127.0.0.1:1", "--mcu-id", "00" * 9], "mcu_id is 1 to 8 bytes, got 9"),
        (["--tcp-backlog"], "--tcp-backlog needs --tcp"),
    ):
        proc = await simulate_thermostat(*args)
        _, err = await proc.communicate()
        assert proc.returncode == 2, err
        assert message in err.decode()
