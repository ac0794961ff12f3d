"""End to end (simulated board on a real pty → bridge → Mosquitto): text a sketch prints
between frames is published on `{base}/{dev}/log` and is no reboot; a real reset still is
noticed, with its evidence in the log line (`docs/serial-text.md`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from support.broker import Broker
from support.harness import make_settings, pty_board_at, running_bridge, wait_until
from support.mqtt_client import publish
from support.recorder import Recorder

from conduyt_bridge.app.daemon import Bridge
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.simulator.board import ESP32_BOOT_BANNER, SimulatedBoard
from conduyt_bridge.simulator.ptyboard import PtyBoard

DEV = "thermo"


@pytest.fixture
async def pty_board(tmp_path: Path) -> AsyncIterator[PtyBoard]:
    async with pty_board_at(tmp_path / "ttyTEXT", "thermostat", seed=11) as pb:
        yield pb


def settings(broker: Broker, base_topic: str, pb: PtyBoard) -> Any:
    return make_settings(broker, base_topic, [{"id": DEV, "port": str(pb.link)}])


@contextlib.asynccontextmanager
async def bridge_online(
    broker: Broker, base_topic: str, pb: PtyBoard
) -> AsyncIterator[tuple[Recorder, Bridge]]:
    """A recorder on the board's topics and a running bridge, once the board is online."""
    p = f"{base_topic}/{DEV}"
    async with (
        Recorder(broker, f"{p}/#") as rec,
        running_bridge(settings(broker, base_topic, pb)) as bridge,
    ):
        await rec.wait_for(f"{p}/status", payload=b"online")
        yield rec, bridge


async def heater_on(broker: Broker, rec: Recorder, p: str) -> None:
    """Switch the heater on over MQTT (`p`: the board's topic prefix); wait for its state."""
    await publish(broker, f"{p}/ds/heater/set", b"on")
    await rec.wait_for(f"{p}/ds/heater", payload=b"true")


def resets(board: SimulatedBoard) -> int:
    return sum(1 for p in board.received if p.type == PacketType.RESET)


def reboot_lines(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["why"] for e in events if e["event"].startswith("board may have rebooted") and "why" in e
    ]


async def test_printed_lines_go_to_log_and_are_not_a_reboot(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard
) -> None:
    p = f"{base_topic}/{DEV}"
    board = pty_board.board
    lines = [
        "debug: loop 1 took 12 ms",
        "debug: heater duty 40 % at 21.5 °C",
        "x=5, y=7, this sketch prints a lot of text on the line",
    ]
    with structlog.testing.capture_logs() as events:
        async with bridge_online(mqtt_broker, base_topic, pty_board) as (rec, bridge):
            await publish(mqtt_broker, f"{p}/ds/setpoint_celsius/set", b"23.5")
            await rec.wait_for(f"{p}/ds/setpoint_celsius", payload=b"23.5")
            # Someone turns the knob on the board: the sketch's value, not the bridge's.
            board.set_datastream("setpoint", 19.0)
            before = resets(board)
            for _ in range(3):
                board.faults.print_lines = list(lines)
                await wait_until(lambda: not board.faults.print_lines)
                await asyncio.sleep(0.05)
            await wait_until(lambda: len(rec.messages(f"{p}/log")) >= 9)
            # Long enough for a keepalive round and for a (wrong) routine re-run to show.
            await asyncio.sleep(1.2)
            logged = rec.messages(f"{p}/log")
            assert [m.payload for m in logged] == [line.encode() for line in lines] * 3
            assert all(m.retain is False and m.qos == 0 for m in logged)
            assert resets(board) == before
            assert board.datastream_values["setpoint"] == 19.0
            assert [w for w in board.written if w[0] == "setpoint"] == [("setpoint", 23.5)]
            session = bridge.sessions[DEV]
            assert session.stats.reboots_suspected == 0
            assert session.stats.reconnects == 0
            assert session.stats.text_lines == 9
            health = bridge.health()["boards"][DEV]
            assert (health["text_lines"], health["log_lines_dropped"]) == (9, 0)
            assert health["reboots_suspected"] == 0
    assert reboot_lines(events) == []


async def test_reset_button_with_a_boot_banner_is_still_a_reboot(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard
) -> None:
    p = f"{base_topic}/{DEV}"
    board = pty_board.board
    with structlog.testing.capture_logs() as events:
        async with bridge_online(mqtt_broker, base_topic, pty_board) as (rec, bridge):
            await heater_on(mqtt_broker, rec, p)
            board.written.clear()
            board.faults.print_lines = ["debug: before the reset"]
            await wait_until(lambda: not board.faults.print_lines)
            await asyncio.sleep(0.05)
            board.press_reset()  # the ESP32 ROM banner, then the sketch starts afresh
            await wait_until(lambda: board.datastream_values["heater"] is True, timeout_s=5)
            assert board.written == [("heater", True)]
            session = bridge.sessions[DEV]
            assert session.online and session.stats.reconnects == 0
            assert session.stats.reboots_suspected == 1
            await wait_until(lambda: len(rec.messages(f"{p}/log")) >= 3)
            assert [m.payload for m in rec.messages(f"{p}/log")] == [
                b"debug: before the reset",
                b"ets Jun  8 2016 00:22:57",
                b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
            ]
    assert ESP32_BOOT_BANNER.startswith(b"ets Jun  8 2016")
    assert reboot_lines(events) == [
        "boot ROM banner 'ets Jun  8 2016' in line 'ets Jun  8 2016 00:22:57'"
    ]


async def test_reset_with_binary_boot_noise_is_still_a_reboot(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard
) -> None:
    p = f"{base_topic}/{DEV}"
    board = pty_board.board
    # An ESP8266 ROM prints at 74880 baud; read at 115200 it is binary junk.
    noise = bytes.fromhex("f0 8e 9c fe 12 a3 7f 81 e0 1b 9f c4 88 fe 05 b2 d7 91 1e 06")
    with structlog.testing.capture_logs() as events:
        async with bridge_online(mqtt_broker, base_topic, pty_board) as (rec, bridge):
            await heater_on(mqtt_broker, rec, p)
            board.written.clear()
            board.press_reset(banner=noise)
            await wait_until(lambda: board.datastream_values["heater"] is True, timeout_s=5)
            assert board.written == [("heater", True)]
            assert bridge.sessions[DEV].stats.reboots_suspected == 1
            assert rec.messages(f"{p}/log") == []
    assert reboot_lines(events) == ["20 bytes of non-text noise on the line"]


async def test_colour_codes_and_a_corrupted_byte_are_text_not_a_reboot(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard
) -> None:
    """ESP-IDF colours its log lines (`ESC [0;32m`); a byte can be corrupted on the wire.
    Both are text on `{dev}/log`, never reboot evidence (`docs/serial-text.md`)."""
    p = f"{base_topic}/{DEV}"
    board = pty_board.board
    colour = b"\x1b[0;32mI (1234) app: heater duty 40 %\x1b[0m\r\n"
    corrupted = b"temperature = 21.\xf55 C\r\n"
    with structlog.testing.capture_logs() as events:
        async with bridge_online(mqtt_broker, base_topic, pty_board) as (rec, bridge):
            before = resets(board)
            board.faults.garbage = colour * 3 + corrupted
            await wait_until(lambda: not board.faults.garbage)
            await wait_until(lambda: len(rec.messages(f"{p}/log")) >= 4)
            await asyncio.sleep(1.2)
            assert [m.payload for m in rec.messages(f"{p}/log")] == [
                b"I (1234) app: heater duty 40 %",
                b"I (1234) app: heater duty 40 %",
                b"I (1234) app: heater duty 40 %",
                "temperature = 21.\ufffd5 C".encode(),
            ]
            assert resets(board) == before
            session = bridge.sessions[DEV]
            assert (session.stats.reboots_suspected, session.stats.text_lines) == (0, 4)
    assert reboot_lines(events) == []
