"""Unit tests of the simulated board (conduyt_bridge/simulator) through its sans-IO API.

Expected bytes come from `docs/protocol.md` (§4.2 rules, §11.3 worked examples).
"""

from __future__ import annotations

import dataclasses
import struct

import pytest

from conduyt_bridge.protocol import (
    CobsDeframer,
    DatastreamType,
    ErrorCode,
    Packet,
    PacketType,
    PinMode,
    RawDeframer,
    SubscribeMode,
    cobs_frame,
    encode_packet,
    parse_hello,
)
from conduyt_bridge.protocol import commands as cmds
from conduyt_bridge.simulator import (
    PROFILES,
    DatastreamSpec,
    ModuleSpec,
    Profile,
    SimulatedBoard,
    get_profile,
    with_push_interval,
)
from conduyt_bridge.simulator.modules import Dht, Encoder, NeoPixel, Servo
from conduyt_bridge.simulator.peripherals import RegisterDevice

T = PacketType


def frame(type_: int, seq: int, payload: bytes = b"") -> bytes:
    """A host command, COBS-framed as on a serial link."""
    return cobs_frame(encode_packet(type_, seq, payload))


def reply_bytes(type_: int, seq: int, payload: bytes = b"") -> bytes:
    """What the board must send back, framed."""
    return cobs_frame(encode_packet(type_, seq, payload))


def packets(data: bytes) -> list[Packet]:
    return CobsDeframer().feed(data)


def send(
    board: SimulatedBoard, type_: int, seq: int, payload: bytes = b"", now: float = 0.0
) -> bytes:
    return board.receive(frame(type_, seq, payload), now)


def ask(
    board: SimulatedBoard, type_: int, seq: int, payload: bytes = b"", now: float = 0.0
) -> Packet:
    """Send one command and return its single reply."""
    out = packets(send(board, type_, seq, payload, now))
    assert len(out) == 1, out
    assert out[0].seq == seq
    return out[0]


def nak(code: int, seq: int) -> bytes:
    return reply_bytes(T.NAK, seq, bytes((code,)))


def ack(seq: int) -> bytes:
    return reply_bytes(T.ACK, seq)


@pytest.fixture
def thermo() -> SimulatedBoard:
    return SimulatedBoard(get_profile("thermostat"), seed=1)


@pytest.fixture
def uno() -> SimulatedBoard:
    return SimulatedBoard(get_profile("uno"), seed=1)


@pytest.fixture
def kitchen() -> SimulatedBoard:
    return SimulatedBoard(get_profile("kitchen"), seed=1)


@pytest.fixture
def workshop() -> SimulatedBoard:
    return SimulatedBoard(get_profile("workshop"), seed=1)


# --------------------------------------------------------------------- framing, §3.1


def test_ping_pong_exact_bytes(thermo: SimulatedBoard) -> None:
    assert send(thermo, T.PING, 0) == bytes.fromhex("05 43 44 02 80 01 01 02 66 00")
    assert send(thermo, T.PING, 5) == reply_bytes(T.PONG, 5)


def test_ack_exact_bytes(thermo: SimulatedBoard) -> None:
    assert send(thermo, T.PIN_MODE, 5, bytes((1, 1))) == bytes.fromhex(
        "06 43 44 02 82 05 01 02 0e 00"
    )


def test_nak_exact_bytes(thermo: SimulatedBoard) -> None:
    # NAK INVALID_PIN seq 5, the §11.3 vector.
    assert send(thermo, T.PIN_MODE, 5, b"\x01") == bytes.fromhex("07 43 44 02 83 05 01 03 04 4e 00")


def test_crc_failure_is_naked_with_seq_0(thermo: SimulatedBoard) -> None:
    bad = bytearray(encode_packet(T.PING, 9))
    bad[-1] ^= 0x55
    out = thermo.receive(cobs_frame(bytes(bad)), 0.0)
    assert out == cobs_frame(bytes.fromhex("43 44 02 83 00 01 00 02 7d"))
    assert thermo.received == []  # not decodable, not logged


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"\x00\x00", id="empty-frames"),
        pytest.param(b"\x05\x43\x00", id="bad-cobs"),
        pytest.param(cobs_frame(b"XY" + encode_packet(T.PING, 1)[2:]), id="bad-magic"),
        pytest.param(cobs_frame(bytes.fromhex("43 44 01 01 00 00 00 48")), id="v1-packet"),
        pytest.param(cobs_frame(encode_packet(T.PING, 1)[:-3]), id="truncated"),
        pytest.param(b"hello world\r\n\x00", id="text"),
    ],
)
def test_bad_frames_are_dropped_silently(thermo: SimulatedBoard, wire: bytes) -> None:
    assert thermo.receive(wire, 0.0) == b""
    assert thermo.received == []
    # and the board still works afterwards
    assert send(thermo, T.PING, 2) == reply_bytes(T.PONG, 2)


def test_any_chunking(thermo: SimulatedBoard) -> None:
    wire = frame(T.PING, 1) + frame(T.PIN_MODE, 2, bytes((1, 1)))
    out = b""
    for i in range(len(wire)):
        out += thermo.receive(wire[i : i + 1], 0.0)
    assert out == reply_bytes(T.PONG, 1) + ack(2)
    assert [p.type for p in thermo.received] == [T.PING, T.PIN_MODE]
    assert thermo.receive(wire, 0.0) == reply_bytes(T.PONG, 1) + ack(2)


def test_host_to_device_cobs_limit(uno: SimulatedBoard) -> None:
    # M = 128: the COBS frame may be at most M + 8 = 136 bytes, so P = 127 is the
    # largest payload without zeros that gets through (§1.5 table).
    assert send(uno, T.DS_SUBSCRIBE, 1, b"\xaa" * 127) == ack(1)
    assert send(uno, T.DS_SUBSCRIBE, 2, b"\xaa" * 128) == b""
    assert send(uno, T.DS_SUBSCRIBE, 3, b"\xaa" * 129) == b""
    assert send(uno, T.PING, 4) == reply_bytes(T.PONG, 4)
    assert [p.seq for p in uno.received] == [1, 4]


def test_device_to_host_cobs_limit(uno: SimulatedBoard) -> None:
    # A reply over 121 payload bytes never leaves a 128-byte board on COBS (§1.5).
    assert ask(uno, T.SPI_XFER, 1, b"\x0a" + b"\x01" * 121).payload == b"\xff" * 121
    assert send(uno, T.SPI_XFER, 2, b"\x0a" + b"\x01" * 122) == b""


def test_raw_framing() -> None:
    board = SimulatedBoard(get_profile("thermostat"), framing="raw", seed=1)
    assert board.receive(encode_packet(T.PING, 3), 0.0) == encode_packet(T.PONG, 3)
    bad = bytearray(encode_packet(T.PING, 4))
    bad[-1] ^= 1
    assert board.receive(bytes(bad), 0.0) == bytes.fromhex("43 44 02 83 00 01 00 02 7d")
    events = board.tick(0.0)
    assert [p.type for p in RawDeframer().feed(events)] == [T.DS_EVENT, T.DS_EVENT]


def test_unknown_and_event_types_nak_01_echoing_seq(thermo: SimulatedBoard) -> None:
    assert send(thermo, 0x05, 17) == nak(ErrorCode.UNKNOWN_TYPE, 17)
    assert send(thermo, T.ACK, 18) == nak(ErrorCode.UNKNOWN_TYPE, 18)
    assert send(thermo, T.DS_EVENT, 19, b"\x00\x01") == nak(ErrorCode.UNKNOWN_TYPE, 19)
    assert [p.type for p in thermo.received] == [0x05, T.ACK, T.DS_EVENT]


# --------------------------------------------------------------------- HELLO, §6


def test_hello_resp(thermo: SimulatedBoard) -> None:
    resp = ask(thermo, T.HELLO, 1)
    assert resp.type == T.HELLO_RESP
    hello = parse_hello(resp.payload)
    assert hello == thermo.hello
    assert hello.problems == ()
    assert hello.firmware_name == "sim-thermostat"
    assert hello.max_payload == 512
    assert hello.mcu_id == bytes.fromhex("240ac41234560000")
    names = [(d.name, d.type, d.unit, d.writable, d.retain, d.pin_ref) for d in hello.datastreams]
    assert names == [
        ("temperature", DatastreamType.FLOAT32, "celsius", False, False, 0xFF),
        ("humidity", DatastreamType.FLOAT32, "%", False, False, 0xFF),
        ("setpoint", DatastreamType.FLOAT32, "celsius", True, True, 0xFF),
        ("heater", DatastreamType.BOOL, "", True, True, 0xFF),
    ]
    assert any(p.supports(PinMode.ANALOG) for p in hello.pins)
    # a snapshot, replayed verbatim
    assert ask(thermo, T.HELLO, 2).payload == resp.payload


def test_uno_profile_capabilities() -> None:
    hello = get_profile("uno").hello
    caps = [int(p.capabilities) for p in hello.pins]
    assert len(caps) == 20
    assert caps[0] == 0x03 and caps[3] == 0x87 and caps[10] == 0x47
    assert caps[14] == 0x0B and caps[18] == 0x1B and caps[19] == 0x2B
    assert caps[2] == 0x83 and caps[13] == 0x43
    assert [i for i, c in enumerate(caps) if c & 0x04] == [3, 5, 6, 9, 10, 11]
    assert hello.mcu_id == bytes.fromhex("1e950f0000000000")
    assert (hello.max_payload, hello.modules, hello.datastreams) == (128, (), ())
    assert get_profile("uno").max_subscriptions == 8


def test_kitchen_modules_and_snapshot_pins(kitchen: SimulatedBoard) -> None:
    hello = parse_hello(ask(kitchen, T.HELLO, 1).payload)
    assert [(m.module_id, m.name, m.version, m.pins) for m in hello.modules] == [
        (0, "servo", (1, 0), ()),
        (1, "neopixel", (1, 0), ()),
        (2, "dht", (1, 0), ()),
    ]
    # attaching the servo does not change the boot-time snapshot (§6.3)
    assert ask(kitchen, T.MOD_CMD, 2, cmds.mod_cmd(0, 1, b"\x01\x00\x00\x00\x00")).type == T.ACK
    assert parse_hello(ask(kitchen, T.HELLO, 3).payload) == hello
    kinds = {d.name: d.type for d in hello.datastreams}
    assert kinds == {
        "light": DatastreamType.UINT8,
        "door_open": DatastreamType.BOOL,
        "status": DatastreamType.STRING,
    }


def test_every_profile_builds_and_fits() -> None:
    for name, factory in PROFILES.items():
        profile = factory()
        assert profile.name == name
        board = SimulatedBoard(profile, seed=0)
        assert parse_hello(ask(board, T.HELLO, 1).payload) == profile.hello


def test_get_profile_unknown_lists_known_names() -> None:
    known = "known profiles: firehose, garage, kitchen, thermostat, uno"
    with pytest.raises(KeyError, match=known):
        get_profile("toaster")


def test_profile_validation() -> None:
    base = get_profile("uno")
    with pytest.raises(ValueError, match="firmware name"):
        dataclasses.replace(base, firmware_name="x" * 17)
    with pytest.raises(ValueError, match="exceeds max_payload"):
        dataclasses.replace(
            base,
            datastreams=tuple(DatastreamSpec(f"ds{i}", DatastreamType.INT32) for i in range(4)),
        )
    with pytest.raises(ValueError, match="module kind"):
        dataclasses.replace(base, modules=(ModuleSpec("toaster"),))


def test_with_push_interval() -> None:
    fast = with_push_interval(get_profile("thermostat"), 0.05)
    periods = {d.name: d.push_interval_s for d in fast.datastreams}
    assert periods == {"temperature": 0.05, "humidity": 0.05, "setpoint": None, "heater": None}
    assert fast.hello == get_profile("thermostat").hello
    with pytest.raises(ValueError):
        with_push_interval(fast, -1)


# --------------------------------------------------------------------- pins, §4.2


def test_pin_mode_rules(uno: SimulatedBoard) -> None:
    assert send(uno, T.PIN_MODE, 1, b"\x0d") == nak(ErrorCode.INVALID_PIN, 1)
    assert send(uno, T.PIN_MODE, 2, bytes((13, 5))) == nak(ErrorCode.PIN_MODE_UNSUPPORTED, 2)
    assert send(uno, T.PIN_MODE, 3, bytes((13, 1))) == ack(3)
    # no range or capability check (Q12); memory only for pins < 70
    assert send(uno, T.PIN_MODE, 4, bytes((200, 0))) == ack(4)
    assert send(uno, T.PIN_MODE, 5, bytes((69, 4))) == ack(5)
    assert send(uno, T.PIN_MODE, 6, bytes((70, 4))) == ack(6)
    assert uno.pin_modes == {13: PinMode.OUTPUT, 69: PinMode.INPUT_PULLUP}


def test_pin_write_semantics(uno: SimulatedBoard) -> None:
    assert send(uno, T.PIN_WRITE, 1, b"\x0d") == nak(ErrorCode.INVALID_PIN, 1)
    assert send(uno, T.PIN_WRITE, 2, cmds.pin_write(13, 1)) == ack(2)
    assert send(uno, T.PIN_WRITE, 3, cmds.pin_write(9, 128)) == ack(3)
    assert send(uno, T.PIN_WRITE, 4, cmds.pin_write(6, 1, PinMode.PWM)) == ack(4)
    assert send(uno, T.PIN_WRITE, 5, cmds.pin_write(5, 200, PinMode.OUTPUT)) == ack(5)
    assert send(uno, T.PIN_WRITE, 6, cmds.pin_write(3, 7) + b"\x02\xff") == ack(6)
    values = uno.pin_values
    assert (values[13], values[9], values[6], values[5], values[3]) == (1, 128, 1, 1, 7)
    # outputs read back what was written
    assert ask(uno, T.PIN_READ, 7, b"\x0d").payload == struct.pack("<BH", 13, 1)
    assert send(uno, T.PIN_WRITE, 8, cmds.pin_write(13, 0)) == ack(8)
    assert ask(uno, T.PIN_READ, 9, b"\x0d").payload == struct.pack("<BH", 13, 0)


def test_pin_read_rules(uno: SimulatedBoard) -> None:
    assert send(uno, T.PIN_READ, 1) == nak(ErrorCode.INVALID_PIN, 1)
    # analog guard: only pins with ANALOG_IN (A0 = 14 on the Uno, not pin 0)
    assert send(uno, T.PIN_READ, 2, cmds.pin_read(0, PinMode.ANALOG)) == nak(0x05, 2)
    assert send(uno, T.PIN_READ, 3, cmds.pin_read(25, PinMode.ANALOG)) == nak(0x05, 3)
    uno.set_pin(14, 1023)
    assert send(uno, T.PIN_READ, 0x0F, cmds.pin_read(14, PinMode.ANALOG)) == reply_bytes(
        T.PIN_READ_RESP, 0x0F, bytes.fromhex("0e ff 03")
    )
    # without a mode byte the remembered PIN_MODE decides
    assert ask(uno, T.PIN_READ, 4, b"\x0e").payload == bytes.fromhex("0e 01 00")  # digital
    assert send(uno, T.PIN_MODE, 5, bytes((14, PinMode.ANALOG))) == ack(5)
    assert ask(uno, T.PIN_READ, 6, b"\x0e").payload == bytes.fromhex("0e ff 03")
    assert send(uno, T.PIN_MODE, 7, bytes((0, PinMode.ANALOG))) == ack(7)
    assert send(uno, T.PIN_READ, 8, b"\x00") == nak(ErrorCode.PIN_MODE_UNSUPPORTED, 8)
    # an explicit mode byte overrides the memory
    assert ask(uno, T.PIN_READ, 9, cmds.pin_read(0, PinMode.INPUT)).type == T.PIN_READ_RESP
    uno.set_pin(2, 1)
    assert ask(uno, T.PIN_READ, 10, b"\x02").payload == bytes.fromhex("02 01 00")
    # a pin the board does not have reads 0, no NAK (Q12)
    assert ask(uno, T.PIN_READ, 11, b"\x63").payload == bytes.fromhex("63 00 00")


def test_inputs_wander_deterministically() -> None:
    def run(seed: int) -> list[int]:
        board = SimulatedBoard(get_profile("uno"), seed=seed)
        out = []
        for i in range(50):
            reply = ask(board, T.PIN_READ, 1, cmds.pin_read(14, PinMode.ANALOG), now=i * 0.5)
            out.append(int.from_bytes(reply.payload[1:], "little"))
        return out

    a = run(7)
    assert a == run(7)
    assert a != run(8)
    assert len(set(a)) > 10
    assert all(0 <= v <= 1023 for v in a)


# ------------------------------------------------------------ subscriptions, §4.2


def test_pin_subscribe_length_rules(uno: SimulatedBoard) -> None:
    four = bytes((14, SubscribeMode.ANALOG_POLL)) + (500).to_bytes(2, "little")
    assert send(uno, T.PIN_SUBSCRIBE, 1, four) == nak(ErrorCode.INVALID_PIN, 1)
    assert send(uno, T.PIN_SUBSCRIBE, 2, four + b"\x10") == ack(2)
    assert uno.subscriptions.slots[0].threshold == 0
    # the 6-byte form: threshold silently ignored (Q7)
    assert send(uno, T.PIN_SUBSCRIBE, 3, four + b"\x10\x00") == ack(3)
    assert uno.subscriptions.slots[0].threshold == 0
    assert send(
        uno, T.PIN_SUBSCRIBE, 4, cmds.pin_subscribe(14, SubscribeMode.ANALOG_POLL, 500, 16)
    ) == ack(4)
    slots = uno.subscriptions.slots
    assert len(slots) == 1 and slots[0].threshold == 16 and slots[0].interval_s == 0.5


def test_analog_poll_events(uno: SimulatedBoard) -> None:
    uno.set_pin(14, 512)
    sub = cmds.pin_subscribe(14, SubscribeMode.ANALOG_POLL, 0, 100)  # interval 0 → 100 ms
    assert send(uno, T.PIN_SUBSCRIBE, 1, sub, now=10.0) == ack(1)
    assert uno.tick(10.05) == b""
    # last reported starts at 0: |512 - 0| ≥ 100; bytes of the §11.3 PIN_EVENT example
    assert uno.tick(10.1) == cobs_frame(bytes.fromhex("43 44 02 90 00 03 00 0e 00 02 70"))
    uno.set_pin(14, 600)  # moved 88 < threshold: nothing
    assert uno.tick(10.2) == b""
    uno.set_pin(14, 700)
    assert packets(uno.tick(10.3)) == [Packet(T.PIN_EVENT, 0, struct.pack("<BH", 14, 700))]


def test_threshold_zero_fires_every_interval(uno: SimulatedBoard) -> None:
    uno.set_pin(15, 300)
    sub = cmds.pin_subscribe(15, SubscribeMode.ANALOG_POLL, 200, 0)
    assert send(uno, T.PIN_SUBSCRIBE, 1, sub, now=0.0) == ack(1)
    events = [p for i in range(1, 11) for p in packets(uno.tick(i * 0.1))]
    assert events == [Packet(T.PIN_EVENT, 0, struct.pack("<BH", 15, 300))] * 5


def test_digital_subscribe_modes_never_fire(uno: SimulatedBoard) -> None:
    for seq, mode in enumerate(
        (SubscribeMode.CHANGE, SubscribeMode.RISING, SubscribeMode.FALLING), 1
    ):
        assert send(uno, T.PIN_SUBSCRIBE, seq, cmds.pin_subscribe(seq + 1, mode, 10)) == ack(seq)
    assert send(uno, T.PIN_SUBSCRIBE, 9, bytes((5, 0x77, 10, 0, 0, 0, 0))) == ack(9)  # unvalidated
    uno.set_pin(2, 1)
    assert b"".join(uno.tick(t / 10) for t in range(30)) == b""


def test_subscription_slots_leak_until_reset(uno: SimulatedBoard) -> None:
    sub = cmds.pin_subscribe(14, SubscribeMode.ANALOG_POLL, 100)
    # an active subscription on the same pin is updated in place
    assert send(uno, T.PIN_SUBSCRIBE, 1, sub) == ack(1)
    assert send(uno, T.PIN_SUBSCRIBE, 2, sub) == ack(2)
    assert len(uno.subscriptions.slots) == 1
    assert send(uno, T.PIN_UNSUBSCRIBE, 3, b"\x0e") == ack(3)
    for seq in range(4, 11):  # 7 more subscribe/unsubscribe cycles: 8 slots used
        assert send(uno, T.PIN_SUBSCRIBE, seq, sub) == ack(seq)
        assert send(uno, T.PIN_UNSUBSCRIBE, seq, b"\x0e") == ack(seq)
    assert send(uno, T.PIN_SUBSCRIBE, 20, sub) == nak(ErrorCode.SUB_LIMIT_REACHED, 20)
    assert send(uno, T.RESET, 21) == ack(21)
    assert uno.subscriptions.slots == []
    assert send(uno, T.PIN_SUBSCRIBE, 22, sub) == ack(22)


def test_unsubscribe_rules(uno: SimulatedBoard) -> None:
    assert send(uno, T.PIN_UNSUBSCRIBE, 1) == nak(ErrorCode.INVALID_PIN, 1)
    assert send(uno, T.PIN_UNSUBSCRIBE, 2, b"\x0e") == nak(ErrorCode.INVALID_PIN, 2)
    send(uno, T.PIN_SUBSCRIBE, 3, cmds.pin_subscribe(14, SubscribeMode.ANALOG_POLL, 100))
    assert send(uno, T.PIN_UNSUBSCRIBE, 4, b"\x0e") == ack(4)
    assert send(uno, T.PIN_UNSUBSCRIBE, 5, b"\x0e") == nak(ErrorCode.INVALID_PIN, 5)
    assert uno.tick(1.0) == b""


# ------------------------------------------------------------------- streams, §4.2


def test_stream_start_stop(uno: SimulatedBoard) -> None:
    assert send(uno, T.STREAM_START, 1, b"\x03\x00\x0a\x00") == nak(ErrorCode.INVALID_PIN, 1)
    uno.set_pin(14, 100)
    uno.set_pin(15, 200)
    # bit p reads analog channel p = pin 14 + p on AVR
    assert send(uno, T.STREAM_START, 2, cmds.stream_start(0b11, 10), now=0.0) == ack(2)
    expected = Packet(T.STREAM_DATA, 0, struct.pack("<HH", 100, 200))
    assert packets(uno.tick(0.0)) == [expected]
    assert uno.tick(0.05) == b""
    assert packets(uno.tick(0.1)) == [expected]
    # RESET does not stop a stream (Q16); STREAM_STOP does
    assert send(uno, T.RESET, 3, now=0.1) == ack(3)
    assert packets(uno.tick(0.2)) == [expected]
    assert send(uno, T.STREAM_STOP, 4) == ack(4)
    assert uno.tick(0.5) == b""


def test_stream_rate_zero_means_100_hz(thermo: SimulatedBoard) -> None:
    thermo = SimulatedBoard(dataclasses.replace(get_profile("thermostat"), datastreams=()), seed=1)
    assert send(thermo, T.STREAM_START, 1, cmds.stream_start(0b110000, 0)) == ack(1)
    count = sum(len(packets(thermo.tick(i * 0.001))) for i in range(100))
    assert count == 10
    assert thermo.stream is not None and thermo.stream.bits == [4, 5]


# ------------------------------------------------------------------------ I2C / SPI


def test_i2c_without_peripherals(uno: SimulatedBoard) -> None:
    assert send(uno, T.I2C_WRITE, 1, b"\x3c") == nak(ErrorCode.I2C_NOT_AVAILABLE, 1)
    assert send(uno, T.I2C_WRITE, 2, b"\x07\x01") == nak(ErrorCode.I2C_NOT_AVAILABLE, 2)
    assert send(uno, T.I2C_WRITE, 3, b"\x78\x01") == nak(ErrorCode.I2C_NOT_AVAILABLE, 3)
    assert send(uno, T.I2C_WRITE, 4, b"\x3c\x01\x02") == nak(ErrorCode.I2C_NACK, 4)
    assert send(uno, T.I2C_READ, 5, b"\x3c") == nak(ErrorCode.I2C_NOT_AVAILABLE, 5)
    assert send(uno, T.I2C_READ, 6, b"\x00\x04") == nak(ErrorCode.I2C_NOT_AVAILABLE, 6)
    assert send(uno, T.I2C_READ, 7, b"\x3c\x04") == reply_bytes(T.I2C_READ_RESP, 7)
    assert send(uno, T.I2C_READ_REG, 8, b"\x3c\x00") == nak(ErrorCode.I2C_NOT_AVAILABLE, 8)
    assert send(uno, T.I2C_READ_REG, 9, b"\x3c\x00\x02") == nak(ErrorCode.I2C_NACK, 9)


def test_i2c_register_device(uno: SimulatedBoard) -> None:
    uno.i2c_devices[0x50] = RegisterDevice()
    assert send(uno, T.I2C_WRITE, 1, b"\x50\x10\xaa\xbb\xcc") == ack(1)
    assert ask(uno, T.I2C_READ_REG, 2, b"\x50\x11\x02").payload == b"\xbb\xcc"
    assert ask(uno, T.I2C_READ, 3, b"\x50\x01").payload == b"\x00"


def test_spi_xfer(uno: SimulatedBoard) -> None:
    assert send(uno, T.SPI_XFER, 1, b"\x0a") == nak(ErrorCode.UNKNOWN_TYPE, 1)
    # §11.3 vector: cs 10, data ff 00 ff → MISO floats high
    assert send(uno, T.SPI_XFER, 0x1E, bytes.fromhex("0a ff 00 ff")) == reply_bytes(
        T.SPI_XFER_RESP, 0x1E, b"\xff\xff\xff"
    )


# ------------------------------------------------------------------------ modules, §8


def test_mod_cmd_rules(kitchen: SimulatedBoard, uno: SimulatedBoard) -> None:
    assert send(kitchen, T.MOD_CMD, 1, b"\x00") == nak(ErrorCode.MODULE_NOT_LOADED, 1)
    assert send(kitchen, T.MOD_CMD, 2, b"\x03\x01") == nak(ErrorCode.MODULE_NOT_LOADED, 2)
    assert send(uno, T.MOD_CMD, 3, b"\x00\x01") == nak(ErrorCode.MODULE_NOT_LOADED, 3)
    assert send(kitchen, T.MOD_CMD, 4, b"\x00\x09") == nak(ErrorCode.UNKNOWN_MODULE_CMD, 4)


def test_servo_and_neopixel(kitchen: SimulatedBoard) -> None:
    # §11.3: MOD_CMD servo write 90°
    assert kitchen.receive(
        cobs_frame(bytes.fromhex("43 44 02 40 09 03 00 00 02 5a 79")), 0.0
    ) == ack(9)
    servo, pixel = kitchen.modules[0], kitchen.modules[1]
    assert isinstance(servo, Servo) and isinstance(pixel, NeoPixel)
    assert servo.angle == 90
    assert send(kitchen, T.MOD_CMD, 10, cmds.mod_cmd(0, 2, b"\xc8")) == ack(10)
    assert servo.angle == 180  # clamped
    assert send(kitchen, T.MOD_CMD, 11, cmds.mod_cmd(1, 4, b"\x01\x02\x03")) == ack(
        11
    )  # before begin
    assert send(kitchen, T.MOD_CMD, 12, cmds.mod_cmd(1, 1, b"\x02\x08\x00\x00")) == ack(12)
    assert send(kitchen, T.MOD_CMD, 13, cmds.mod_cmd(1, 2, b"\x03\x00\xff\x00\x00")) == ack(13)
    assert send(kitchen, T.MOD_CMD, 14, cmds.mod_cmd(1, 5)) == ack(14)
    assert pixel.shown[3] == (255, 0, 0, 0)
    assert len(pixel.shown) == 8


def test_dht(kitchen: SimulatedBoard) -> None:
    assert send(kitchen, T.MOD_CMD, 1, cmds.mod_cmd(2, 2)) == nak(ErrorCode.MODULE_NOT_LOADED, 1)
    assert send(kitchen, T.MOD_CMD, 2, cmds.mod_cmd(2, 1, bytes((4, 22)))) == ack(2)
    resp = ask(kitchen, T.MOD_CMD, 3, cmds.mod_cmd(2, 2))
    assert resp.type == T.MOD_RESP and len(resp.payload) == 9
    assert resp.payload[0] == 0  # module id hard-coded 0 (Q9), although the dht is id 2
    temp, hum = struct.unpack("<ff", resp.payload[1:])
    assert 10 <= temp <= 35 and 20 <= hum <= 90
    dht = kitchen.modules[2]
    assert isinstance(dht, Dht)
    dht.sensor_error = True
    assert send(kitchen, T.MOD_CMD, 4, cmds.mod_cmd(2, 2)) == nak(ErrorCode.OUT_OF_MEMORY, 4)


def test_encoder(workshop: SimulatedBoard) -> None:
    encoder = workshop.modules[0]
    assert isinstance(encoder, Encoder)
    encoder.turn(5)
    assert all(p.type != T.MOD_EVENT for p in packets(workshop.tick(0.0)))  # not attached
    assert send(workshop, T.MOD_CMD, 1, cmds.mod_cmd(0, 1, b"\x02\x03")) == ack(1)
    encoder.turn(2)
    encoder.turn(-3)
    events = [p for p in packets(workshop.tick(0.01)) if p.type == T.MOD_EVENT]
    assert events == [Packet(T.MOD_EVENT, 0, b"\x00\x01" + struct.pack("<ih", -1, -1))]
    encoder.turn(2)
    events = [p for p in packets(workshop.tick(0.02)) if p.type == T.MOD_EVENT]
    assert [e.payload for e in events] == [
        b"\x00\x01" + struct.pack("<ih", 0, 1),
        b"\x00\x01" + struct.pack("<ih", 1, 1),
    ]
    assert ask(workshop, T.MOD_CMD, 2, cmds.mod_cmd(0, 2)).payload == b"\x00" + struct.pack("<i", 1)
    assert send(workshop, T.MOD_CMD, 3, cmds.mod_cmd(0, 3)) == ack(3)
    assert ask(workshop, T.MOD_CMD, 4, cmds.mod_cmd(0, 2)).payload == b"\x00\x00\x00\x00\x00"


def test_stepper(workshop: SimulatedBoard) -> None:
    def mod_events(now: float) -> list[bytes]:
        return [p.payload for p in packets(workshop.tick(now)) if p.type == T.MOD_EVENT]

    move = cmds.mod_cmd(1, 2, struct.pack("<iH", 10, 100))
    assert send(workshop, T.MOD_CMD, 1, move, now=0.0) == ack(1)  # before config: no motion
    assert mod_events(1.0) == []
    config = cmds.mod_cmd(1, 1, bytes((2, 3, 0xFF)) + struct.pack("<H", 200))
    assert send(workshop, T.MOD_CMD, 2, config, now=1.0) == ack(2)
    assert send(workshop, T.MOD_CMD, 3, move, now=1.0) == ack(3)  # 10 steps at 100/s
    assert mod_events(1.05) == []
    assert mod_events(1.1) == [b"\x00\x01" + struct.pack("<i", 10)]
    assert mod_events(1.2) == []
    move_to = cmds.mod_cmd(1, 3, struct.pack("<iH", 10, 0))  # 0-step move: done at once
    assert send(workshop, T.MOD_CMD, 4, move_to, now=2.0) == ack(4)
    assert mod_events(2.0) == [b"\x00\x01" + struct.pack("<i", 10)]
    assert send(
        workshop, T.MOD_CMD, 5, cmds.mod_cmd(1, 3, struct.pack("<iH", -50, 0)), now=3.0
    ) == ack(5)
    assert send(workshop, T.MOD_CMD, 6, cmds.mod_cmd(1, 4), now=3.02) == ack(6)  # stop: no event
    assert mod_events(4.0) == []


def test_other_modules(workshop: SimulatedBoard) -> None:
    assert send(workshop, T.MOD_CMD, 1, cmds.mod_cmd(2, 3, b"\x00\x00\x01hi")) == ack(1)
    assert send(workshop, T.MOD_CMD, 2, cmds.mod_cmd(3, 5, b"\x01")) == ack(2)
    assert send(workshop, T.MOD_CMD, 3, cmds.mod_cmd(4, 1)) == nak(ErrorCode.UNKNOWN_MODULE_CMD, 3)


# ------------------------------------------------------------------- datastreams


def test_ds_write_rules(thermo: SimulatedBoard) -> None:
    assert send(thermo, T.DS_WRITE, 1, b"\x02") == nak(ErrorCode.UNKNOWN_DATASTREAM, 1)
    assert send(thermo, T.DS_WRITE, 2, b"\x04\x01") == nak(ErrorCode.UNKNOWN_DATASTREAM, 2)
    assert send(thermo, T.DS_WRITE, 3, b"\x00" + struct.pack("<f", 1)) == nak(0x0E, 3)
    # §11.3 vector shape: DS_WRITE index 2 float 22.5 → ACK, no DS_EVENT echo
    assert send(thermo, T.DS_WRITE, 4, b"\x02" + struct.pack("<f", 22.5)) == ack(4)
    assert send(thermo, T.DS_WRITE, 5, b"\x03\x01") == ack(5)
    assert thermo.written == [("setpoint", 22.5), ("heater", True)]
    assert thermo.datastream_values["setpoint"] == 22.5
    assert thermo.datastream_values["heater"] is True
    assert [p.type for p in thermo.received] == [T.DS_WRITE] * 5


def test_ds_write_is_reflected_by_the_next_push(kitchen: SimulatedBoard) -> None:
    kitchen.tick(0.0)  # boot pushes
    assert send(kitchen, T.DS_WRITE, 1, b"\x00\x2a", now=1.0) == ack(1)
    assert kitchen.written == [("light", 42)]
    pushed = [p for p in packets(kitchen.tick(10.0)) if p.payload[0] == 0]
    # UINT8 written with 1 byte, pushed by the int32 overload: 4 bytes (Q10)
    assert pushed == [Packet(T.DS_EVENT, 0, b"\x00\x2a\x00\x00\x00")]


def test_ds_read_and_subscribe(thermo: SimulatedBoard) -> None:
    assert send(thermo, T.DS_READ, 1, b"\x00") == nak(ErrorCode.UNKNOWN_DATASTREAM, 1)
    assert send(thermo, T.DS_READ, 2) == nak(ErrorCode.UNKNOWN_DATASTREAM, 2)
    assert send(thermo, T.DS_SUBSCRIBE, 3, b"\x00\x10\x27") == ack(3)
    assert send(thermo, T.DS_SUBSCRIBE, 4) == ack(4)


def test_periodic_pushes(thermo: SimulatedBoard) -> None:
    first = packets(thermo.tick(100.0))
    assert [(p.type, p.seq, p.payload[0], len(p.payload)) for p in first] == [
        (T.DS_EVENT, 0, 0, 5),
        (T.DS_EVENT, 0, 1, 5),
    ]
    assert struct.unpack("<f", first[0].payload[1:])[0] == pytest.approx(21.0, abs=0.2)
    assert thermo.tick(100.5) == b""
    assert len(packets(thermo.tick(101.0))) == 2
    assert len(packets(thermo.tick(102.5))) == 2
    assert thermo.tick(102.9) == b""  # late ticks do not cause bursts
    values = thermo.datastream_values
    assert 15 < float(values["temperature"]) < 30
    assert 20 <= float(values["humidity"]) <= 80


def test_event_encodings_follow_the_overloads(
    kitchen: SimulatedBoard, workshop: SimulatedBoard
) -> None:
    by_index = {p.payload[0]: p.payload[1:] for p in packets(kitchen.tick(0.0))}
    assert by_index[0] == b"\x00\x00\x00\x00"  # light UINT8 → int32
    assert by_index[1] in (b"\x00", b"\x01")  # door_open BOOL → 1 byte
    assert by_index[2] == b"idle"  # STRING → raw UTF-8, no prefix, no NUL
    rpm = next(p for p in packets(workshop.tick(0.0)) if p.type == T.DS_EVENT)
    assert len(rpm.payload) == 5  # UINT16 → int32
    assert struct.unpack("<i", rpm.payload[1:])[0] == 1200


def test_set_datastream(thermo: SimulatedBoard, kitchen: SimulatedBoard) -> None:
    # §11.3: DS_EVENT index 0, float 21.5 (seq 0)
    assert thermo.set_datastream("temperature", 21.5) == cobs_frame(
        bytes.fromhex("43 44 02 d1 00 05 00 00 00 00 ac 41 6d")
    )
    assert thermo.datastream_values["temperature"] == 21.5
    assert packets(thermo.set_datastream("setpoint", 20)) == [
        Packet(T.DS_EVENT, 0, b"\x02" + struct.pack("<f", 20.0))
    ]
    assert packets(kitchen.set_datastream("light", 7)) == [
        Packet(T.DS_EVENT, 0, b"\x00\x07\x00\x00\x00")
    ]
    assert packets(kitchen.set_datastream("status", "héllo")) == [
        Packet(T.DS_EVENT, 0, b"\x02" + "héllo".encode())
    ]
    assert packets(thermo.push_raw("temperature", b"\x16\x00\x00\x00")) == [
        Packet(T.DS_EVENT, 0, b"\x00\x16\x00\x00\x00")
    ]
    with pytest.raises(KeyError, match="temperature, humidity"):
        thermo.set_datastream("pressure", 1.0)
    with pytest.raises(TypeError):
        thermo.set_datastream("heater", "on")
    with pytest.raises(ValueError):
        kitchen.set_datastream("light", 2**40)


def test_firehose_pushes_every_tick() -> None:
    board = SimulatedBoard(get_profile("firehose"), seed=1)
    values = []
    for i in range(5):
        (event,) = packets(board.tick(i * 1e-6))
        values.append(struct.unpack("<f", event.payload[1:])[0])
    assert values == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_send_event_log(thermo: SimulatedBoard) -> None:
    assert packets(thermo.send_event(T.LOG, b"boot ok")) == [Packet(T.LOG, 0, b"boot ok")]


# ----------------------------------------------------------------------------- OTA


def test_ota_refused_unless_capable(uno: SimulatedBoard) -> None:
    assert send(uno, T.OTA_BEGIN, 1, struct.pack("<I", 4) + bytes(32)) == nak(0x0F, 1)
    assert send(uno, T.OTA_CHUNK, 2, struct.pack("<I", 0) + b"ab") == nak(0x0F, 2)
    assert send(uno, T.OTA_FINALIZE, 3) == nak(0x0F, 3)


def test_ota_update_and_reboot(thermo: SimulatedBoard) -> None:
    assert thermo.hello.ota_capable
    assert send(thermo, T.OTA_CHUNK, 1, struct.pack("<I", 0) + b"ab") == nak(0x0F, 1)
    assert send(thermo, T.OTA_BEGIN, 2, struct.pack("<I", 4) + bytes(32)) == ack(2)
    assert send(thermo, T.OTA_CHUNK, 3, struct.pack("<I", 0) + b"ab") == ack(3)
    assert send(thermo, T.OTA_CHUNK, 4, struct.pack("<I", 0) + b"ab") == nak(0x0F, 4)  # no re-send
    assert send(thermo, T.OTA_CHUNK, 5, struct.pack("<I", 2) + b"cd", now=1.0) == ack(5)
    assert send(thermo, T.PIN_MODE, 6, b"\x01\x01", now=1.0) == ack(6)
    assert send(thermo, T.OTA_FINALIZE, 7, now=1.0) == ack(7)
    assert thermo.ota_image == b"abcd"
    thermo.tick(1.2)
    assert thermo.boots == 1
    thermo.tick(1.5)  # ~500 ms after the ACK the board reboots
    assert thermo.boots == 2 and thermo.pin_modes == {}
    assert send(thermo, T.OTA_FINALIZE, 8, now=2.0) == nak(0x0F, 8)


def test_ota_incomplete_image_fails(thermo: SimulatedBoard) -> None:
    assert send(thermo, T.OTA_BEGIN, 1, struct.pack("<I", 4) + bytes(32)) == ack(1)
    assert send(thermo, T.OTA_CHUNK, 2, struct.pack("<I", 0) + b"abcde") == nak(0x0F, 2)
    assert send(thermo, T.OTA_FINALIZE, 3) == nak(0x0F, 3)
    assert send(thermo, T.OTA_BEGIN, 4, struct.pack("<I", 0) + bytes(32)) == nak(0x0F, 4)
    assert send(thermo, T.OTA_BEGIN, 5, struct.pack("<I", 4)) == nak(0x0F, 5)


# -------------------------------------------------------------------------- faults


def test_fault_drop_replies(thermo: SimulatedBoard) -> None:
    thermo.faults.drop_replies = 2
    assert send(thermo, T.PIN_MODE, 1, b"\x01\x01") == b""
    assert send(thermo, T.PING, 2) == b""
    assert thermo.pin_modes == {1: PinMode.OUTPUT}  # executed all the same
    assert len(packets(thermo.tick(0.0))) == 2  # events are not dropped
    assert send(thermo, T.PING, 3) == reply_bytes(T.PONG, 3)
    assert thermo.faults.drop_replies == 0


def test_fault_corrupt_crc(thermo: SimulatedBoard) -> None:
    thermo.faults.corrupt_crc = 1
    host = CobsDeframer()
    assert host.feed(send(thermo, T.PING, 1)) == []
    assert host.stats.crc_errors == 1
    assert host.feed(send(thermo, T.PING, 2)) == [Packet(T.PONG, 2)]


def test_fault_garbage(thermo: SimulatedBoard) -> None:
    thermo.faults.garbage = b"Serial.println says hi\r\n"
    out = send(thermo, T.PING, 1)
    assert out.startswith(b"Serial.println says hi\r\n")
    host = CobsDeframer()
    assert host.feed(out) == [Packet(T.PONG, 1)]
    assert host.stats.resyncs == 1
    assert send(thermo, T.PING, 2) == reply_bytes(T.PONG, 2)  # once only


def test_fault_silent(thermo: SimulatedBoard) -> None:
    thermo.faults.silent = True
    assert send(thermo, T.PIN_MODE, 1, b"\x01\x01") == b""
    bad = bytearray(encode_packet(T.PING, 2))
    bad[-1] ^= 1
    assert thermo.receive(cobs_frame(bytes(bad)), 0.0) == b""
    assert thermo.tick(0.0) == b"" and thermo.tick(5.0) == b""
    assert [p.type for p in thermo.received] == [T.PIN_MODE]
    assert thermo.pin_modes == {}  # a hung sketch executes nothing
    thermo.faults.silent = False
    assert send(thermo, T.PING, 3) == reply_bytes(T.PONG, 3)


def test_fault_nak(kitchen: SimulatedBoard) -> None:
    kitchen.faults.nak[T.MOD_CMD] = ErrorCode.MODULE_BUSY
    assert send(kitchen, T.MOD_CMD, 7, cmds.mod_cmd(0, 2, b"\x10")) == nak(0x0A, 7)
    servo = kitchen.modules[0]
    assert isinstance(servo, Servo) and servo.angle == 90  # not executed
    kitchen.faults.clear()
    assert send(kitchen, T.MOD_CMD, 8, cmds.mod_cmd(0, 2, b"\x10")) == ack(8)


# -------------------------------------------------------------------------- reboot


def test_reboot_forgets_like_a_power_cycle(uno: SimulatedBoard) -> None:
    send(uno, T.PIN_MODE, 1, b"\x0d\x01")
    send(uno, T.PIN_WRITE, 2, b"\x0d\x01")
    send(uno, T.PIN_SUBSCRIBE, 3, cmds.pin_subscribe(14, SubscribeMode.ANALOG_POLL, 100))
    send(uno, T.STREAM_START, 4, cmds.stream_start(1, 10))
    uno.faults.drop_replies = 5
    uno.reboot()
    assert uno.boots == 2
    assert uno.pin_modes == {}
    assert uno.subscriptions.slots == [] and uno.stream is None
    assert uno.faults.drop_replies == 5  # test instruments survive
    uno.faults.drop_replies = 0
    assert ask(uno, T.PING, 5).type == T.PONG
    assert ask(uno, T.PIN_READ, 6, b"\x0d").payload == b"\x0d\x00\x00"  # output forgotten
    assert len(uno.received) == 6


def test_reboot_with_new_profile(thermo: SimulatedBoard) -> None:
    before = ask(thermo, T.HELLO, 1).payload
    thermo.set_datastream("setpoint", 25.0)
    thermo.reboot()
    assert thermo.datastream_values["setpoint"] == 21.0
    assert ask(thermo, T.HELLO, 2).payload == before
    thermo.reboot(get_profile("uno"))
    hello = parse_hello(ask(thermo, T.HELLO, 3).payload)
    assert hello.firmware_name == "sim-uno" and thermo.hello == hello
    assert thermo.datastream_values == {}


def test_custom_profile() -> None:
    profile = Profile(
        name="tiny",
        firmware_name="exactly16charsxx",
        firmware_version=(2, 0, 1),
        mcu_id=b"\x01\x02",
        pins=(),
        max_payload=64,
        datastreams=(DatastreamSpec("count", DatastreamType.INT16, writable=True),),
    )
    # A 64-byte HELLO_RESP fits M = 64 but not the COBS transmit buffer: never sent over
    # serial (§6.4), fine over TCP.
    assert len(profile.hello.encode()) == 64
    assert send(SimulatedBoard(profile), T.HELLO, 1) == b""
    raw = SimulatedBoard(profile, framing="raw").receive(encode_packet(T.HELLO, 1), 0.0)
    assert RawDeframer().feed(raw)[0].type == T.HELLO_RESP
    board = SimulatedBoard(dataclasses.replace(profile, max_payload=128), seed=None)
    hello = parse_hello(ask(board, T.HELLO, 1).payload)
    assert hello.firmware_name == "exactly16charsxx"
    assert hello.mcu_id == b"\x01\x02" + bytes(6)
    assert board.datastream_values == {"count": 0}
    assert send(board, T.DS_WRITE, 2, b"\x00" + struct.pack("<h", -5)) == ack(2)
    assert board.written == [("count", -5)]
    assert board.tick(0.0) == b""  # never pushed on its own
