"""End to end: any number of devices may run the same simulator profile (issue 8 §5);
each is its own board with its own mcu_id, state and commands."""

from __future__ import annotations

import hashlib

from support.broker import Broker
from support.harness import make_settings, running_bridge, wait_until
from support.mqtt_client import publish
from support.recorder import Recorder

from conduyt_bridge.device.transports import SimTransport, sim_mcu_id
from conduyt_bridge.simulator.board import SimulatedBoard


def test_sim_mcu_id_is_the_vendor_prefix_and_a_digest_of_the_device_id() -> None:
    digest = hashlib.blake2b(b"left", digest_size=5).digest()
    assert sim_mcu_id(bytes.fromhex("240ac4123456"), "left") == bytes.fromhex("240ac4") + digest
    assert sim_mcu_id(b"\x1e\x95\x0f", "a") != sim_mcu_id(b"\x1e\x95\x0f", "b")
    # Without a device id (the simulator on its own, session tests) the profile's is kept.
    board = SimTransport("thermostat").board
    assert isinstance(board, SimulatedBoard)
    assert board.hello.mcu_id_hex == "240ac41234560000"


async def test_two_devices_on_one_sim_profile(mqtt_broker: Broker, base_topic: str) -> None:
    settings = make_settings(
        mqtt_broker,
        base_topic,
        [{"id": "left", "port": "sim://thermostat"}, {"id": "right", "port": "sim://thermostat"}],
    )
    expected = {
        dev: sim_mcu_id(bytes.fromhex("240ac4123456"), dev).hex() for dev in ("left", "right")
    }
    assert expected["left"] != expected["right"]
    async with Recorder(mqtt_broker, f"{base_topic}/#") as rec, running_bridge(settings) as bridge:
        for dev in ("left", "right"):
            await rec.wait_for(f"{base_topic}/{dev}/status", payload=b"online", timeout=10)
            meta = (await rec.wait_for(f"{base_topic}/{dev}/meta")).json()
            assert meta["mcu_id"] == expected[dev]
            assert meta["port"] == "sim://thermostat"
        # Separate boards: a write to one leaves the other alone.
        await publish(mqtt_broker, f"{base_topic}/left/ds/setpoint_celsius/set", b"25")
        await rec.wait_for(f"{base_topic}/left/ds/setpoint_celsius", payload=b"25.0")
        boards = []
        for dev in ("left", "right"):
            transport = bridge.sessions[dev].transport
            assert isinstance(transport, SimTransport)
            assert isinstance(transport.board, SimulatedBoard)
            boards.append(transport.board)
        left, right = boards
        await wait_until(lambda: left.datastream_values["setpoint"] == 25.0)
        assert right.datastream_values["setpoint"] == 21.0
        assert right.written == []
