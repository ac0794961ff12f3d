"""End to end: simulated board on a real pty → bridge → real Mosquitto → subscriber.

Covers the main job (issue: board datastreams on MQTT): state topics, `/set` round trips,
refusals that never reach the board, MQTT 5 request/response, unplug/replug with replay,
bad bytes on the serial line, a board that stops answering, a broker restart.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.broker import Broker
from support.harness import make_settings, pty_board_at, running_bridge, wait_until
from support.mqtt_client import publish, publish_properties
from support.recorder import Recorder

from conduyt_bridge.northbound.conduyt.topics import default_bridge_id
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.packet import Packet
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.ptyboard import PtyBoard

BRIDGE_ID = default_bridge_id()
"""The test bridges' `[bridge] id`: the default, this host's name (`docs/fleet.md` §1)."""

DEV = "thermo"


@pytest.fixture
async def pty_board(tmp_path: Path) -> AsyncIterator[PtyBoard]:
    async with pty_board_at(tmp_path / "ttyTHERMO", "thermostat", seed=7) as pb:
        yield pb


def writes(board: SimulatedBoard) -> list[Packet]:
    """DS_WRITE packets the board has received."""
    return [p for p in board.received if p.type == PacketType.DS_WRITE]


@pytest.fixture
def settings_for(mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard):  # type: ignore[no-untyped-def]
    def build(**device: object):  # type: ignore[no-untyped-def]
        assert pty_board.link is not None
        return make_settings(
            mqtt_broker, base_topic, [{"id": DEV, "port": str(pty_board.link), **device}]
        )

    return build


async def test_state_topics_exact(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    p = f"{base_topic}/{DEV}"
    async with Recorder(mqtt_broker, f"{base_topic}/#") as rec, running_bridge(settings_for()):
        state = await rec.wait_for(f"{base_topic}/bridge/{BRIDGE_ID}/state", payload=b"online")
        assert state.retain is True
        status = await rec.wait_for(f"{p}/status", payload=b"online")
        assert status.retain is True and status.qos == 1

        hello = await rec.wait_for(f"{p}/hello")
        assert hello.retain is True
        expected = Packet(PacketType.HELLO_RESP, 0, pty_board.board.hello.encode())
        # The raw HELLO_RESP packet as the board sent it (its seq is the bridge's HELLO's).
        assert hello.payload[:3] == b"CD\x02" and hello.payload[3] == 0x81
        assert hello.payload[7:-1] == expected.payload

        meta = (await rec.wait_for(f"{p}/meta")).json()
        assert meta["firmware"] == {"name": "sim-thermostat", "version": "1.2.0"}
        assert meta["mcu_id"] == "240ac41234560000"
        assert meta["max_payload"] == 512
        assert meta["pins"][4] == {
            "pin": 4,
            "capabilities": ["digital_in", "analog_in"],
            "modes": ["input", "analog", "input_pullup"],
        }
        assert [d["name"] for d in meta["datastreams"]] == [
            "temperature",
            "humidity",
            "setpoint",
            "heater",
        ]
        assert meta["datastreams"][2] == {
            "index": 2,
            "name": "setpoint",
            "type": "float32",
            "unit": "celsius",
            "writable": True,
            "retain": True,
            "topic": f"{p}/ds/setpoint_celsius",
            "set_topic": f"{p}/ds/setpoint_celsius/set",
        }

        temp = await rec.wait_for(f"{p}/ds/temperature_celsius", timeout=4)
        assert temp.retain is False  # read-only datastreams are not retained (retain flag 0)
        value = json.loads(temp.payload)
        assert isinstance(value, float) and 10 < value < 40
        assert len(temp.payload) <= 6, "float32 printed in its shortest round-trip form"
        humidity = await rec.wait_for(f"{p}/ds/humidity_percent", timeout=4)
        assert 20 <= json.loads(humidity.payload) <= 80

        devices = (
            await rec.wait_for(
                f"{base_topic}/bridge/{BRIDGE_ID}/devices", predicate=lambda b: b'"online"' in b
            )
        ).json()
        assert devices[0]["id"] == DEV and devices[0]["state"] == "online"
        assert devices[0]["pin_count"] == 8 and devices[0]["modules"] == []
        assert devices[0]["datastreams"][0]["topic"] == f"{p}/ds/temperature_celsius"

    # Clean shutdown: offline published, retained.
    filters = (f"{base_topic}/+/status", f"{base_topic}/bridge/{BRIDGE_ID}/state")
    async with Recorder(mqtt_broker, *filters) as after:
        assert (await after.wait_for(f"{p}/status")).payload == b"offline"
        state = await after.wait_for(f"{base_topic}/bridge/{BRIDGE_ID}/state")
        assert state.payload == b"offline"


async def test_set_float_and_bool_round_trip(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    p = f"{base_topic}/{DEV}"
    board = pty_board.board
    async with Recorder(mqtt_broker, f"{base_topic}/#") as rec, running_bridge(settings_for()):
        await rec.wait_for(f"{p}/status", payload=b"online")
        await publish(mqtt_broker, f"{p}/ds/setpoint_celsius/set", b"22.5")
        msg = await rec.wait_for(f"{p}/ds/setpoint_celsius")
        assert msg.payload == b"22.5" and msg.retain is True
        assert writes(board)[-1].payload == b"\x02" + struct.pack("<f", 22.5)
        assert board.written[-1] == ("setpoint", 22.5)

        await publish(mqtt_broker, f"{p}/ds/heater/set", b"ON")
        msg = await rec.wait_for(f"{p}/ds/heater")
        assert msg.payload == b"true" and msg.retain is True
        assert writes(board)[-1].payload == b"\x03\x01"

        await publish(mqtt_broker, f"{p}/ds/heater/set", b'{"value": false}')
        await rec.wait_for(f"{p}/ds/heater", payload=b"false")
        assert writes(board)[-1].payload == b"\x03\x00"
        assert rec.messages(f"{p}/error") == []


@pytest.mark.parametrize(
    ("topic", "payload", "report"),
    [
        (
            "ds/temperature_celsius/set",
            b"25",
            {
                "error": "capability",
                "code": None,
                "name": "DATASTREAM_READONLY",
                "message": "datastream 'temperature' is read-only",
            },
        ),
        (
            "ds/setpoint_celsius/set",
            b"warm",
            {
                "error": "payload",
                "code": None,
                "name": "BAD_PAYLOAD",
                "message": "datastream 'setpoint' (FLOAT32) takes a number, not 'warm'",
            },
        ),
        (
            "ds/setpoint_celsius/set",
            b"1e39",
            {
                "error": "capability",
                "code": None,
                "name": "OUT_OF_RANGE",
                "message": "datastream 'setpoint' (FLOAT32): 1e+39 is out of range "
                "-1000000000..1000000000",
            },
        ),
        (
            # Beyond what HA's number entity is told (±1e9), though a finite float32.
            "ds/setpoint_celsius/set",
            b"1000000001",
            {
                "error": "capability",
                "code": None,
                "name": "OUT_OF_RANGE",
                "message": "datastream 'setpoint' (FLOAT32): 1000000001 is out of range "
                "-1000000000..1000000000",
            },
        ),
        (
            "ds/heater/set",
            b"maybe",
            {
                "error": "payload",
                "code": None,
                "name": "BAD_PAYLOAD",
                "message": (
                    "datastream 'heater' (BOOL) takes true/false, on/off or 1/0, not 'maybe'"
                ),
            },
        ),
        (
            "ds/nosuch/set",
            b"1",
            {
                "error": "capability",
                "code": None,
                "name": "UNKNOWN_DATASTREAM",
                "message": "datastream 'nosuch' does not exist on board 'thermo' (datastreams: "
                "heater, humidity_percent, setpoint_celsius, temperature_celsius)",
            },
        ),
        (
            "ds/setpoint_celsius/set",
            b"\xff\xfe",
            {
                "error": "payload",
                "code": None,
                "name": "NOT_UTF8",
                "message": "payload is not UTF-8 text",
            },
        ),
    ],
)
async def test_refusals_report_and_send_nothing(
    mqtt_broker: Broker,
    base_topic: str,
    pty_board: PtyBoard,
    settings_for,
    topic: str,
    payload: bytes,
    report: dict[str, object],
) -> None:
    p = f"{base_topic}/{DEV}"
    async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings_for()):
        await rec.wait_for(f"{p}/status", payload=b"online")
        before = len(pty_board.board.received)
        await publish(mqtt_broker, f"{p}/{topic}", payload)
        error = await rec.wait_for(f"{p}/error")
        assert error.retain is False
        assert error.json() == {"topic": f"{p}/{topic}", **report}
        received = pty_board.board.received[before:]
        assert [q for q in received if q.type != PacketType.PING] == []


async def test_retained_command_is_refused(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    p = f"{base_topic}/{DEV}"
    # A stale retained /set left on the broker before the bridge starts (ghost switching).
    await publish(mqtt_broker, f"{p}/ds/heater/set", b"on", retain=True)
    try:
        async with Recorder(mqtt_broker, f"{p}/error") as rec, running_bridge(settings_for()):
            error = await rec.wait_for(f"{p}/error")
            assert error.json() == {
                "topic": f"{p}/ds/heater/set",
                "error": "forbidden",
                "code": None,
                "name": "RETAINED_COMMAND",
                "message": "retained command ignored: commands must not be published with "
                "the retain flag (a stale retained command would re-run on every "
                "restart)",
            }
            # And while running: a retained publish is refused as well (retain-as-published).
            mark = rec.mark()
            await publish(mqtt_broker, f"{p}/ds/setpoint_celsius/set", b"30", retain=True)
            second = await rec.wait_for_after(mark, f"{p}/error")
            assert second.json()["name"] == "RETAINED_COMMAND"
            assert second.json()["topic"] == f"{p}/ds/setpoint_celsius/set"
            assert writes(pty_board.board) == []
    finally:
        await publish(mqtt_broker, f"{p}/ds/heater/set", b"", retain=True)
        await publish(mqtt_broker, f"{p}/ds/setpoint_celsius/set", b"", retain=True)


async def test_mqtt5_response_topic_and_correlation(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    p = f"{base_topic}/{DEV}"
    reply_topic = f"{base_topic}/client/replies"
    async with (
        Recorder(mqtt_broker, reply_topic, f"{p}/status") as rec,
        running_bridge(settings_for()),
    ):
        await rec.wait_for(f"{p}/status", payload=b"online")
        props = publish_properties(response_topic=reply_topic, correlation_data=b"req-1")
        await publish(
            mqtt_broker,
            f"{p}/ds/setpoint_celsius/set",
            b'{"value": 19.5, "transaction": "t-42"}',
            properties=props,
        )
        ok = await rec.wait_for(reply_topic)
        assert ok.correlation_data == b"req-1"
        assert ok.json() == {"ok": True, "value": 19.5, "transaction": "t-42"}

        props = publish_properties(response_topic=reply_topic, correlation_data=b"req-2")
        mark = rec.mark()
        await publish(mqtt_broker, f"{p}/ds/humidity_percent/set", b"50", properties=props)
        err = await rec.wait_for_after(mark, reply_topic)
        assert err.correlation_data == b"req-2"
        assert err.json() == {
            "ok": False,
            "topic": f"{p}/ds/humidity_percent/set",
            "error": "capability",
            "code": None,
            "name": "DATASTREAM_READONLY",
            "message": "datastream 'humidity' is read-only",
        }


async def test_unplug_replug_reruns_handshake_and_replays(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    p = f"{base_topic}/{DEV}"
    board = pty_board.board
    async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings_for()) as bridge:
        await rec.wait_for(f"{p}/status", payload=b"online")
        await publish(mqtt_broker, f"{p}/ds/setpoint_celsius/set", b"23.25")
        await rec.wait_for(f"{p}/ds/setpoint_celsius", payload=b"23.25")

        mark = rec.mark()
        await pty_board.unplug()
        await rec.wait_for_after(mark, f"{p}/status", payload=b"offline", timeout=5)
        assert bridge.sessions[DEV].online is False

        board.received.clear()
        await pty_board.replug()  # a USB replug reboots the board: it forgot the setpoint
        assert board.datastream_values["setpoint"] == 21.0
        await rec.wait_for_after(mark, f"{p}/status", payload=b"online", timeout=10)
        await wait_until(lambda: board.datastream_values["setpoint"] == 23.25)
        types = [q.type for q in board.received]
        # Handshake routine: HELLO, RESET, STREAM_STOP, then the replay of retained values.
        assert types[:4] == [
            PacketType.HELLO,
            PacketType.RESET,
            PacketType.STREAM_STOP,
            PacketType.DS_WRITE,
        ]
        assert board.received[3].payload == b"\x02" + struct.pack("<f", 23.25)
        assert bridge.sessions[DEV].stats.reconnects >= 1


async def test_garbage_and_crc_errors_on_the_line(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    p = f"{base_topic}/{DEV}"
    board = pty_board.board
    async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings_for()) as bridge:
        await rec.wait_for(f"{p}/status", payload=b"online")
        board.faults.garbage = b"ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\n"
        board.faults.corrupt_crc = 1
        await rec.wait_for_new(f"{p}/ds/temperature_celsius", timeout=4)
        # The line's garbage cost at most one frame; the board stays online and keeps working.
        await publish(mqtt_broker, f"{p}/ds/setpoint_celsius/set", b"20")
        await rec.wait_for(f"{p}/ds/setpoint_celsius", payload=b"20.0")
        stats = bridge.sessions[DEV].stats
        assert stats.frame_errors >= 1
        # The corrupted CRC is counted apart from framing errors, in health too.
        assert stats.crc_errors >= 1
        assert stats.frame_errors == stats.crc_errors + stats.framing_errors
        counters = bridge.health()["boards"][DEV]
        assert (counters["crc_errors"], counters["framing_errors"]) == (
            stats.crc_errors,
            stats.framing_errors,
        )
        assert bridge.sessions[DEV].online
        assert rec.messages(f"{p}/error") == []


async def test_board_that_stops_answering_goes_offline_and_returns(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    p = f"{base_topic}/{DEV}"
    board = pty_board.board
    async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings_for()) as bridge:
        await rec.wait_for(f"{p}/status", payload=b"online")
        mark = rec.mark()
        board.faults.silent = True
        offline = await rec.wait_for_after(mark, f"{p}/status", payload=b"offline", timeout=6)
        assert offline.retain is True
        assert "keepalive" in (bridge.sessions[DEV].last_error or "")
        # While offline a command fails fast with `disconnected`.
        await publish(mqtt_broker, f"{p}/ds/heater/set", b"on")
        err = await rec.wait_for_after(mark, f"{p}/error", timeout=3)
        assert err.json()["error"] == "disconnected"
        board.faults.silent = False
        await rec.wait_for_after(mark, f"{p}/status", payload=b"online", timeout=10)


async def test_timeout_maps_to_timeout_error(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    p = f"{base_topic}/{DEV}"
    async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings_for()):
        await rec.wait_for(f"{p}/status", payload=b"online")
        pty_board.board.faults.drop_replies = 1
        await publish(mqtt_broker, f"{p}/ds/heater/set", b"1")
        err = (await rec.wait_for(f"{p}/error")).json()
        assert err == {
            "topic": f"{p}/ds/heater/set",
            "error": "timeout",
            "code": None,
            "name": "TIMEOUT",
            "message": "no answer to DS_WRITE within 500 ms",
        }


async def test_nak_maps_to_nak_error(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    p = f"{base_topic}/{DEV}"
    async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings_for()):
        await rec.wait_for(f"{p}/status", payload=b"online")
        pty_board.board.faults.nak[PacketType.DS_WRITE] = 0x0E
        await publish(mqtt_broker, f"{p}/ds/heater/set", b"1")
        err = (await rec.wait_for(f"{p}/error")).json()
        assert err == {
            "topic": f"{p}/ds/heater/set",
            "error": "nak",
            "code": 14,
            "name": "DATASTREAM_READONLY",
            "message": "board refused DS_WRITE: DATASTREAM_READONLY (0x0e)",
        }
        assert rec.messages(f"{p}/ds/heater") == []


async def test_broker_restart_republishes_and_delivers_queued_command(
    restartable_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    broker = restartable_broker
    p = f"{base_topic}/{DEV}"
    board = pty_board.board
    settings = settings_for()
    settings.mqtt.reconnect_max_s = 2.0
    async with running_bridge(settings) as bridge:
        async with Recorder(broker, f"{p}/status") as rec:
            await rec.wait_for(f"{p}/status", payload=b"online")
        await broker.astop()
        await wait_until(lambda: not bridge.mqtt.connected, timeout_s=5)
        # Wait for a failed reconnect with a long backoff ahead, so the /set below is
        # published while the bridge is still away (its session queues it, QoS 1).
        await wait_until(lambda: bridge.mqtt.reconnects >= 3, timeout_s=15)
        seen = bridge.mqtt.reconnects
        await wait_until(lambda: bridge.mqtt.reconnects > seen, timeout_s=10)
        await broker.astart()
        await publish(broker, f"{p}/ds/setpoint_celsius/set", b"24.5", qos=1)
        assert not bridge.mqtt.connected, "the bridge reconnected before the command was queued"
        async with Recorder(broker, f"{p}/#", f"{base_topic}/bridge/#") as rec:
            await rec.wait_for(f"{p}/ds/setpoint_celsius", payload=b"24.5", timeout=10)
            await rec.wait_for(f"{base_topic}/bridge/{BRIDGE_ID}/state", payload=b"online")
            await rec.wait_for(f"{p}/status", payload=b"online")
            await rec.wait_for(f"{p}/meta")
            await asyncio.sleep(0.5)
        assert [w for w in board.written if w[0] == "setpoint"] == [("setpoint", 24.5)]
        assert bridge.mqtt.reconnects >= 1


async def test_retained_value_survives_bridge_restart_and_board_reboot(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    p = f"{base_topic}/{DEV}"
    board = pty_board.board
    async with Recorder(mqtt_broker, f"{p}/#") as rec:
        async with running_bridge(settings_for()):
            await rec.wait_for(f"{p}/status", payload=b"online")
            await publish(mqtt_broker, f"{p}/ds/heater/set", b"on")
            await rec.wait_for(f"{p}/ds/heater", payload=b"true")
        # The gateway lost power: bridge gone, board rebooted (heater off again).
        board.reboot()
        assert board.datastream_values["heater"] is False
        board.written.clear()
        async with running_bridge(settings_for()):
            await wait_until(lambda: board.datastream_values["heater"] is True, timeout_s=8)
        assert board.written == [("heater", True)]


async def test_command_queued_while_away_waits_for_the_handshake(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    p = f"{base_topic}/{DEV}"
    board = pty_board.board
    async with running_bridge(settings_for()):
        pass  # creates the bridge's persistent session on the broker
    # Published while the bridge is away: the broker queues it (QoS 1) ...
    await publish(mqtt_broker, f"{p}/ds/heater/set", b"on", qos=1)
    # ... and delivers it the moment the bridge reconnects, while this board (like an Uno
    # that resets when its port opens) does not answer HELLO for a while yet.
    board.faults.silent = True
    async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings_for()):
        await asyncio.sleep(1.0)
        assert board.written == []
        board.faults.silent = False
        await rec.wait_for(f"{p}/ds/heater", payload=b"true", timeout=10)
        assert board.written == [("heater", True)]
        assert rec.messages(f"{p}/error") == []


async def test_read_only_board_gets_no_replay(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    p = f"{base_topic}/{DEV}"
    board = pty_board.board
    async with Recorder(mqtt_broker, f"{p}/#") as rec:
        async with running_bridge(settings_for()):
            await rec.wait_for(f"{p}/status", payload=b"online")
            await publish(mqtt_broker, f"{p}/ds/setpoint_celsius/set", b"30")
            await rec.wait_for(f"{p}/ds/setpoint_celsius", payload=b"30.0")
        board.reboot()
        board.written.clear()
        async with running_bridge(settings_for(read_only=True)) as bridge:
            await wait_until(lambda: bridge.sessions[DEV].online, timeout_s=8)
            await asyncio.sleep(0.5)
        assert board.written == []


async def test_reboot_behind_an_open_port_is_noticed(
    mqtt_broker: Broker, base_topic: str, pty_board: PtyBoard, settings_for
) -> None:
    p = f"{base_topic}/{DEV}"
    board = pty_board.board
    async with Recorder(mqtt_broker, f"{p}/#") as rec, running_bridge(settings_for()) as bridge:
        await rec.wait_for(f"{p}/status", payload=b"online")
        await publish(mqtt_broker, f"{p}/ds/heater/set", b"on")
        await rec.wait_for(f"{p}/ds/heater", payload=b"true")
        board.written.clear()
        # The reset button: the port stays open, the board forgets everything and its
        # boot ROM prints a banner in front of the next frame.
        board.reboot()
        board.faults.garbage = b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET)\r\n"
        await wait_until(lambda: board.datastream_values["heater"] is True, timeout_s=5)
        assert board.written == [("heater", True)]
        assert bridge.sessions[DEV].online
        assert bridge.sessions[DEV].stats.reconnects == 0
