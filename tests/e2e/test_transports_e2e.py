"""Every way of reaching a board, end to end through a real broker: TCP boards that
connect in (`listen://`, one or several per listener), a TCP board that accepts the
bridge's connection (`tcp://`), a network serial server
(`socket://`, COBS), the in-process simulator (`sim://`); MQTT 3.1.1; JSON payloads;
another board appearing on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.broker import Broker
from support.harness import make_settings, running_bridge
from support.mqtt_client import publish
from support.recorder import Recorder

from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import get_profile
from conduyt_bridge.simulator.ptyboard import PtyBoard
from conduyt_bridge.simulator.runner import BoardRunner, run_tcp_client
from conduyt_bridge.simulator.tcp_server import TcpBoardServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_listen_transport_single_board(mqtt_broker: Broker, base_topic: str) -> None:
    port = free_port()
    settings = make_settings(
        mqtt_broker, base_topic, [{"id": "wifi", "port": f"listen://127.0.0.1:{port}"}]
    )
    board = SimulatedBoard(get_profile("thermostat"), framing="raw", seed=1)
    p = f"{base_topic}/wifi"
    async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings):
        # The board is a TCP client (ConduytTCP): it connects once the bridge listens.
        client = asyncio.create_task(run_tcp_client(board, "127.0.0.1", port))
        try:
            await rec.wait_for(f"{p}/status", payload=b"online", timeout=5)
            await rec.wait_for(f"{p}/ds/temperature_celsius", timeout=4)
            await publish(mqtt_broker, f"{p}/ds/setpoint_celsius/set", b"18.5")
            await rec.wait_for(f"{p}/ds/setpoint_celsius", payload=b"18.5")
            assert board.written[-1] == ("setpoint", 18.5)
        finally:
            client.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await client
        # The connection is gone: the board is offline at once (no keepalive wait).
        await rec.wait_for_new(f"{p}/status", payload=b"offline", timeout=5)


async def test_tcp_transport_board_that_listens(mqtt_broker: Broker, base_topic: str) -> None:
    """`tcp://host:port`: the bridge connects to a board serving the Conduyt TCP transport
    (raw packets, stop-and-wait), writes reach it, and a restarted board is reconnected."""
    board = SimulatedBoard(get_profile("thermostat"), framing="raw", seed=1)
    async with TcpBoardServer(board, "127.0.0.1", 0) as server:
        host, port = server.address
        settings = make_settings(
            mqtt_broker, base_topic, [{"id": "t", "port": f"tcp://{host}:{port}"}]
        )
        p = f"{base_topic}/t"
        async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings):
            await rec.wait_for(f"{p}/status", payload=b"online", timeout=5)
            meta = json.loads((await rec.wait_for(f"{p}/meta")).payload)
            assert meta["port"] == f"tcp://{host}:{port}"
            await publish(mqtt_broker, f"{p}/ds/setpoint_celsius/set", b"19.5")
            await rec.wait_for(f"{p}/ds/setpoint_celsius", payload=b"19.5")
            assert board.written[-1] == ("setpoint", 19.5)
            assert server.connections == 1


async def test_listen_transport_shared_by_mcu_id(mqtt_broker: Broker, base_topic: str) -> None:
    port = free_port()
    thermo = SimulatedBoard(get_profile("thermostat"), framing="raw", seed=1)
    kitchen = SimulatedBoard(get_profile("kitchen"), framing="raw", seed=2)
    settings = make_settings(
        mqtt_broker,
        base_topic,
        [
            {"id": "a", "port": f"listen://127.0.0.1:{port}", "mcu_id": thermo.hello.mcu_id_hex},
            {"id": "b", "port": f"listen://127.0.0.1:{port}", "mcu_id": kitchen.hello.mcu_id_hex},
        ],
    )
    async with Recorder(mqtt_broker, f"{base_topic}/+/meta") as rec, running_bridge(settings):
        tasks = [
            asyncio.create_task(run_tcp_client(b, "127.0.0.1", port)) for b in (kitchen, thermo)
        ]
        try:
            meta_a = (await rec.wait_for(f"{base_topic}/a/meta", timeout=8)).json()
            meta_b = (await rec.wait_for(f"{base_topic}/b/meta", timeout=8)).json()
            assert meta_a["firmware"]["name"] == thermo.hello.firmware_name
            assert meta_b["firmware"]["name"] == kitchen.hello.firmware_name
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def serial_server(board: SimulatedBoard) -> AsyncIterator[int]:
    """A ser2net-like server: the board's COBS byte stream on a TCP port."""
    runners: list[BoardRunner] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        runner = BoardRunner(board, reader, writer)
        runners.append(runner)
        await runner.run()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for r in runners:
            await r.close()


async def test_socket_transport_network_serial_server(mqtt_broker: Broker, base_topic: str) -> None:
    board = SimulatedBoard(get_profile("thermostat"), seed=3)
    async with serial_server(board) as port:
        settings = make_settings(
            mqtt_broker, base_topic, [{"id": "ser2net", "port": f"socket://127.0.0.1:{port}"}]
        )
        p = f"{base_topic}/ser2net"
        async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings):
            await rec.wait_for(f"{p}/status", payload=b"online", timeout=5)
            await publish(mqtt_broker, f"{p}/ds/heater/set", b"true")
            await rec.wait_for(f"{p}/ds/heater", payload=b"true")
            assert board.written[-1] == ("heater", True)


async def test_sim_transport_mqtt311_and_json_payloads(
    mqtt_broker: Broker, base_topic: str
) -> None:
    settings = make_settings(
        mqtt_broker,
        base_topic,
        [{"id": "sim", "port": "sim://thermostat"}],
        mqtt={"protocol": "3.1.1", "payload_format": "json"},
    )
    p = f"{base_topic}/sim"
    async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings):
        await rec.wait_for(f"{p}/status", payload=b"online")
        temp = (await rec.wait_for(f"{p}/ds/temperature_celsius", timeout=4)).json()
        assert set(temp) == {"value", "unit", "ts"}
        assert temp["unit"] == "celsius" and isinstance(temp["value"], float)
        assert temp["ts"].endswith("Z") and "T" in temp["ts"]
        await publish(mqtt_broker, f"{p}/ds/setpoint_celsius/set", b'{"value": 20.5}')
        state = await rec.wait_for(f"{p}/ds/setpoint_celsius")
        assert state.retain is True
        assert json.loads(state.payload)["value"] == 20.5


async def test_another_board_on_the_same_port_is_republished(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    board = SimulatedBoard(get_profile("thermostat"), seed=4)
    async with PtyBoard(board, link=tmp_path / "ttyX") as pty:
        settings = make_settings(mqtt_broker, base_topic, [{"id": "x", "port": str(pty.link)}])
        p = f"{base_topic}/x"
        async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings) as bridge:
            await rec.wait_for(f"{p}/status", payload=b"online")
            await publish(mqtt_broker, f"{p}/ds/setpoint_celsius/set", b"22")
            await rec.wait_for(f"{p}/ds/setpoint_celsius", payload=b"22.0")
            mark = rec.mark()
            await pty.unplug()
            board.reboot(new_profile=get_profile("kitchen"))
            board.written.clear()
            await pty.replug(reboot=False)
            meta = await rec.wait_for_after(
                mark, f"{p}/meta", predicate=lambda b: b"sim-kitchen" in b, timeout=10
            )
            assert meta.retain is True
            # The thermostat's retained setpoint is cleared: no ghost value for a
            # datastream the new board does not have, and nothing was replayed to it.
            cleared = await rec.wait_for_after(mark, f"{p}/ds/setpoint_celsius", timeout=5)
            assert cleared.payload == b"" and cleared.retain is True
            assert board.written == []
            assert bridge.boards["x"].replay == {}


@pytest.mark.parametrize("port", ["/dev/does-not-exist-conduyt"])
async def test_missing_serial_port_keeps_retrying(
    mqtt_broker: Broker, base_topic: str, port: str
) -> None:
    settings = make_settings(mqtt_broker, base_topic, [{"id": "gone", "port": port}])
    p = f"{base_topic}/gone"
    async with (
        Recorder(mqtt_broker, f"{p}/#", f"{base_topic}/bridge/#") as rec,
        running_bridge(settings) as bridge,
    ):
        status = await rec.wait_for(f"{p}/status")
        assert status.payload == b"offline" and status.retain is True
        await publish(mqtt_broker, f"{p}/ds/x/set", b"1")
        err = (await rec.wait_for(f"{p}/error")).json()
        assert err["error"] == "disconnected"
        await asyncio.sleep(0.6)
        session = bridge.sessions["gone"]
        assert session.stats.reconnects >= 1
        assert "cannot open" in (session.last_error or "")
        assert bridge.mqtt.connected  # one board's failure never affects the rest


async def test_busy_listen_port_does_not_stop_the_other_boards(
    mqtt_broker: Broker, base_topic: str
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = make_settings(
            mqtt_broker,
            base_topic,
            [
                {"id": "wifi", "port": f"listen://127.0.0.1:{port}"},
                {"id": "sim", "port": "sim://thermostat"},
            ],
        )
        async with (
            Recorder(mqtt_broker, f"{base_topic}/+/status") as rec,
            running_bridge(settings) as bridge,
        ):
            await rec.wait_for(f"{base_topic}/sim/status", payload=b"online", timeout=8)
            assert bridge.mqtt.connected
            assert not bridge.sessions["wifi"].online
