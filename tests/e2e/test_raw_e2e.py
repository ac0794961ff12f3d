"""Raw packets end to end: `cmd[/{tt}]` → validated → board → `evt/{tt}` with the client's
SEQ; events raw only when they have no typed topic (all of them with `raw_mirror`);
simulated board on a real pty, real Mosquitto.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.broker import Broker
from support.harness import wait_until
from support.mqtt_client import publish
from support.recorder import Received
from support.rig import Rig, rig

from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.packet import Packet, decode_packet, encode_packet


def pkt(type_: int, seq: int, payload: bytes = b"") -> bytes:
    return encode_packet(type_, seq, payload)


async def raw(r: Rig, packet: bytes, tt: str | None = None) -> tuple[dict[str, Any], int]:
    """Publish a raw packet on `cmd/{tt}` (bare `cmd` if None); (reply doc, recorder mark)."""
    mark = r.rec.mark()
    suffix = "cmd" if tt is None else f"cmd/{tt}"
    return await r.request(suffix, packet), mark


async def evt(r: Rig, mark: int, tt: str) -> Received:
    return await r.rec.wait_for_after(mark, f"{r.p}/evt/{tt}")


@pytest.fixture
async def uno(mqtt_broker: Broker, base_topic: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with rig(mqtt_broker, base_topic, tmp_path, "uno") as r:
        yield r


async def test_ping_hello_and_seq_remapping(uno: Rig) -> None:
    board = uno.board
    mark_board = uno.mark()
    reply, mark = await raw(uno, pkt(PacketType.PING, 77), "01")
    pong = await evt(uno, mark, "80")
    assert pong.payload == pkt(PacketType.PONG, 77)
    assert (pong.retain, pong.qos) == (False, 1)
    assert reply == {"ok": True, "type": "PONG", "seq": 77, "packet": pong.payload.hex()}
    forwarded = board.received[mark_board:]
    assert [(p.type, p.payload) for p in forwarded] == [(PacketType.PING, b"")]
    assert 1 <= forwarded[0].seq <= 255  # the bridge's own sequence number
    # HELLO (seq 0, bare topic as conduyt-py sends it) is answered from the cached HELLO_RESP
    mark_board = uno.mark()
    reply, mark = await raw(uno, pkt(PacketType.HELLO, 0))
    hello = await evt(uno, mark, "81")
    assert hello.payload == pkt(PacketType.HELLO_RESP, 0, board.hello.encode())
    assert uno.sent(mark_board) == []  # not sent to the board
    # Two clients using the same SEQ never collide: each gets its own answer.
    mark = uno.rec.mark()
    await asyncio.gather(
        publish(uno.broker, f"{uno.p}/cmd", pkt(PacketType.PING, 5)),
        publish(uno.broker, f"{uno.p}/cmd", pkt(PacketType.PIN_READ, 5, b"\x0e\x03")),
    )
    await uno.rec.wait_for_after(mark, f"{uno.p}/evt/80", payload=pkt(PacketType.PONG, 5))
    resp = await uno.rec.wait_for_after(mark, f"{uno.p}/evt/91")
    assert decode_packet(resp.payload).seq == 5


async def test_pins_validated_like_typed_topics(uno: Rig) -> None:
    mark_board = uno.mark()
    reply, mark = await raw(uno, pkt(PacketType.PIN_MODE, 9, b"\x0d\x00"), "10")
    assert (await evt(uno, mark, "82")).payload == pkt(PacketType.ACK, 9)
    # pin 13 is now known to be an input: a raw write is refused like pin/13/set
    reply, mark = await raw(uno, pkt(PacketType.PIN_WRITE, 10, b"\x0d\x01"), "11")
    assert reply == {
        "ok": False,
        "topic": f"{uno.p}/cmd/11",
        "error": "capability",
        "code": None,
        "name": "WRONG_PIN_MODE",
        "message": "pin 13 is in input mode: set mode output first",
    }
    # …and answered on evt/83 with the client's SEQ and the firmware's nearest code
    nak = await evt(uno, mark, "83")
    assert nak.payload == pkt(PacketType.NAK, 10, b"\x05")
    report = await uno.rec.wait_for_after(mark, f"{uno.p}/error")
    assert report.json() == {k: v for k, v in reply.items() if k != "ok"}
    # the typed topic sees the mode set raw, and vice versa
    await uno.request("pin/13/mode/set", "output")
    reply, mark = await raw(uno, pkt(PacketType.PIN_WRITE, 11, b"\x0d\x01"), "11")
    assert (await evt(uno, mark, "82")).payload == pkt(PacketType.ACK, 11)
    assert uno.sent(mark_board) == [
        (PacketType.PIN_MODE, b"\x0d\x00"),
        (PacketType.PIN_MODE, b"\x0d\x01"),
        (PacketType.PIN_WRITE, b"\x0d\x01"),  # forwarded as sent: no mode byte added
    ]
    # pin that does not exist → NAK INVALID_PIN
    reply, mark = await raw(uno, pkt(PacketType.PIN_MODE, 12, b"\x2a\x01"), "10")
    assert reply["message"] == "pin 42 does not exist: this board has 20 pins"
    assert (await evt(uno, mark, "83")).payload == pkt(PacketType.NAK, 12, b"\x04")


@pytest.mark.parametrize(
    ("tt", "data", "name", "message"),
    [
        (
            "10",
            b"XY\x02\x10\x01\x02\x00\x0d\x01\x00",
            "BAD_MAGIC",
            "not a valid Conduyt packet: bad magic: 58 59 (expected 43 44)",
        ),
        (
            "01",
            bytes.fromhex("4344010100000048"),
            "VERSION_MISMATCH",
            "not a valid Conduyt packet: protocol version mismatch: got 1, expected 2 (board "
            "runs protocol-v1 firmware; re-flash it)",
        ),
        (
            "01",
            bytes.fromhex("430244020100000000")[1:],
            "BAD_MAGIC",
            "not a valid Conduyt packet: bad magic: 02 44 (expected 43 44)",
        ),
        (
            "11",
            bytes.fromhex("434402110102000d0195"),
            "CRC_MISMATCH",
            "not a valid Conduyt packet: CRC mismatch: computed 0x94, packet says 0x95",
        ),
        (
            "11",
            bytes.fromhex("434402110102000d"),
            "TRUNCATED",
            "not a valid Conduyt packet: truncated packet: need 10 bytes, got 8",
        ),
        (
            "01",
            pkt(PacketType.PING, 1) + pkt(PacketType.PING, 2),
            "TRAILING_BYTES",
            "8 bytes after the 8-byte packet: one message must hold exactly one packet",
        ),
        (
            "11",
            pkt(PacketType.PIN_MODE, 1, b"\x0d\x01"),
            "TYPE_MISMATCH",
            "topic says TYPE 0x11 (PIN_WRITE) but the packet is 0x10 (PIN_MODE)",
        ),
        (
            "zz",
            pkt(PacketType.PING, 1),
            "BAD_TOPIC",
            "topic level 'zz' is not a packet TYPE in hex (e.g. cmd/11 for PIN_WRITE)",
        ),
    ],
)
async def test_undecodable_packets(uno: Rig, tt: str, data: bytes, name: str, message: str) -> None:
    mark = uno.rec.mark()
    report = await uno.refused(f"cmd/{tt}", data)
    assert report == {
        "topic": f"{uno.p}/cmd/{tt}",
        "error": "payload",
        "code": None,
        "name": name,
        "message": message,
    }
    assert uno.rec.since(mark, f"{uno.p}/evt/#") == []  # no SEQ to answer with


@pytest.mark.parametrize(
    ("packet", "error", "name", "nak", "message"),
    [
        (
            pkt(PacketType.ACK, 3),
            "capability",
            "UNKNOWN_TYPE",
            0x01,
            "ACK (0x82) is an event type (0x80..0xFF), not a command: the board would NAK it "
            "UNKNOWN_TYPE",
        ),
        (
            pkt(PacketType.OTA_BEGIN, 3, bytes(36)),
            "forbidden",
            "OTA_DISABLED",
            0x0F,
            "OTA_BEGIN refused: OTA packets are disabled for this board (allow_ota = false)",
        ),
        (
            pkt(PacketType.DS_READ, 3, b"\x00"),
            "capability",
            "UNKNOWN_DATASTREAM",
            0x0D,
            "DS_READ is not supported by the firmware (it NAKs every DS_READ "
            "UNKNOWN_DATASTREAM): read the retained state topic ds/{slug}",
        ),
        (
            pkt(PacketType.PIN_UNSUBSCRIBE, 3, b"\x0e"),
            "capability",
            "INVALID_PIN",
            0x04,
            "pin 14 has no active subscription (the board would NAK INVALID_PIN)",
        ),
        (
            pkt(PacketType.PIN_SUBSCRIBE, 3, b"\x0e\x04\x64\x00"),
            "payload",
            "BAD_LENGTH",
            0x04,
            "PIN_SUBSCRIBE payload must be 7 bytes [pin, mode, interval u16le, threshold "
            "u16le, 0x00], got 4",
        ),
        (
            pkt(PacketType.I2C_WRITE, 3, b"\x07\x00"),
            "capability",
            "I2C_NOT_AVAILABLE",
            0x06,
            "I2C address 0x07 is outside 0x08..0x77",
        ),
        (
            pkt(PacketType.I2C_WRITE, 3, b"\x3c" + bytes(124)),
            "capability",
            "PAYLOAD_TOO_LARGE",
            0x03,
            "I2C_WRITE payload of 125 bytes exceeds this board's limit of 124 bytes",
        ),
        (
            pkt(PacketType.STREAM_START, 3, b"\x40\x00\x64\x00\x00"),
            "capability",
            "PIN_MODE_UNSUPPORTED",
            0x05,
            "STREAM_START bit 6 has no analog input behind it (analog pins: 14, 15, 16, 17, "
            "18, 19)",
        ),
        (
            pkt(PacketType.MOD_CMD, 3, b"\x00\x01"),
            "capability",
            "MODULE_NOT_LOADED",
            0x08,
            "no module with id 0 on this board (modules: none)",
        ),
    ],
)
async def test_refusals_answer_with_a_nak(
    uno: Rig, packet: bytes, error: str, name: str, nak: int, message: str
) -> None:
    report = await uno.refused("cmd", packet)
    assert report == {
        "topic": f"{uno.p}/cmd",
        "error": error,
        "code": None,
        "name": name,
        "message": message,
    }
    got = await uno.rec.wait_for(f"{uno.p}/evt/83")
    assert got.payload == pkt(PacketType.NAK, 3, bytes((nak,)))


async def test_board_nak_and_timeout(uno: Rig) -> None:
    uno.board.faults.nak[PacketType.PIN_WRITE] = 0x04
    reply, mark = await raw(uno, pkt(PacketType.PIN_WRITE, 200, b"\x0d\x01"), "11")
    assert reply == {
        "ok": False,
        "topic": f"{uno.p}/cmd/11",
        "error": "nak",
        "code": 4,
        "name": "INVALID_PIN",
        "message": "board refused PIN_WRITE: INVALID_PIN (0x04)",
    }
    assert (await evt(uno, mark, "83")).payload == pkt(PacketType.NAK, 200, b"\x04")
    uno.board.faults.nak.clear()
    uno.board.faults.drop_replies = 1
    reply, mark = await raw(uno, pkt(PacketType.PING, 201), "01")
    assert (reply["error"], reply["message"]) == ("timeout", "no answer to PING within 500 ms")
    await asyncio.sleep(0.2)
    assert uno.rec.since(mark, f"{uno.p}/evt/#") == []  # a timeout gets no packet


async def test_buses_streams_and_reset(uno: Rig) -> None:
    board = uno.board
    mark_board = uno.mark()
    _, mark = await raw(uno, pkt(PacketType.I2C_READ, 1, b"\x3c\x04"), "21")
    assert (await evt(uno, mark, "a0")).payload == pkt(PacketType.I2C_READ_RESP, 1)  # nobody there
    _, mark = await raw(uno, pkt(PacketType.SPI_XFER, 2, b"\x0a\x01\x02"), "30")
    assert (await evt(uno, mark, "b0")).payload == pkt(PacketType.SPI_XFER_RESP, 2, b"\xff\xff")
    board.set_pin(14, 321)
    _, mark = await raw(uno, pkt(PacketType.STREAM_START, 3, b"\x01\x00\x0a\x00\x00"), "50")
    data = await uno.rec.wait_for_after(mark, f"{uno.p}/evt/d0")
    assert data.payload == pkt(PacketType.STREAM_DATA, 0, struct.pack("<H", 321))  # bit 0 = A0
    _, mark = await raw(uno, pkt(PacketType.STREAM_STOP, 4), "51")
    await evt(uno, mark, "82")
    # a subscription of the bridge survives a client's RESET; the client's own does not
    await uno.request("pin/15/subscribe/set", '{"mode": "analog_poll", "interval_ms": 1000}')
    _, mark = await raw(uno, pkt(PacketType.PIN_SUBSCRIBE, 5, b"\x10\x04\xe8\x03\x00\x00\x00"))
    assert (await evt(uno, mark, "82")).payload == pkt(PacketType.ACK, 5)
    _, mark = await raw(uno, pkt(PacketType.RESET, 6), "F0")  # upper-case hex accepted
    assert (await evt(uno, mark, "82")).payload == pkt(PacketType.ACK, 6)
    await wait_until(lambda: uno.sent(mark_board)[-1][0] == PacketType.PIN_SUBSCRIBE)
    assert uno.sent(mark_board) == [
        (PacketType.I2C_READ, b"\x3c\x04"),
        (PacketType.SPI_XFER, b"\x0a\x01\x02"),
        (PacketType.STREAM_START, b"\x01\x00\x0a\x00\x00"),
        (PacketType.STREAM_STOP, b""),
        (PacketType.PIN_SUBSCRIBE, b"\x0f\x04\xe8\x03\x00\x00\x00"),
        (PacketType.PIN_SUBSCRIBE, b"\x10\x04\xe8\x03\x00\x00\x00"),
        (PacketType.RESET, b""),
        (PacketType.PIN_SUBSCRIBE, b"\x0f\x04\xe8\x03\x00\x00\x00"),  # re-applied
    ]
    assert [s.pin for s in board.subscriptions.slots] == [15]


async def test_raw_edge_subscription_is_served_by_the_bridge(uno: Rig) -> None:
    board = uno.board
    board.set_pin(2, 0)
    mark_board = uno.mark()
    _, mark = await raw(uno, pkt(PacketType.PIN_SUBSCRIBE, 8, b"\x02\x01\x14\x00\x00\x00\x00"))
    assert (await evt(uno, mark, "82")).payload == pkt(PacketType.ACK, 8)  # from the bridge
    board.set_pin(2, 1)
    event = await uno.rec.wait_for_after(
        mark, f"{uno.p}/evt/90", payload=pkt(PacketType.PIN_EVENT, 0, b"\x02\x01\x00")
    )
    assert event.qos == 0
    await uno.rec.wait_for_after(mark, f"{uno.p}/pin/2", payload=b"1")
    _, mark = await raw(uno, pkt(PacketType.PIN_UNSUBSCRIBE, 9, b"\x02"))
    assert (await evt(uno, mark, "82")).payload == pkt(PacketType.ACK, 9)
    assert {t for t, _ in uno.sent(mark_board)} == {PacketType.PIN_READ}  # polls only


@pytest.fixture
async def thermo(mqtt_broker: Broker, base_topic: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with rig(mqtt_broker, base_topic, tmp_path, "thermostat", "thermo", allow_ota=True) as r:
        yield r


async def test_ds_write_ota_and_event_mirror(thermo: Rig) -> None:
    board = thermo.board
    value = struct.pack("<f", 22.5)
    reply, mark = await raw(thermo, pkt(PacketType.DS_WRITE, 40, b"\x02" + value), "60")
    assert (await evt(thermo, mark, "82")).payload == pkt(PacketType.ACK, 40)
    assert board.written[-1] == ("setpoint", 22.5)
    state = await thermo.rec.wait_for_after(mark, f"{thermo.p}/ds/setpoint_celsius")
    assert (state.payload, state.retain) == (b"22.5", True)  # state follows, like ds/…/set
    reply, mark = await raw(thermo, pkt(PacketType.DS_WRITE, 41, b"\x00" + value), "60")
    assert reply["name"] == "DATASTREAM_READONLY"
    assert (await evt(thermo, mark, "83")).payload == pkt(PacketType.NAK, 41, b"\x0e")
    # OTA allowed by config on an OTA-capable board: forwarded
    mark_board = thermo.mark()
    reply, mark = await raw(
        thermo, pkt(PacketType.OTA_BEGIN, 42, struct.pack("<I", 4) + bytes(32)), "70"
    )
    assert (await evt(thermo, mark, "82")).payload == pkt(PacketType.ACK, 42)
    assert thermo.sent(mark_board) == [(PacketType.OTA_BEGIN, struct.pack("<I", 4) + bytes(32))]
    # by default a DS_EVENT is published once, on its typed topic: never raw on evt/d1
    mark = thermo.rec.mark()
    for _ in range(2):
        await thermo.rec.wait_for_after(mark, f"{thermo.p}/ds/temperature_celsius", timeout=3)
        mark = thermo.rec.mark()
    assert thermo.rec.messages(f"{thermo.p}/evt/d1") == []


async def test_raw_mirror_option_mirrors_every_event(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    async with rig(mqtt_broker, base_topic, tmp_path, "thermostat", "mirror", raw_mirror=True) as r:
        # DS_EVENTs of temperature/humidity, raw with seq 0, besides their typed topics
        mirrored = await r.rec.wait_for(f"{r.p}/evt/d1", timeout=3)
        packet = decode_packet(mirrored.payload)
        assert (packet.seq, mirrored.qos, mirrored.retain) == (0, 0, False)
        assert packet.payload[0] in (0, 1)
        assert packet in r.board.sent
        # a PIN_EVENT of the bridge's own subscription is mirrored too
        r.board.set_pin(4, 700)
        await r.request("pin/4/subscribe/set", '{"mode": "analog_poll", "interval_ms": 100}')
        await r.rec.wait_for(f"{r.p}/pin/4", payload=b"700")
        event = await r.rec.wait_for(f"{r.p}/evt/90")
        assert event.payload == pkt(PacketType.PIN_EVENT, 0, struct.pack("<BH", 4, 700))


async def test_pin_events_of_a_raw_subscription_answer_on_evt_90(uno: Rig) -> None:
    """Without `raw_mirror`, `evt/90` carries the PIN_EVENTs of pins a raw client
    subscribed to (they answer its `cmd/13`), not those of the bridge's own subscriptions."""
    board = uno.board
    board.set_pin(14, 700)
    board.set_pin(15, 300)
    await uno.request("pin/15/subscribe/set", '{"mode": "analog_poll", "interval_ms": 100}')
    _, mark = await raw(uno, pkt(PacketType.PIN_SUBSCRIBE, 7, b"\x0e\x04\x64\x00\x00\x00\x00"))
    assert (await evt(uno, mark, "82")).payload == pkt(PacketType.ACK, 7)
    await uno.rec.wait_for_after(
        mark, f"{uno.p}/evt/90", payload=pkt(PacketType.PIN_EVENT, 0, struct.pack("<BH", 14, 700))
    )
    await uno.rec.wait_for(f"{uno.p}/pin/14", payload=b"700")
    await wait_until(lambda: len(uno.rec.messages(f"{uno.p}/pin/15")) >= 2)
    assert {decode_packet(m.payload).payload[0] for m in uno.rec.messages(f"{uno.p}/evt/90")} == {
        14
    }


async def test_mod_cmd_raw(mqtt_broker: Broker, base_topic: str, tmp_path: Path) -> None:
    async with rig(mqtt_broker, base_topic, tmp_path, "kitchen") as r:
        reply, mark = await raw(r, pkt(PacketType.MOD_CMD, 1, b"\x00\x02\x5a"), "40")
        assert (await evt(r, mark, "82")).payload == pkt(PacketType.ACK, 1)
        reply, mark = await raw(r, pkt(PacketType.MOD_CMD, 2, b"\x00\x02\xc8"), "40")
        assert (reply["error"], reply["name"], reply["message"]) == (
            "payload",
            "BAD_ARGUMENT",
            "servo.write: angle must be an integer 0..180, got 200",
        )
        assert (await evt(r, mark, "83")).payload == pkt(PacketType.NAK, 2, b"\x09")
        # pin arguments are checked like the typed topic's: servo attach pin 200 on a 10-pin
        # board is refused with the same report, NAKed INVALID_PIN, and never sent
        mark = r.rec.mark()
        report = await r.refused(
            "cmd/40", pkt(PacketType.MOD_CMD, 4, b"\x00\x01\xc8\x00\x00\x00\x00")
        )
        assert report == {
            "topic": f"{r.p}/cmd/40",
            "error": "capability",
            "code": None,
            "name": "INVALID_PIN",
            "message": "servo.attach: pin 200 does not exist: this board has 10 pins",
        }
        assert (await evt(r, mark, "83")).payload == pkt(PacketType.NAK, 4, b"\x04")
        assert [p.payload for p in r.board.received if p.type == PacketType.MOD_CMD] == [
            b"\x00\x02\x5a"
        ]
        await r.request("module/dht/begin", "[4]")
        reply, mark = await raw(r, pkt(PacketType.MOD_CMD, 3, b"\x02\x02"), "40")
        resp = await evt(r, mark, "c1")
        assert decode_packet(resp.payload) == Packet(
            PacketType.MOD_RESP,
            3,
            next(p for p in reversed(r.board.sent) if p.type == 0xC1).payload,
        )


async def test_mod_cmd_raw_pid_input_needs_an_adc_pin(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    """A raw pid set_input on a pin without ANALOG_IN (the board would analogRead it
    unguarded every 100 ms, §4.2) is refused like the typed topic: NAK 0x05, nothing sent."""
    async with rig(mqtt_broker, base_topic, tmp_path, "workshop") as r:
        mark = r.rec.mark()
        report = await r.refused("cmd", pkt(PacketType.MOD_CMD, 7, b"\x03\x03\x04"))
        assert report == {
            "topic": f"{r.p}/cmd",
            "error": "capability",
            "code": None,
            "name": "PIN_MODE_UNSUPPORTED",
            "message": "pid.set_input: pin 4 supports input, output, pwm, input_pullup; not "
            "analog (analog pins: 12, 13, 14)",
        }
        assert (await evt(r, mark, "83")).payload == pkt(PacketType.NAK, 7, b"\x05")
        assert [p for p in r.board.received if p.type == PacketType.MOD_CMD] == []
        reply, mark = await raw(r, pkt(PacketType.MOD_CMD, 8, b"\x03\x03\x0c"), "40")
        assert reply == {"ok": True, "type": "ACK", "seq": 8, "packet": pkt(0x82, 8).hex()}
        assert (await evt(r, mark, "82")).payload == pkt(PacketType.ACK, 8)
        assert [p.payload for p in r.board.received if p.type == PacketType.MOD_CMD] == [
            b"\x03\x03\x0c"
        ]


async def test_allow_raw_false_and_read_only(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    async with rig(mqtt_broker, base_topic, tmp_path, "thermostat", "closed", allow_raw=False) as r:
        report = await r.refused("cmd/01", pkt(PacketType.PING, 1))
        assert report == {
            "topic": f"{r.p}/cmd/01",
            "error": "forbidden",
            "code": None,
            "name": "RAW_DISABLED",
            "message": "raw packets are disabled for board 'closed' (allow_raw = false)",
        }
        await r.rec.wait_for(f"{r.p}/ds/temperature_celsius", timeout=3)
        await asyncio.sleep(1.1)
        assert r.rec.messages(f"{r.p}/evt/#") == []  # no mirror, no answers
    async with rig(mqtt_broker, base_topic, tmp_path, "uno", "ro", read_only=True) as r:
        report = await r.refused("cmd", pkt(PacketType.PING, 1))
        assert (report["error"], report["name"]) == ("forbidden", "READ_ONLY")
