"""Acceptance with a client we did not write: the published `conduyt-py` 1.0 SDK, using its
own MQTT transport, drives a simulated board on a pty through the bridge.

SDK quirks this test (and the bridge) accommodate, read from
`conduyt/transports/mqtt.py` and `conduyt/device.py`:

* The transport hard-codes the base topic `conduyt` and only takes a device id, so the
  bridge runs with `base_topic = "conduyt"`; a unique device id per test (`py-<hex>`)
  keeps retained topics of one run from leaking into another.
* It publishes every command on the *bare* `conduyt/{id}/cmd` (no type suffix, QoS 1)
  and subscribes to `evt/#` only (QoS 0, aiomqtt defaults: MQTT 3.1.1, clean session,
  random client id). The bridge therefore accepts the bare topic and answers HELLO on
  `evt/81` from its cached HELLO_RESP; a native device publishes HELLO_RESP only on
  `hello`, which is why `connect()` times out against real firmware (§9.2).
* Sequence numbers start at 0 (its HELLO has SEQ 0) and wrap 255 → 0; the bridge remaps
  them to its own (1..255, never 0) and answers with the client's SEQ, so SEQ 0 replies
  reach the SDK even though board events also carry SEQ 0 (the SDK ignores those types).
* `pin.write(v)` sends PIN_WRITE without a mode byte, so the firmware's rule applies
  (0/1 digital, 2..255 PWM); the bridge forwards the packet unchanged after checking it.
* There is no datastream API: the DS_WRITE goes through the SDK's own (private)
  `_send_command`, encoded the way the firmware's example sketches read it (float32).
* The handler is installed after the subscription, so an event arriving in between is
  dropped by the SDK: harmless, replies come only after commands.
* Without the bridge's NAK answers to refused commands, the SDK would only see its 5 s
  timeout; with them it raises `ConduytNAKError` at once.
"""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest
from conduyt import ConduytDevice, ConduytNAKError
from conduyt.core.constants import CMD
from conduyt.transports.mqtt import MQTTTransport
from support.broker import Broker
from support.harness import make_settings, running_bridge
from support.mqtt_client import publish, retained_snapshot
from support.recorder import Recorder

from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import get_profile
from conduyt_bridge.simulator.ptyboard import PtyBoard


async def test_conduyt_py_through_the_bridge(mqtt_broker: Broker, tmp_path: Path) -> None:
    dev = f"py-{uuid.uuid4().hex[:8]}"
    board = SimulatedBoard(get_profile("thermostat"), seed=11)
    async with PtyBoard(board, link=tmp_path / "ttyPY") as pty:
        settings = make_settings(
            mqtt_broker,
            "conduyt",  # hard-coded in conduyt-py's MQTT transport
            [{"id": dev, "port": str(pty.link), "keepalive_s": 30}],
            mqtt={"client_id": f"bridge-{dev}"},
        )
        async with (
            Recorder(mqtt_broker, f"conduyt/{dev}/#") as rec,
            running_bridge(settings),
        ):
            await rec.wait_for(f"conduyt/{dev}/status", payload=b"online", timeout=10)
            device = ConduytDevice(
                MQTTTransport(mqtt_broker.host, mqtt_broker.port, device_id=dev), timeout_ms=3000
            )
            mark = len(board.received)
            hello = await device.connect()
            try:
                assert hello.firmware_name == "sim-thermostat"
                assert hello.max_payload == 512
                assert [d.name for d in hello.datastreams] == [
                    "temperature",
                    "humidity",
                    "setpoint",
                    "heater",
                ]
                await device.ping()
                pin = await device.pin(2).mode("output")
                await pin.write(1)
                await device.pin(1).mode("pwm")
                await device.pin(1).write(128)
                await device._send_command(CMD.DS_WRITE, b"\x02" + struct.pack("<f", 22.5))
                # refused by the bridge (pin 3 is an input-only button pin): an immediate NAK
                with pytest.raises(ConduytNAKError) as info:
                    await device.pin(3).mode("output")
                assert info.value.error_name == "PIN_MODE_UNSUPPORTED"
            finally:
                await device.disconnect()
            # HELLO was answered from the cache; ping, modes, writes and DS_WRITE reached
            # the board byte for byte (sequence numbers are the bridge's; the keepalive is
            # 30 s, so the PING is the SDK's).
            assert [(p.type, p.payload) for p in board.received[mark:]] == [
                (PacketType.PING, b""),
                (PacketType.PIN_MODE, b"\x02\x01"),
                (PacketType.PIN_WRITE, b"\x02\x01"),
                (PacketType.PIN_MODE, b"\x01\x02"),
                (PacketType.PIN_WRITE, b"\x01\x80"),
                (PacketType.DS_WRITE, b"\x02" + struct.pack("<f", 22.5)),
            ]
            assert board.pin_values[2] == 1 and board.pin_values[1] == 128
            assert board.written[-1] == ("setpoint", 22.5)
            # the bridge's own state follows the raw write
            state = await rec.wait_for(f"conduyt/{dev}/ds/setpoint_celsius", payload=b"22.5")
            assert state.retain is True
            report = (await rec.wait_for(f"conduyt/{dev}/error")).json()
            assert report["topic"] == f"conduyt/{dev}/cmd"
            assert report["name"] == "PIN_MODE_UNSUPPORTED"
    # The retained topics of this device id stay behind on the shared broker; clear them.
    for topic in await retained_snapshot(mqtt_broker, f"conduyt/{dev}/#", settle=0.2):
        await publish(mqtt_broker, topic, b"", retain=True)
