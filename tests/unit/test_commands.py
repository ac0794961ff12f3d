"""Command payload builders and event payload parsers (`docs/protocol.md` §4)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conduyt_bridge.protocol import (
    PacketType,
    PayloadDecodeError,
    PinMode,
    SubscribeMode,
    encode_packet,
)
from conduyt_bridge.protocol.commands import (
    DatastreamEvent,
    ModuleEvent,
    PinValue,
    ds_write,
    mod_cmd,
    nak_description,
    parse_ds_event,
    parse_mod_event,
    parse_mod_resp,
    parse_nak,
    parse_pin_value,
    parse_stream_data,
    pin_mode,
    pin_read,
    pin_subscribe,
    pin_unsubscribe,
    pin_write,
    stream_start,
)

# ------------------------------------------------------------------------------ builders


def test_pin_mode() -> None:
    assert pin_mode(13, PinMode.OUTPUT) == b"\x0d\x01"
    assert pin_mode(14, PinMode.INPUT_PULLUP) == b"\x0e\x04"


def test_pin_write_with_and_without_mode() -> None:
    assert pin_write(13, 1) == b"\x0d\x01"
    assert pin_write(3, 1, PinMode.PWM) == b"\x03\x01\x02"
    assert pin_write(3, 1, PinMode.OUTPUT) == b"\x03\x01\x01"
    # §11.3 docs example: PIN_WRITE pin 13 HIGH, seq 1
    assert encode_packet(PacketType.PIN_WRITE, 1, pin_write(13, 1)) == bytes.fromhex(
        "43 44 02 11 01 02 00 0d 01 94"
    )


def test_pin_read() -> None:
    assert pin_read(0) == b"\x00"
    assert pin_read(0, PinMode.ANALOG) == b"\x00\x03"


def test_pin_subscribe_is_always_seven_bytes() -> None:
    """Q7 / §10 #7: the firmware reads the threshold only from 7-byte payloads."""
    payload = pin_subscribe(14, SubscribeMode.ANALOG_POLL, 500, 4)
    assert payload == bytes.fromhex("0e 04 f4 01 04 00 00")
    assert encode_packet(PacketType.PIN_SUBSCRIBE, 7, payload) == bytes.fromhex(
        "43 44 02 13 07 07 00 0e 04 f4 01 04 00 00 c8"
    )
    assert pin_subscribe(1, SubscribeMode.CHANGE, 0) == b"\x01\x01\x00\x00\x00\x00\x00"


def test_pin_unsubscribe() -> None:
    assert pin_unsubscribe(14) == b"\x0e"


def test_stream_start_is_five_bytes() -> None:
    """Q7 / §10 #8: the firmware needs P ≥ 5 although it reads 4 bytes."""
    payload = stream_start(0x0003, 100)
    assert payload == bytes.fromhex("03 00 64 00 00")
    assert encode_packet(PacketType.STREAM_START, 8, payload) == bytes.fromhex(
        "43 44 02 50 08 05 00 03 00 64 00 00 76"
    )


def test_ds_write() -> None:
    assert ds_write(0, b"\x00\x00\xb4\x41") == b"\x00\x00\x00\xb4\x41"
    with pytest.raises(ValueError) as info:
        ds_write(0, b"")
    assert str(info.value) == "a DS_WRITE value needs at least one byte"


def test_mod_cmd() -> None:
    assert mod_cmd(0, 2, b"\x5a") == b"\x00\x02\x5a"
    assert mod_cmd(3, 5) == b"\x03\x05"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: pin_mode(256, PinMode.INPUT), "pin 256 is not in 0..255"),
        (lambda: pin_mode(-1, PinMode.INPUT), "pin -1 is not in 0..255"),
        (lambda: pin_write(1, 256), "value 256 is not in 0..255"),
        (lambda: pin_read(300), "pin 300 is not in 0..255"),
        (
            lambda: pin_subscribe(1, SubscribeMode.ANALOG_POLL, 70000),
            "interval_ms 70000 is not in 0..65535",
        ),
        (
            lambda: pin_subscribe(1, SubscribeMode.ANALOG_POLL, 10, -1),
            "threshold -1 is not in 0..65535",
        ),
        (lambda: pin_unsubscribe(256), "pin 256 is not in 0..255"),
        (lambda: stream_start(0x10000, 1), "pin_mask 65536 is not in 0..65535"),
        (lambda: stream_start(1, 65536), "rate_hz 65536 is not in 0..65535"),
        (lambda: ds_write(256, b"\x00"), "datastream index 256 is not in 0..255"),
        (lambda: mod_cmd(256, 1), "module_id 256 is not in 0..255"),
        (lambda: mod_cmd(0, 256), "command 256 is not in 0..255"),
    ],
)
def test_builder_range_errors(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


# ------------------------------------------------------------------------------ parsers


def test_parse_pin_value() -> None:
    assert parse_pin_value(b"\x0e\x00\x02") == PinValue(14, 512)
    assert parse_pin_value(b"\x00\xff\x03\x99") == PinValue(0, 1023)  # extra byte ignored


@pytest.mark.parametrize("size", [0, 1, 2])
def test_parse_pin_value_short(size: int) -> None:
    with pytest.raises(PayloadDecodeError) as info:
        parse_pin_value(b"\x0e\x00\x02"[:size])
    assert str(info.value) == f"pin value needs 3 bytes, got {size}"


def test_parse_nak() -> None:
    assert parse_nak(b"\x04") == 4
    assert parse_nak(b"") is None
    assert nak_description(4) == "INVALID_PIN (0x04)"
    assert nak_description(0x42) == "0x42 (0x42)"
    assert nak_description(None) == "UNKNOWN"


def test_parse_ds_event() -> None:
    assert parse_ds_event(b"\x00\x00\x00\xac\x41") == DatastreamEvent(0, b"\x00\x00\xac\x41")
    assert parse_ds_event(b"\x03") == DatastreamEvent(3, b"")
    with pytest.raises(PayloadDecodeError) as info:
        parse_ds_event(b"")
    assert str(info.value) == "DS_EVENT payload is empty"


def test_parse_mod_event() -> None:
    tick = b"\x00\x01" + (5).to_bytes(4, "little") + (1).to_bytes(2, "little")
    assert parse_mod_event(tick) == ModuleEvent(0, 1, tick[2:])
    assert parse_mod_event(b"\x02\x07") == ModuleEvent(2, 7, b"")
    for short in (b"", b"\x00"):
        with pytest.raises(PayloadDecodeError) as info:
            parse_mod_event(short)
        assert str(info.value) == f"MOD_EVENT needs 2 bytes, got {len(short)}"


def test_parse_mod_resp_skips_module_id() -> None:
    """§10 #20: the data starts after the module_id byte (wire vector MOD_RESP)."""
    assert parse_mod_resp(bytes.fromhex("002a000000")) == (0, b"\x2a\x00\x00\x00")
    assert parse_mod_resp(b"\x05") == (5, b"")
    with pytest.raises(PayloadDecodeError) as info:
        parse_mod_resp(b"")
    assert str(info.value) == "MOD_RESP payload is empty"


def test_parse_stream_data() -> None:
    payload = (100).to_bytes(2, "little") + (1023).to_bytes(2, "little")
    assert parse_stream_data(payload, 0b1001) == {0: 100, 3: 1023}
    assert parse_stream_data(b"", 0) == {}
    assert parse_stream_data(payload + b"\x01", 0x8000) == {15: 100}
    with pytest.raises(PayloadDecodeError) as info:
        parse_stream_data(payload[:3], 0b11)
    assert str(info.value) == "STREAM_DATA for 2 pins needs 4 bytes, got 3"


@given(st.integers(0, 0xFFFF), st.lists(st.integers(0, 0xFFFF), min_size=16, max_size=16))
def test_stream_data_identity(mask: int, values: list[int]) -> None:
    pins = [p for p in range(16) if mask >> p & 1]
    payload = b"".join(values[p].to_bytes(2, "little") for p in pins)
    assert parse_stream_data(payload, mask) == {p: values[p] for p in pins}


@given(
    st.integers(0, 255),
    st.sampled_from(list(SubscribeMode)),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
)
def test_pin_subscribe_layout(pin: int, mode: SubscribeMode, interval: int, thr: int) -> None:
    payload = pin_subscribe(pin, mode, interval, thr)
    assert len(payload) == 7
    assert payload[0] == pin and payload[1] == mode
    assert int.from_bytes(payload[2:4], "little") == interval
    assert int.from_bytes(payload[4:6], "little") == thr
    assert payload[6] == 0
