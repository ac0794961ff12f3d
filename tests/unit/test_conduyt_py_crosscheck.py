"""Cross-check the protocol core against the upstream Python SDK, conduyt-py 1.0.

conduyt-py agrees with the firmware on packet layout, CRC and COBS (§10: "agree on
framing/CRC"), so every packet either side encodes must decode on the other.

Quirks of conduyt-py found while writing these tests (none affects interop of valid data):

* `core.constants.HEADER_SIZE` is 8 (it counts the CRC byte); ours is 7 + 1 (OVERHEAD).
* `cobs_encode` starts a new block right after 254 non-zero bytes, so a run ending
  exactly on a block boundary gets a trailing `01` (firmware form, §3.1); the `cobs`
  library we frame with omits it. Both forms decode everywhere.
* `cobs_decode` returns None for empty input (not b"") and does not reject a `0x00`
  inside a block (`03 00 01` decodes to `00 01`); `cobs.decode` raises DecodeError.
* `wire_decode` raises bare ValueError (no error types); `wire_encode` lets `struct.error`
  escape for a payload over 65535 bytes.
* `parse_hello_resp` has no bounds checks: a truncated HELLO_RESP raises IndexError or
  struct.error instead of the partial result §6.4 asks for.
* Module wrappers: stepper packs speed_hz as signed `<h` (firmware reads u16le, so speeds
  over 32767 raise struct.error); neopixel omits `w` when it is 0; servo.attach sends the
  544/2400 µs defaults explicitly where we send 0 (same effect on the board).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from conduyt.core.cobs import cobs_decode, cobs_encode
from conduyt.core.constants import HEADER_SIZE as CONDUYT_HEADER_SIZE
from conduyt.core.crc8 import crc8 as conduyt_crc8
from conduyt.core.wire import make_packet, wire_decode, wire_encode
from conduyt.hello import parse_hello_resp
from conduyt.modules import (
    ConduytDHT,
    ConduytEncoder,
    ConduytNeoPixel,
    ConduytOLED,
    ConduytPID,
    ConduytServo,
    ConduytStepper,
)
from hypothesis import given
from hypothesis import strategies as st

from conduyt_bridge.protocol import (
    Capability,
    CobsDeframer,
    DatastreamDescriptor,
    DatastreamType,
    HelloResp,
    ModuleDescriptor,
    Packet,
    PinCapability,
    RawDeframer,
    cobs_frame,
    crc8,
    decode_packet,
    encode_packet,
    parse_hello,
)
from conduyt_bridge.protocol.constants import OVERHEAD
from conduyt_bridge.protocol.modules import decode_resp, mod_cmd_payload

packets = st.builds(
    Packet,
    type=st.integers(0, 255),
    seq=st.integers(0, 255),
    payload=st.binary(max_size=600),
)


# ------------------------------------------------------------------------------ CRC / packets


def test_header_size_naming() -> None:
    assert CONDUYT_HEADER_SIZE == OVERHEAD == 8


@given(st.binary(max_size=300))
def test_crc8_agrees(data: bytes) -> None:
    assert crc8(data) == conduyt_crc8(data)


@given(packets)
def test_our_packets_decode_with_conduyt_py(packet: Packet) -> None:
    wire = packet.encode()
    theirs = wire_decode(wire)
    assert (theirs.version, theirs.type, theirs.seq, theirs.payload) == (
        2,
        packet.type,
        packet.seq,
        packet.payload,
    )


@given(packets)
def test_conduyt_py_packets_decode_with_ours(packet: Packet) -> None:
    wire = wire_encode(make_packet(packet.type, packet.seq, packet.payload))
    assert wire == encode_packet(packet.type, packet.seq, packet.payload)
    assert decode_packet(wire) == packet
    assert RawDeframer().feed(wire) == [packet]


@given(packets)
def test_our_cobs_frames_decode_with_conduyt_py(packet: Packet) -> None:
    frame = cobs_frame(packet.encode())
    assert frame.endswith(b"\x00") and b"\x00" not in frame[:-1]
    raw = cobs_decode(frame[:-1])
    assert raw is not None
    theirs = wire_decode(raw)
    assert (theirs.type, theirs.seq, theirs.payload) == (packet.type, packet.seq, packet.payload)


@given(st.lists(packets, max_size=8))
def test_conduyt_py_cobs_stream_deframes_with_ours(batch: list[Packet]) -> None:
    stream = b"".join(
        cobs_encode(wire_encode(make_packet(p.type, p.seq, p.payload))) + b"\x00" for p in batch
    )
    d = CobsDeframer()
    assert d.feed(stream) == batch
    assert d.stats.dropped == 0


def test_cobs_block_boundary_forms_differ_but_interoperate() -> None:
    packet = Packet(0xD1, 0x11, b"\x07" * 253)  # 254 non-zero bytes after the LEN zero
    wire = packet.encode()
    ours, theirs = cobs_frame(wire)[:-1], cobs_encode(wire)
    assert theirs == ours + b"\x01"  # firmware/conduyt-py form has the trailing code
    assert cobs_decode(ours) == cobs_decode(theirs) == wire
    assert CobsDeframer().feed(theirs + b"\x00" + ours + b"\x00") == [packet, packet]


def test_conduyt_py_cobs_decode_quirks() -> None:
    assert cobs_decode(b"") is None
    assert cobs_decode(b"\x03\x00\x01") == b"\x00\x01"  # zero inside a block not rejected
    assert CobsDeframer().feed(b"\x03\x00\x01\x00") == []  # we split on it instead


def test_conduyt_py_wire_decode_rejects_v1_like_us() -> None:
    v1_ping = bytes.fromhex("43 44 01 01 00 00 00 48")
    with pytest.raises(ValueError, match="Version mismatch: expected 2, got 1"):
        wire_decode(v1_ping)


# ------------------------------------------------------------------------------ HELLO_RESP


def _name(size: int) -> st.SearchStrategy[str]:
    return st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
        max_size=size,
    ).filter(lambda s: len(s.encode("utf-8")) <= size)


@st.composite
def hellos(draw: st.DrawFn) -> HelloResp:
    caps = draw(st.lists(st.integers(0, 255), max_size=70))
    modules = tuple(
        ModuleDescriptor(
            module_id=i,
            name=draw(_name(8)),
            version=(draw(st.integers(0, 255)), draw(st.integers(0, 255))),
            pins=tuple(draw(st.lists(st.integers(0, 255), max_size=4))),
        )
        for i in range(draw(st.integers(0, 8)))
    )
    datastreams = tuple(
        DatastreamDescriptor(
            index=i,
            name=draw(_name(16)),
            type=draw(st.sampled_from(list(DatastreamType))),
            unit=draw(_name(8)),
            writable=draw(st.booleans()),
            retain=draw(st.booleans()),
            pin_ref=draw(st.integers(0, 255)),
        )
        for i in range(draw(st.integers(0, 8)))
    )
    return HelloResp(
        firmware_name=draw(_name(16)),
        firmware_version=draw(st.tuples(*[st.integers(0, 255)] * 3)),
        mcu_id=draw(st.binary(min_size=8, max_size=8)),
        ota_capable=draw(st.booleans()),
        pins=tuple(PinCapability(i, Capability(c)) for i, c in enumerate(caps)),
        i2c_buses=draw(st.integers(0, 255)),
        spi_buses=draw(st.integers(0, 255)),
        uart_count=draw(st.integers(0, 255)),
        max_payload=draw(st.integers(0, 65535)),
        modules=modules,
        datastreams=datastreams,
    )


def _assert_same_hello(ours: HelloResp, theirs: Any) -> None:
    assert theirs.firmware_name == ours.firmware_name
    assert theirs.firmware_version == ours.firmware_version
    assert theirs.mcu_id == ours.mcu_id
    assert theirs.ota_capable == ours.ota_capable
    assert [(p.pin, p.capabilities) for p in theirs.pins] == [
        (p.pin, int(p.capabilities)) for p in ours.pins
    ]
    assert (theirs.i2c_buses, theirs.spi_buses, theirs.uart_count, theirs.max_payload) == (
        ours.i2c_buses,
        ours.spi_buses,
        ours.uart_count,
        ours.max_payload,
    )
    assert [
        (m.module_id, m.name, (m.version_major, m.version_minor), tuple(m.pins))
        for m in theirs.modules
    ] == [(m.module_id, m.name, m.version, m.pins) for m in ours.modules]
    assert [
        (d.index, d.name, d.type, d.unit, d.writable, d.pin_ref, d.retain)
        for d in theirs.datastreams
    ] == [
        (d.index, d.name, int(d.type), d.unit, d.writable, d.pin_ref, d.retain)
        for d in ours.datastreams
    ]


@given(hellos())
def test_our_hello_parses_with_conduyt_py(hello: HelloResp) -> None:
    payload = hello.encode()
    _assert_same_hello(hello, parse_hello_resp(payload))
    _assert_same_hello(parse_hello(payload), parse_hello_resp(payload))


def test_full_width_names_parse_the_same() -> None:
    hello = HelloResp(
        "SIXTEEN_CHARS_XX",
        (1, 0, 0),
        bytes(8),
        modules=(ModuleDescriptor(0, "oled1306"), ModuleDescriptor(1, "neopixel")),
        datastreams=(
            DatastreamDescriptor(0, "sixteen_chars_xx", DatastreamType.FLOAT32, "8_chars_"),
        ),
    )
    _assert_same_hello(hello, parse_hello_resp(hello.encode()))


def test_conduyt_py_hello_parser_is_not_bounds_checked() -> None:
    payload = HelloResp("fw", (1, 0, 0), bytes(8), modules=(ModuleDescriptor(0, "servo"),)).encode()
    with pytest.raises((IndexError, struct.error)):
        parse_hello_resp(payload[:40])
    partial = parse_hello(payload[:40])  # ours: partial result plus a problem
    assert partial.problems == ("module 0 of 1: descriptor cut short",)


# ------------------------------------------------------------------------------ modules


class _Recorder:
    """Stands in for ConduytDevice: records MOD_CMD payloads, answers with `reply`."""

    def __init__(self, reply: bytes = b"") -> None:
        self.payloads: list[bytes] = []
        self.reply = reply

    async def _send_command(self, cmd: int, payload: bytes = b"") -> bytes:
        assert cmd == 0x40
        self.payloads.append(payload)
        return self.reply


def _theirs(factory: Any, method: str, *args: Any, module_id: int = 2) -> bytes:
    device = _Recorder()
    asyncio.run(getattr(factory(device, module_id), method)(*args))
    (payload,) = device.payloads
    return payload


@pytest.mark.parametrize(
    ("factory", "method", "their_args", "module", "command", "our_args"),
    [
        (ConduytServo, "attach", (9, 544, 2400), "servo", "attach", [9, 544, 2400]),
        (ConduytServo, "write", (90,), "servo", "write", 90),
        (ConduytServo, "write_microseconds", (1500,), "servo", "write_us", 1500),
        (ConduytServo, "detach", (), "servo", "detach", None),
        (ConduytNeoPixel, "begin", (6, 300), "neopixel", "begin", [6, 300]),
        (ConduytNeoPixel, "set_pixel", (1, 2, 3, 4), "neopixel", "set_pixel", [1, 2, 3, 4]),
        (ConduytNeoPixel, "set_pixel", (1, 2, 3, 4, 5), "neopixel", "set_pixel", [1, 2, 3, 4, 5]),
        (ConduytNeoPixel, "set_range", (0, 8, 1, 2, 3), "neopixel", "set_range", [0, 8, 1, 2, 3]),
        (ConduytNeoPixel, "fill", (1, 2, 3), "neopixel", "fill", [1, 2, 3]),
        (ConduytNeoPixel, "show", (), "neopixel", "show", None),
        (ConduytNeoPixel, "set_brightness", (64,), "neopixel", "brightness", 64),
        (ConduytDHT, "begin", (4,), "dht", "begin", 4),
        (ConduytDHT, "begin", (4, 11), "dht", "begin", [4, 11]),
        (ConduytEncoder, "attach", (2, 3), "encoder", "attach", [2, 3]),
        (ConduytEncoder, "reset", (), "encoder", "reset", None),
        (ConduytStepper, "config", (2, 3, 255), "stepper", "config", [2, 3]),
        (ConduytStepper, "move", (-200, 800), "stepper", "move", [-200, 800]),
        (ConduytStepper, "move_to", (1000, 32767), "stepper", "move_to", [1000, 32767]),
        (ConduytStepper, "stop", (), "stepper", "stop", None),
        (ConduytOLED, "begin", (128, 64, 0x3C), "oled1306", "begin", [128, 64, 0x3C]),
        (ConduytOLED, "clear", (), "oled1306", "clear", None),
        (ConduytOLED, "text", (0, 8, 2, "Hi"), "oled1306", "text", [0, 8, 2, "Hi"]),
        (ConduytOLED, "draw_rect", (1, 2, 3, 4, True), "oled1306", "rect", [1, 2, 3, 4, 1]),
        (
            ConduytOLED,
            "draw_bitmap",
            (0, 0, 8, 1, b"\xff"),
            "oled1306",
            "bitmap",
            [0, 0, 8, 1, b"\xff"],
        ),
        (ConduytOLED, "show", (), "oled1306", "show", None),
        (ConduytPID, "config", (2.5, 0.1, 0.01), "pid", "config", [2.5, 0.1, 0.01]),
        (ConduytPID, "set_target", (50.0,), "pid", "set_target", 50.0),
        (ConduytPID, "set_input", (14,), "pid", "set_input", 14),
        (ConduytPID, "set_output", (3,), "pid", "set_output", 3),
        (ConduytPID, "enable", (), "pid", "enable", None),
        (ConduytPID, "disable", (), "pid", "enable", False),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_module_payloads_match_conduyt_py(
    factory: Any,
    method: str,
    their_args: tuple[Any, ...],
    module: str,
    command: str,
    our_args: Any,
) -> None:
    assert mod_cmd_payload(2, module, command, our_args) == _theirs(factory, method, *their_args)


def test_conduyt_py_module_quirks() -> None:
    # neopixel: w=0 is dropped by conduyt-py, sent by us when given
    assert _theirs(ConduytNeoPixel, "fill", 1, 2, 3, 0) == b"\x02\x04\x01\x02\x03"
    assert mod_cmd_payload(2, "neopixel", "fill", [1, 2, 3, 0]) == b"\x02\x04\x01\x02\x03\x00"
    # stepper: signed speed in conduyt-py; the firmware reads u16le
    with pytest.raises(struct.error):
        _theirs(ConduytStepper, "move", 1, 40000)
    assert mod_cmd_payload(2, "stepper", "move", [1, 40000])[-2:] == (40000).to_bytes(2, "little")
    # servo.attach: explicit 544/2400 there, 0 ("firmware default") here
    assert _theirs(ConduytServo, "attach", 9) == b"\x02\x01\x09\x20\x02\x60\x09"
    assert mod_cmd_payload(2, "servo", "attach", 9) == b"\x02\x01\x09\x00\x00\x00\x00"


def test_mod_resp_decoding_matches_conduyt_py() -> None:
    resp = b"\x00" + struct.pack("<ff", 21.5, 40.0)
    device = _Recorder(reply=resp)
    reading = asyncio.run(ConduytDHT(device, 0).read())
    assert decode_resp("dht", "read", resp[1:]) == {
        "temperature_c": reading.temperature,
        "humidity_percent": reading.humidity,
    }
    resp = b"\x00" + struct.pack("<i", -1234)
    count = asyncio.run(ConduytEncoder(_Recorder(reply=resp), 0).read())
    assert decode_resp("encoder", "read", resp[1:]) == {"count": count} == {"count": -1234}
