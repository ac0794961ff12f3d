"""The serialx RFC 2217 adapter (conduyt_bridge/device/rfc2217.py) and the serialx internals it
relies on: these fail loudly when a serialx upgrade changes them (docs/network-serial.md).

The server here answers like ser2net 4.3.11 did on the wire: state masks with
notifications (`ff fa 2c 6a 00 ff f0`, `ff fa 2c 6b 00 ff f0`), every other COM-PORT
command with its +100 acknowledgement. tests/e2e/test_ser2net_e2e.py runs the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import socket
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import serialx
import structlog
from serialx.platforms.serial_rfc2217 import RFC2217SerialTransport
from support.broker import Broker
from support.harness import make_settings, running_bridge, wait_until

from conduyt_bridge.device.rfc2217 import SERIALX_VERSION, installed_serialx_version
from conduyt_bridge.device.transports import SerialTransport
from conduyt_bridge.errors import describe_exception
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.packet import encode_packet

IAC, SB, SE, WILL, WONT, DO, DONT = 255, 250, 240, 251, 252, 253, 254
COM_PORT = 44
SET_BAUDRATE, SET_LINESTATE_MASK, SET_MODEMSTATE_MASK = 1, 10, 11
NOTIFY = {SET_LINESTATE_MASK: 106, SET_MODEMSTATE_MASK: 107}


@contextlib.asynccontextmanager
async def ser2net_like_server() -> AsyncIterator[tuple[int, list[tuple[int, bytes]]]]:
    """A loopback RFC 2217 server; yields its port and the COM-PORT commands received."""
    received: list[tuple[int, bytes]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        while chunk := await reader.read(1024):
            buf += chunk
            while True:
                start = buf.find(bytes([IAC]))
                if start < 0 or len(buf) < start + 3:
                    break
                verb = buf[start + 1]
                if verb in (WILL, WONT, DO, DONT):
                    option = buf[start + 2]
                    answer = {WILL: DO, DO: WILL}.get(verb)
                    if answer is not None:
                        writer.write(bytes([IAC, answer, option]))
                    buf = buf[start + 3 :]
                elif verb == SB:
                    end = buf.find(bytes([IAC, SE]), start)
                    if end < 0:
                        break
                    body = buf[start + 2 : end]
                    buf = buf[end + 2 :]
                    if body[0] != COM_PORT:
                        continue
                    code, payload = body[1], body[2:]
                    received.append((code, payload))
                    reply = bytes([NOTIFY[code], 0]) if code in NOTIFY else bytes([code + 100])
                    reply += b"" if code in NOTIFY else payload
                    writer.write(bytes([IAC, SB, COM_PORT]) + reply + bytes([IAC, SE]))
                else:
                    buf = buf[start + 2 :]
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1]), received
    finally:
        server.close()


async def test_adapter_opens_where_stock_serialx_waits_for_mask_acks() -> None:
    async with ser2net_like_server() as (port, received):
        url = f"rfc2217://127.0.0.1:{port}"
        started = time.monotonic()
        link = await SerialTransport(url, 57600).open()
        opened_s = time.monotonic() - started
        await link.close()
        assert opened_s < 1.0
        codes = [code for code, _ in received]
        assert SET_LINESTATE_MASK in codes and SET_MODEMSTATE_MASK in codes
        assert (SET_BAUDRATE, (57600).to_bytes(4, "big")) in received

        # serialx itself still waits for acks ser2net never sends. When this starts
        # passing, an upgrade fixed it: drop conduyt_bridge/device/rfc2217.py and the exact pin.
        with pytest.raises(TimeoutError):
            _, writer = await serialx.open_serial_connection(url, 57600, connect_timeout=0.5)
            writer.close()


async def test_a_link_closed_during_a_read_pause_closes_at_once() -> None:
    """serialx's RFC 2217 close waits for the server's answer to its last SET-BAUDRATE,
    which a transport paused by read coalescing would never read: closing the link ends
    the pause first (`docs/architecture.md` §6.1)."""
    async with ser2net_like_server() as (port, _):
        link = await SerialTransport(f"rfc2217://127.0.0.1:{port}", 57600).open()
        assert link.coalesce_reads(0.25)
        assert link.coalescer is not None
        await link.send(encode_packet(PacketType.PING, 1))  # written: close will flush
        link.coalescer.after_read(15)
        link.coalescer.after_read(15)
        assert link.coalescer.pausing
        started = time.monotonic()
        await link.close()
        assert time.monotonic() - started < 1.0  # was 2 s: the wait_closed timeout
        assert link.writer.transport.is_closing()
        assert not link.coalescer.pausing


def test_serialx_is_the_pinned_version() -> None:
    assert installed_serialx_version() == SERIALX_VERSION
    pyproject = tomllib.loads(
        (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    )
    assert f"serialx=={SERIALX_VERSION}" in pyproject["project"]["dependencies"]


def test_serialx_internals_the_adapter_overrides() -> None:
    send_and_wait = RFC2217SerialTransport._send_and_wait
    assert inspect.iscoroutinefunction(send_and_wait)
    assert list(inspect.signature(send_and_wait).parameters) == ["self", "cmd"]
    assert list(inspect.signature(RFC2217SerialTransport._send_command).parameters) == [
        "self",
        "cmd",
        "responses",
    ]
    negotiate = inspect.getsource(RFC2217SerialTransport._negotiate)
    assert re.search(
        r"for cmd in self\._serial\._engine\.build_state_mask_commands\(\):\s+"
        r"await self\._send_and_wait\(cmd\)",
        negotiate,
    ), "serialx changed how it sends the state masks: re-check conduyt_bridge/device/rfc2217.py"


def test_describe_exception_is_never_empty() -> None:
    assert describe_exception(TimeoutError()) == "timed out"
    assert describe_exception(ValueError()) == "ValueError"
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except OSError as inner:
            raise asyncio.CancelledError() from inner
    except asyncio.CancelledError as exc:
        assert describe_exception(exc) == "CancelledError ([Errno 104] Connection reset by peer)"
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
    assert describe_exception(refused) == (
        "connection refused: [Errno 111] Connect call failed ('127.0.0.1', 1)"
    )


async def test_cannot_open_board_names_the_failure(mqtt_broker: Broker, base_topic: str) -> None:
    """`cannot open board` says what failed: the RFC 2217 wait that ran out (it logged
    `"error": ""` before), or the refused connection."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = int(s.getsockname()[1])
    settings = make_settings(
        mqtt_broker,
        base_topic,
        [
            {"id": "mute", "port": f"rfc2217://127.0.0.1:{port}"},
            {"id": "gone", "port": f"socket://127.0.0.1:{closed_port}"},
        ],
    )

    def failures(events: list[dict[str, Any]], dev: str) -> list[str]:
        return [
            str(e["error"])
            for e in events
            if e["event"] == "cannot open board" and e.get("device") == dev
        ]

    try:
        with structlog.testing.capture_logs() as events:
            async with running_bridge(settings) as bridge:
                await wait_until(lambda: failures(events, "mute"), timeout_s=8)
                boards = bridge.health()["boards"]
    finally:
        server.close()
    assert failures(events, "mute")[0] == (
        "timed out after 5 s waiting for the RFC 2217 negotiation"
    )
    assert failures(events, "gone")[0].startswith("connection refused: [Errno 111]")
    assert boards["mute"]["last_error"] == (
        f"cannot open rfc2217://127.0.0.1:{port}: "
        "timed out after 5 s waiting for the RFC 2217 negotiation"
    )
