"""WiFi boards on `listen://` (issue 14): mcu_id matching, one connection per board, the
rate of the unknown-board warning, and no connection accepted during the shutdown.

The boards are simulated TCP clients (`run_tcp_client`, raw framing), as the firmware's
ConduytTCP transport connects in."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from typing import Any

import pytest
import structlog
from support.broker import Broker
from support.harness import make_settings, running_bridge, wait_until
from support.mqtt_client import publish
from support.recorder import Recorder

from conduyt_bridge.device.transports import TcpListener
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import get_profile
from conduyt_bridge.simulator.runner import BoardRunner, run_tcp_client

# Keepalive long enough that only the replacement rule can bring a board back in time.
SLOW_KEEPALIVE = {"keepalive_s": 30.0, "keepalive_misses": 3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def board_with_mcu_id(mcu_id_hex: str, seed: int = 1) -> SimulatedBoard:
    profile = dataclasses.replace(get_profile("thermostat"), mcu_id=bytes.fromhex(mcu_id_hex))
    return SimulatedBoard(profile, framing="raw", seed=seed)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, OSError):
        await task


async def test_exact_mcu_id_wins_over_a_prefix() -> None:
    listener = TcpListener("127.0.0.1", 0)
    short = listener.register("a1b2")
    full = listener.register("A1B2C3D4E5F60000")
    await listener.start()
    try:
        # Registered in this order, the first prefix match used to take the board.
        exact = asyncio.create_task(
            run_tcp_client(board_with_mcu_id("a1b2c3d4e5f60000"), "127.0.0.1", listener.bound_port)
        )
        other = asyncio.create_task(
            run_tcp_client(board_with_mcu_id("a1b2ffff"), "127.0.0.1", listener.bound_port)
        )
        try:
            async with asyncio.timeout(5):
                exact_link = await full.get()
                prefix_link = await short.get()
            assert full.empty() and short.empty()
            assert exact_link.description != prefix_link.description
            assert listener.match("a1b2c3d4e5f60000") == "a1b2c3d4e5f60000"
            assert listener.match("A1B2FFFF") == "a1b2"
            assert listener.match("ffff") is None
            await exact_link.close()
            await prefix_link.close()
        finally:
            await stop(exact)
            await stop(other)
    finally:
        await listener.close()


@pytest.mark.parametrize("mcu_id", ["a1b2c3d4e5f60000", None], ids=["by-mcu-id", "only-board"])
async def test_new_connection_replaces_a_half_open_one(
    mqtt_broker: Broker, base_topic: str, mcu_id: str | None
) -> None:
    port = free_port()
    first = board_with_mcu_id("a1b2c3d4e5f60000", seed=1)
    device: dict[str, Any] = {"id": "wifi", "port": f"listen://127.0.0.1:{port}", **SLOW_KEEPALIVE}
    if mcu_id is not None:
        device["mcu_id"] = mcu_id
    settings = make_settings(mqtt_broker, base_topic, [device])
    p = f"{base_topic}/wifi"
    with structlog.testing.capture_logs() as events:
        async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings):
            # The board's end of the old connection is a duplicated socket: closing the
            # runner's copy sends nothing, so the bridge keeps a half-open link, as after a
            # power cut.
            sock = socket.create_connection(("127.0.0.1", port))
            kept = sock.dup()
            try:
                reader, writer = await asyncio.open_connection(sock=sock)
                runner = BoardRunner(first, reader, writer)
                runner.start()
                await rec.wait_for(f"{p}/status", payload=b"online", timeout=5)
                await runner.close()

                rebooted = board_with_mcu_id("a1b2c3d4e5f60000", seed=2)
                client = asyncio.create_task(run_tcp_client(rebooted, "127.0.0.1", port))
                try:
                    await rec.wait_for_new(f"{p}/status", payload=b"offline", timeout=3)
                    await rec.wait_for_new(f"{p}/status", payload=b"online", timeout=3)
                    await publish(mqtt_broker, f"{p}/ds/setpoint_celsius/set", b"19.5")
                    await rec.wait_for(f"{p}/ds/setpoint_celsius", payload=b"19.5")
                    assert rebooted.written[-1] == ("setpoint", 19.5)
                    assert ("setpoint", 19.5) not in first.written
                finally:
                    await stop(client)
            finally:
                kept.close()
    replaced = [e for e in events if e["event"].startswith("TCP board connected again")]
    assert len(replaced) == 1
    assert replaced[0]["log_level"] == "info"
    assert replaced[0]["event"] == "TCP board connected again, closing its old connection"
    assert replaced[0]["mcu_id"] == mcu_id


async def test_unknown_mcu_id_warns_once_a_minute(mqtt_broker: Broker, base_topic: str) -> None:
    port = free_port()
    device = {"id": "wifi", "port": f"listen://127.0.0.1:{port}", "mcu_id": "0011"}
    settings = make_settings(mqtt_broker, base_topic, [device])
    stranger = board_with_mcu_id("240ac4123456")
    with structlog.testing.capture_logs() as events:
        async with running_bridge(settings):
            client = asyncio.create_task(
                run_tcp_client(stranger, "127.0.0.1", port, retry=True, retry_delay_s=0.1)
            )
            try:

                def unknown() -> list[dict[str, Any]]:
                    return [e for e in events if e["event"] == "TCP board with unknown mcu_id"]

                await wait_until(lambda: len(unknown()) >= 4, timeout_s=5)
            finally:
                await stop(client)
    seen = unknown()
    assert [e["log_level"] for e in seen[:4]] == ["warning", "debug", "debug", "debug"]
    assert [e for e in seen if e["log_level"] == "warning"] == [
        {
            "event": "TCP board with unknown mcu_id",
            "log_level": "warning",
            "peer": seen[0]["peer"],
            "mcu_id": "240ac41234560000",  # zero-padded to 8 bytes (§6.1)
            "dropped_since_last_warning": 0,
        }
    ]


async def test_listener_closed_before_shutdown(mqtt_broker: Broker, base_topic: str) -> None:
    port = free_port()
    settings = make_settings(
        mqtt_broker, base_topic, [{"id": "wifi", "port": f"listen://127.0.0.1:{port}"}]
    )
    during_shutdown: list[str] = []

    async def try_to_connect() -> None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            during_shutdown.append("refused")
        else:
            during_shutdown.append("accepted")
            writer.close()

    async with running_bridge(settings) as bridge:
        # Listening: a board could connect now.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        bridge.on_shutdown(try_to_connect)
    assert during_shutdown == ["refused"]


async def test_silent_connection_does_not_cut_off_the_only_board(
    mqtt_broker: Broker, base_topic: str
) -> None:
    port = free_port()
    device = {"id": "wifi", "port": f"listen://127.0.0.1:{port}", **SLOW_KEEPALIVE}
    settings = make_settings(mqtt_broker, base_topic, [device])
    board = board_with_mcu_id("a1b2c3d4e5f60000")
    p = f"{base_topic}/wifi"
    with structlog.testing.capture_logs() as events:
        async with Recorder(mqtt_broker, f"{p}/status") as rec, running_bridge(settings):
            client = asyncio.create_task(run_tcp_client(board, "127.0.0.1", port))
            try:
                await rec.wait_for(f"{p}/status", payload=b"online", timeout=5)
                # A port scan (or anything that is not a board) connects and says nothing.
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    silent = "TCP board did not identify itself"
                    await wait_until(lambda: any(e["event"] == silent for e in events), 5)
                finally:
                    writer.close()
                assert [m.payload for m in rec.messages(f"{p}/status")] == [
                    b"offline",
                    b"online",
                ]
            finally:
                await stop(client)
    assert not any(e["event"].startswith("TCP board connected again") for e in events)
