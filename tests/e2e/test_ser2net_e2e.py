"""Boards behind a real ser2net (Debian's `ser2net` 4.x), end to end through a real broker.

Each test starts its own ser2net (a YAML config in a temp dir, a free loopback port,
`ser2net -n -u -P PIDFILE -c CONFIG`) in front of a simulated board on a pty
(`PtyBoard`), in both modes of docs/network-serial.md: raw TCP (`socket://`) and
RFC 2217 (`rfc2217://`). The tests that need ser2net are skipped only where its binary is
missing (`.ci/run` installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.broker import Broker
from support.harness import make_settings, running_bridge, wait_until
from support.mqtt_client import publish
from support.recorder import Recorder

from conduyt_bridge.device.transports import SerialTransport
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import get_profile
from conduyt_bridge.simulator.ptyboard import PtyBoard

# Debian installs it to /usr/sbin, which is not on every user's PATH.
SER2NET = shutil.which("ser2net") or shutil.which("ser2net", path="/usr/sbin")

needs_ser2net = pytest.mark.skipif(
    SER2NET is None, reason="ser2net is not installed (apt-get install ser2net; .ci/run does)"
)

MODES = {
    # mode: (URL scheme, ser2net accepter prefix, line speed ser2net is configured with)
    "raw": ("socket", "tcp", 57600),
    "rfc2217": ("rfc2217", "telnet(rfc2217),tcp", 115200),
}
"""In raw mode ser2net's config sets the speed; with RFC 2217 the bridge's `baudrate`
(57600 here) must replace ser2net's 115200."""

BRIDGE_BAUDRATE = 57600
README = Path(__file__).resolve().parents[2] / "README.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    """True if something listens on 127.0.0.1:port, checked without connecting (a
    connection would make ser2net open the device)."""
    want = f"0100007F:{port:04X}"  # 127.0.0.1 as /proc/net/tcp writes it; 0A is LISTEN
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(r.split()[1] == want and r.split()[3] == "0A" for r in rows)


def device_speed(path: str) -> int:
    """The line speed the pty behind ser2net is set to, bits per second."""
    out = subprocess.run(
        ["stty", "-F", path, "speed"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.strip())


class Ser2net:
    """One ser2net process serving one pty on one loopback port; restartable."""

    def __init__(self, tmp: Path, device: str, mode: str) -> None:
        scheme, accepter, speed = MODES[mode]
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.config = tmp / "ser2net.yaml"
        self.pidfile = tmp / "ser2net.pid"
        self.log = tmp / "ser2net.log"
        self.config.write_text(
            "%YAML 1.1\n---\n"
            f"connection: &board\n"
            f"  accepter: {accepter},127.0.0.1,{self.port}\n"
            f"  connector: serialdev,{device},{speed}n81,local\n"
        )
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        assert SER2NET is not None
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                SER2NET, "-n", "-u", "-P", str(self.pidfile), "-c", str(self.config),
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 5
        while not listening(self.port):
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ser2net did not start: {self.log.read_text()}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def ser2net_board(tmp_path: Path, mode: str) -> AsyncIterator[tuple[Ser2net, PtyBoard]]:
    board = SimulatedBoard(get_profile("thermostat"), seed=7)
    async with PtyBoard(board) as pb:
        server = Ser2net(tmp_path, pb.path, mode)
        await server.start()
        try:
            yield server, pb
        finally:
            await server.stop()


async def run_scan(*args: str) -> tuple[list[dict[str, Any]], float]:
    """`conduyt-bridge scan ARGS --json` as a process: its results and its run time."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "conduyt_bridge.app.cli", "scan", *args, "--json",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return json.loads(out), time.monotonic() - started


@needs_ser2net
@pytest.mark.parametrize("mode", list(MODES))
async def test_scan_through_ser2net(tmp_path: Path, mode: str) -> None:
    async with ser2net_board(tmp_path, mode) as (server, pb):
        [result], _ = await run_scan("-p", server.url, "--timeout", "3")
        assert result["error"] is None
        assert result["firmware"]["name"] == pb.board.hello.firmware_name
        assert result["elapsed_s"] < 1.0
    # The same URL with nobody listening: the reason names the failure, fast.
    [result], _ = await run_scan("-p", server.url, "--timeout", "3")
    assert result["error"].startswith("cannot open: connection refused"), result["error"]


async def test_scan_timeout_names_the_rfc2217_wait() -> None:
    """A TCP server that never negotiates RFC 2217: `--timeout` bounds the wait and the
    reason says what timed out (it was an empty text before)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        [result], elapsed = await run_scan("-p", f"rfc2217://127.0.0.1:{port}", "--timeout", "1.5")
        assert result["error"] == (
            "cannot open: timed out after 1.5 s waiting for the RFC 2217 negotiation"
        )
        assert 1.4 < result["elapsed_s"] < 2.0
        assert elapsed < 5.0  # the default connect timeout of serialx is 5 s
        with pytest.raises(TimeoutError, match=r"^timed out after 0\.5 s waiting for the RFC"):
            await SerialTransport(f"rfc2217://127.0.0.1:{port}", connect_timeout_s=0.5).open()
    finally:
        server.close()


@needs_ser2net
@pytest.mark.parametrize("mode", list(MODES))
async def test_board_behind_ser2net(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path, mode: str
) -> None:
    async with ser2net_board(tmp_path, mode) as (server, pb):
        settings = make_settings(
            mqtt_broker,
            base_topic,
            [
                {
                    "id": "net",
                    "port": server.url,
                    "baudrate": BRIDGE_BAUDRATE,
                    # A long backoff: the server's return must be seen by the probe.
                    "reconnect_min_s": 4.0,
                    "reconnect_max_s": 30.0,
                }
            ],
        )
        p = f"{base_topic}/net"
        async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings):
            started = time.monotonic()
            await rec.wait_for(f"{p}/status", payload=b"online", timeout=5)
            handshake_s = time.monotonic() - started
            print(f"{mode}: online {handshake_s:.2f} s after the bridge started")
            assert device_speed(pb.path) == BRIDGE_BAUDRATE

            await rec.wait_for(f"{p}/ds/temperature_celsius", timeout=4)
            await publish(mqtt_broker, f"{p}/ds/heater/set", b"true")
            await rec.wait_for(f"{p}/ds/heater", payload=b"true")
            assert pb.board.written[-1] == ("heater", True)

            # A long outage of the server: offline, then back within a few seconds of
            # its return although the backoff has grown past that.
            mark = rec.mark()
            await server.stop()
            await rec.wait_for_after(mark, f"{p}/status", payload=b"offline", timeout=5)
            await asyncio.sleep(6)
            mark = rec.mark()
            await server.start()
            restarted = time.monotonic()
            await rec.wait_for_after(mark, f"{p}/status", payload=b"online", timeout=5)
            back_s = time.monotonic() - restarted
            print(f"{mode}: online again {back_s:.2f} s after ser2net restarted")
            assert back_s < 4.5
            assert device_speed(pb.path) == BRIDGE_BAUDRATE

            mark = rec.mark()
            await publish(mqtt_broker, f"{p}/ds/heater/set", b"false")
            await rec.wait_for_after(mark, f"{p}/ds/heater", payload=b"false")
            assert pb.board.written[-1] == ("heater", False)


@needs_ser2net
def test_ser2net_binary_is_4x() -> None:
    """The adapter in conduyt_bridge/device/rfc2217.py is written against ser2net 4.x."""
    assert SER2NET is not None
    out = subprocess.run([SER2NET, "-v"], capture_output=True, text=True, check=True)
    # It prints its argv[0]: "/usr/sbin/ser2net version 4.3.11".
    assert re.search(r"ser2net version 4\.\d+", out.stdout), out.stdout


@needs_ser2net
async def test_readme_ser2net_snippet_works(tmp_path: Path) -> None:
    """The README's ser2net YAML, with loopback ports and ptys put in, serves a board in
    both modes."""
    readme = README.read_text(encoding="utf-8")
    section = readme.split("### Boards behind ser2net", 1)[1]
    snippet = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    accepters = re.findall(r"accepter: (\S+),(\d+)\n", snippet)
    devices = re.findall(r"connector: serialdev,([^,]+),", snippet)
    assert [a for a, _ in accepters] == ["tcp", "telnet(rfc2217),tcp"]
    boards = [SimulatedBoard(get_profile(p), seed=3) for p in ("thermostat", "kitchen")]
    async with PtyBoard(boards[0]) as first, PtyBoard(boards[1]) as second:
        ports = [free_port(), free_port()]
        config = snippet
        for (accepter, port), device, local, pty in zip(
            accepters, devices, ports, (first, second), strict=True
        ):
            config = config.replace(f"{accepter},{port}\n", f"{accepter},127.0.0.1,{local}\n")
            config = config.replace(f"serialdev,{device},", f"serialdev,{pty.path},")
        server = Ser2net(tmp_path, first.path, "raw")
        server.config.write_text(config)
        server.port = ports[1]
        await server.start()
        try:
            await wait_until(lambda: listening(ports[0]))
            results, _ = await run_scan(
                "-p", f"socket://127.0.0.1:{ports[0]}", "-p", f"rfc2217://127.0.0.1:{ports[1]}"
            )
        finally:
            await server.stop()
    assert [r["error"] for r in results] == [None, None]
    assert [r["firmware"]["name"] for r in results] == [b.hello.firmware_name for b in boards]
