"""`conduyt-bridge scan` (`conduyt_bridge/app/scan.py`) against simulated boards on real ptys."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import serialx

from conduyt_bridge.app.scan import (
    ScanResult,
    _open_failure,
    candidate_ports,
    format_json,
    format_table,
    probe,
    scan,
)
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import get_profile
from conduyt_bridge.simulator.ptyboard import PtyBoard


@contextlib.asynccontextmanager
async def sim_pty(profile: str = "thermostat") -> AsyncIterator[PtyBoard]:
    async with PtyBoard(SimulatedBoard(get_profile(profile), seed=1)) as board:
        yield board


@contextlib.contextmanager
def silent_pty() -> Iterator[str]:
    """A pty nobody answers on (like a USB serial adapter with nothing behind it)."""
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


@contextlib.asynccontextmanager
async def chatty_pty() -> AsyncIterator[str]:
    """A pty whose "firmware" answers anything with a line of text (not Conduyt)."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    loop = asyncio.get_running_loop()

    def on_readable() -> None:
        with contextlib.suppress(OSError):
            os.read(master, 4096)
            os.write(master, b"Temp: 21.5 C\r\n")

    loop.add_reader(master, on_readable)
    try:
        yield os.ttyname(slave)
    finally:
        loop.remove_reader(master)
        os.close(slave)
        os.close(master)


async def test_scan_reports_the_board_and_the_silent_port() -> None:
    async with sim_pty() as board:
        path = board.path
        with silent_pty() as nobody:
            started = time.monotonic()
            results = await scan([path, nobody], timeout_s=1.0)
            took = time.monotonic() - started
    found, silent = results
    assert found.port == path
    assert found.error is None
    assert found.hello is not None
    assert found.hello.firmware_name == "sim-thermostat"
    assert found.hello.version_string == "1.2.0"
    assert found.hello.pin_count == 8
    assert [ds.name for ds in found.hello.datastreams] == [
        "temperature",
        "humidity",
        "setpoint",
        "heater",
    ]
    assert found.elapsed_s < 0.5
    assert silent == ScanResult(nobody, None, "no answer (waited 1 s)", silent.elapsed_s, None)
    # Ports are probed concurrently: the whole scan takes one timeout, not the sum.
    assert 1.0 <= took < 1.6


async def test_scan_of_a_board_with_modules() -> None:
    async with sim_pty("kitchen") as board:
        [result] = await scan([board.path], timeout_s=1.0)
    assert result.hello is not None
    assert [m.name for m in result.hello.modules] == ["servo", "neopixel", "dht"]
    doc = result.as_dict()
    assert doc["ok"] is True
    assert doc["firmware"] == {"name": "sim-kitchen", "version": "1.0.3"}
    assert [m["name"] for m in doc["modules"]] == ["servo", "neopixel", "dht"]
    assert doc["datastreams"][0] == {
        "name": "light",
        "slug": "light_percent",
        "type": "uint8",
        "unit": "%",
        "writable": True,
    }


async def test_busy_missing_and_foreign_ports_have_reasons() -> None:
    async with sim_pty() as board:
        # Another program (here: us) holds the port with serialx's exclusive lock.
        _, writer = await serialx.open_serial_connection(board.path, 115200)
        try:
            busy = await probe(board.path, timeout_s=1.0)
        finally:
            writer.close()
    assert busy.error == "busy: another program has the port open (a running conduyt-bridge?)"

    missing = await probe("/dev/ttyUSB-conduyt-test-missing", timeout_s=1.0)
    assert missing.error == "not found"

    async with chatty_pty() as chatty:
        foreign = await probe(chatty, timeout_s=0.6)
    assert foreign.error is not None
    assert foreign.error.startswith("no answer: ")
    assert foreign.error.endswith(
        " bytes of non-Conduyt data (other firmware, or a baud rate other than the board's?)"
    )


def test_permission_denied_says_what_to_do() -> None:
    # Root opens any device node, so the real case cannot be staged here.
    exc = PermissionError(errno.EACCES, "Permission denied", "/dev/ttyACM0")
    assert _open_failure(exc) == (
        "permission denied (add your user to the 'dialout' group, then log in again)"
    )


def test_candidate_ports_prefer_stable_names(tmp_path: Path) -> None:
    for name in ("ttyUSB10", "ttyUSB2", "ttyACM0", "ttyS0", "ttyUSB0"):
        (tmp_path / name).touch()
    by_id = tmp_path / "serial" / "by-id"
    by_id.mkdir(parents=True)
    (by_id / "usb-Arduino_Uno_1234-if00").symlink_to(tmp_path / "ttyACM0")
    (by_id / "usb-FTDI_FT232R_A50-if00-port0").symlink_to(tmp_path / "ttyUSB2")
    assert candidate_ports(tmp_path) == [
        str(by_id / "usb-Arduino_Uno_1234-if00"),
        str(by_id / "usb-FTDI_FT232R_A50-if00-port0"),
        str(tmp_path / "ttyUSB0"),  # ttyUSB2 and ttyACM0 are listed under their links
        str(tmp_path / "ttyUSB10"),
    ]


def test_candidate_ports_on_a_machine_without_serial_ports(tmp_path: Path) -> None:
    assert candidate_ports(tmp_path) == []
    assert format_table([]).startswith("no boards found")


def test_table_layout() -> None:
    results = [
        ScanResult("/dev/serial/by-id/usb-A", get_profile("thermostat").hello, None, 0.1),
        ScanResult("/dev/ttyUSB1", None, "no answer (waited 2 s)", 2.0),
    ]
    assert format_table(results, 2.04).splitlines() == [
        "PORT                     FIRMWARE        VERSION  PINS  MODULES  DATASTREAMS",
        "/dev/serial/by-id/usb-A  sim-thermostat  1.2.0       8  -        temperature (celsius), "
        "humidity (%), setpoint (celsius, rw), heater (rw)",
        "/dev/ttyUSB1             no answer (waited 2 s)",
        "",
        "2 ports probed in 2.0 s: 1 board found",
        "",
        "For your config.toml:",
        "",
        "[[devices]]",
        'id = "sim-thermostat"',
        'port = "/dev/serial/by-id/usb-A"',
    ]
    assert json.loads(format_json(results))[1] == {
        "port": "/dev/ttyUSB1",
        "device": None,
        "ok": False,
        "error": "no answer (waited 2 s)",
        "elapsed_s": 2.0,
    }


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conduyt_bridge.app.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_cli_scan_table_and_json() -> None:
    async with sim_pty() as board:
        with silent_pty() as nobody:
            code, out = await _cli("scan", "--port", board.path, "--port", nobody, "--timeout", "1")
            assert code == 0, out
            lines = out.splitlines()
            assert lines[0].split() == [
                "PORT",
                "FIRMWARE",
                "VERSION",
                "PINS",
                "MODULES",
                "DATASTREAMS",
            ]
            assert lines[1].split()[:5] == [board.path, "sim-thermostat", "1.2.0", "8", "-"]
            assert lines[2].split(maxsplit=1) == [nobody, "no answer (waited 1 s)"]
            assert lines[4].startswith("2 ports probed in ")
            assert lines[4].endswith(": 1 board found")

            code, out = await _cli("scan", "--port", board.path, "--timeout", "1", "--json")
            assert code == 0, out
            [doc] = json.loads(out)
            assert doc["port"] == board.path
            assert doc["firmware"] == {"name": "sim-thermostat", "version": "1.2.0"}
            assert doc["pins"] == 8


async def test_cli_scan_without_boards_exits_0() -> None:
    with silent_pty() as nobody:
        code, out = await _cli("scan", "--port", nobody, "--timeout", "0.3")
    assert code == 0
    assert re.fullmatch(r"1 port probed in \d+\.\d s: no boards found", out.splitlines()[-1])


@pytest.mark.parametrize("seconds", ["0", "-1", "soon"])
async def test_cli_scan_rejects_a_bad_timeout(seconds: str) -> None:
    code, out = await _cli("scan", "--timeout", seconds)
    assert code == 2
    assert "--timeout" in out
