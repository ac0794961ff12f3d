"""The library API through the transport code a real board uses: the example scripts as
subprocesses against `conduyt-bridge simulate thermostat` on a pty and on a listening TCP
socket, refusals that leave the pty untouched, disconnect reasons, and reconnection after
the board is unplugged and plugged back in."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from conduyt_bridge import (
    ConduytCapabilityError,
    ConduytDevice,
    ConduytDisconnectedError,
    ConnectReason,
    DatastreamEvent,
    DisconnectReason,
)
from conduyt_bridge.modules import ConduytServo
from conduyt_bridge.protocol.constants import PinMode
from conduyt_bridge.simulator import command as sim_command
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import get_profile
from conduyt_bridge.simulator.ptyboard import PtyBoard
from conduyt_bridge.simulator.tcp_server import TcpBoardServer
from conduyt_bridge.transports import SerialTransport

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 20.0

EXPECTED = [
    "callback: connected (request)",
    "connected: sim-thermostat 1.2.0, 8 pins, datastreams: temperature, humidity, setpoint, heater",
    "ping: pong",
    "reset: done",
    "pin 1: output, wrote 1, reads 1",
    "pin 4 pwm refused: pin 4 supports input, analog, input_pullup; not pwm (pwm pins: 1, 2)",
    re.compile(r"pin A0 is pin 4: \d+ ADC counts"),
    "servo refused: no module with id 0 on this board (modules: none)",
    "setpoint: wrote 22.5 celsius",
    re.compile(r"event: temperature (\d+(\.\d+)?) celsius"),
    re.compile(r"temperature value: (\d+(\.\d+)?) celsius"),
    "callback: disconnected (request)",
    "disconnected",
]


@contextlib.asynccontextmanager
async def simulate_thermostat(*args: str) -> AsyncIterator[str]:
    """`conduyt-bridge simulate thermostat ARGS…` in its own process; yields the line it
    prints (the pty path, or the bound HOST:PORT)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conduyt_bridge.app.cli",
        "simulate",
        "thermostat",
        "--seed",
        "1",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT_S)
        assert line, (await proc.communicate())[1].decode()
        yield line.decode().strip()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT_S) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def run_example(script: str, port: str) -> tuple[int, list[str], str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / script),
        port,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines(), err.decode()


@pytest.mark.parametrize(
    ("script", "where"),
    [
        ("library_async.py", "--pty"),
        ("library_sync.py", "--pty"),
        ("library_async.py", "--tcp-listen"),
        ("library_sync.py", "--tcp-listen"),
    ],
)
async def test_example_scripts_against_a_simulated_board(script: str, where: str) -> None:
    args = ["--pty"] if where == "--pty" else ["--tcp-listen", "127.0.0.1:0"]
    async with simulate_thermostat(*args) as line:
        port = line if where == "--pty" else f"tcp://{line}"
        if where == "--pty":
            assert line.startswith("/dev/")
        code, lines, err = await run_example(script, port)
    assert code == 0, err
    assert err == ""
    assert len(lines) == len(EXPECTED), lines
    for got, want in zip(lines, EXPECTED, strict=True):
        if isinstance(want, str):
            assert got == want
        else:
            assert want.fullmatch(got), (got, want.pattern)
    pushed = re.fullmatch(r"event: temperature (\S+) celsius", lines[9])
    kept = re.fullmatch(r"temperature value: (\S+) celsius", lines[10])
    assert pushed is not None and kept is not None and pushed.group(1) == kept.group(1)


async def test_example_reports_an_unreachable_port() -> None:
    code, lines, err = await run_example("library_async.py", "tcp://127.0.0.1:1")
    assert code == 1 and lines == []
    assert err.splitlines()[-1].startswith("cannot connect to tcp://127.0.0.1:1: cannot open")


@contextlib.asynccontextmanager
async def board_on_pty(**kwargs: Any) -> AsyncIterator[tuple[PtyBoard, SimulatedBoard]]:
    board = SimulatedBoard(get_profile("thermostat"), seed=1)
    async with PtyBoard(board, **kwargs) as served:
        yield served, board


async def test_refusals_write_nothing_to_the_port() -> None:
    async with board_on_pty() as (served, board):
        device = ConduytDevice(SerialTransport(served.path, baudrate=115200), keepalive_s=0)
        async with device:
            await device.ping()
            before = served.bytes_received
            assert before > 0
            with pytest.raises(ConduytCapabilityError) as info:
                await device.pin(4).mode("pwm")
            assert str(info.value) == (
                "pin 4 supports input, analog, input_pullup; not pwm (pwm pins: 1, 2)"
            )
            with pytest.raises(ConduytCapabilityError, match="is read-only"):
                await device.datastream("temperature").write(1.0)
            with pytest.raises(ConduytCapabilityError, match="no module with id 0"):
                await ConduytServo(device, module_id=0).attach(1)
            await asyncio.sleep(0.2)  # anything sent would have reached the board by now
            assert served.bytes_received == before
            received = len(board.received)
            await device.pin(1).mode("output")  # the same path does write when allowed
            assert served.bytes_received > before
            assert board.received[received].payload == bytes((1, PinMode.OUTPUT))


async def test_the_other_end_hanging_up_is_a_shutdown() -> None:
    reasons: list[object] = []
    board = SimulatedBoard(get_profile("thermostat"), framing="raw", seed=1)
    async with TcpBoardServer(board, "127.0.0.1", 0) as server:
        host, port = server.address
        device = ConduytDevice(
            f"tcp://{host}:{port}", on_connected=reasons.append, on_disconnected=reasons.append
        )
        await device.connect()
        assert device.transport.description == f"tcp://{host}:{port}"
        await device.datastream("setpoint").write(19.5)
        assert board.written == [("setpoint", 19.5)]
        await server.close()
        async with asyncio.timeout(TIMEOUT_S):
            while len(reasons) < 2:  # noqa: ASYNC110 - a callback list, nothing to await
                await asyncio.sleep(0.01)
        assert reasons == [ConnectReason.REQUEST, DisconnectReason.SHUTDOWN]
        assert not device.connected
        await device.disconnect()


async def test_a_tcp_board_serves_one_host_at_a_time() -> None:
    first: list[object] = []
    board = SimulatedBoard(get_profile("uno"), framing="raw", seed=1)
    async with TcpBoardServer(board, "127.0.0.1", 0) as server:
        url = "tcp://{}:{}".format(*server.address)
        async with (
            ConduytDevice(url, on_disconnected=first.append) as one,
            ConduytDevice(url) as two,
        ):
            async with asyncio.timeout(TIMEOUT_S):
                while not first:  # noqa: ASYNC110 - a callback list
                    await asyncio.sleep(0.01)
            assert first == [DisconnectReason.SHUTDOWN] and not one.connected
            await two.ping()
            assert server.connections == 2 and server.bytes_received > 0


async def test_simulate_tcp_listen_rejects_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    sim_command.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["thermostat", "--tcp-listen", "nohost"])
    with pytest.raises(SystemExit):
        parser.parse_args(["thermostat", "--tcp-listen", "127.0.0.1:0", "--tcp", "h:1"])
    args = parser.parse_args(["thermostat", "--tcp-listen", "127.0.0.1:0", "--link", "/x"])
    assert await sim_command.run(args) == 2
    assert "--link needs --pty" in capsys.readouterr().err


async def test_auto_reconnect_after_unplug_and_replug(tmp_path: Path) -> None:
    reasons: list[object] = []
    link = tmp_path / "ttyTHERMOSTAT"
    async with board_on_pty(link=link) as (served, board):
        device = ConduytDevice(
            SerialTransport(str(link)),
            keepalive_s=0,
            auto_reconnect=True,
            reconnect_min_s=0.1,
            reconnect_max_s=0.4,
            on_connected=reasons.append,
            on_disconnected=reasons.append,
        )
        async with device:
            await device.pin(1).mode("output")
            await device.pin(1).write(1)
            events = device.events()
            await served.unplug()
            async with asyncio.timeout(TIMEOUT_S):
                while len(reasons) < 2:  # noqa: ASYNC110 - a callback list
                    await asyncio.sleep(0.01)
            assert reasons[1] is DisconnectReason.ERROR  # the pty read fails with EIO
            with pytest.raises(ConduytDisconnectedError):
                await device.ping()
            assert device.capabilities is not None  # the last known board, kept
            await served.replug()  # a new pty (the link follows it); the board reboots
            assert link.resolve() == Path(served.path)
            async with asyncio.timeout(TIMEOUT_S):
                while len(reasons) < 3:  # noqa: ASYNC110 - a callback list
                    await asyncio.sleep(0.01)
            assert reasons[2] is ConnectReason.AUTO_RECONNECT and device.connected
            assert board.boots == 2
            assert board.pin_modes[1] is PinMode.OUTPUT  # set again after the reboot
            await device.ping()
            event = await events.get(timeout_s=3)  # the iterator survived the outage
            assert isinstance(event, DatastreamEvent)
        assert reasons[3:] == [DisconnectReason.REQUEST]


async def test_importing_the_protocol_layer_loads_no_device_code() -> None:
    code = (
        "import sys, conduyt_bridge.protocol, conduyt_bridge;"
        "print(sorted(m for m in sys.modules if m.startswith('conduyt_bridge.device')"
        " or m in ('structlog', 'serialx')));"
        "conduyt_bridge.ConduytDevice;"
        "print('conduyt_bridge.device.conduyt_device' in sys.modules)"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, cwd=ROOT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    assert out.decode().splitlines() == ["[]", "True"]
