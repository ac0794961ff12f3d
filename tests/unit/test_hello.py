"""HELLO_RESP payload build and tolerant parse (`docs/protocol.md` §6)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conduyt_bridge.protocol import (
    Capability,
    DatastreamDescriptor,
    DatastreamType,
    HelloParseError,
    HelloResp,
    ModuleDescriptor,
    PinCapability,
    PinMode,
    ProtocolError,
    parse_hello,
)
from conduyt_bridge.protocol.hello import FIXED_HEADER_SIZE

UNO_CAPS = [0x03, 0x03, 0x03, 0x87]  # D0..D3 of the Uno R3 profile (§5.2)

# The docs example of §6.1: 3 pins, one servo with one pin, no datastreams → 52 bytes.
DOCS_EXAMPLE = HelloResp(
    firmware_name="demo",
    firmware_version=(1, 2, 3),
    mcu_id=bytes.fromhex("1e950f0000000000"),
    ota_capable=False,
    pins=tuple(PinCapability(i, Capability(c)) for i, c in enumerate([0x03, 0x87, 0x0B])),
    i2c_buses=1,
    spi_buses=1,
    uart_count=1,
    max_payload=128,
    modules=(ModuleDescriptor(0, "servo", (1, 0), (9,)),),
)
DOCS_EXAMPLE_BYTES = (
    b"demo" + bytes(12)
    + bytes((1, 2, 3))
    + bytes.fromhex("1e950f0000000000")
    + b"\x00\x03\x03\x87\x0b"
    + b"\x01\x01\x01\x80\x00"
    + b"\x01" + b"\x00servo\x00\x00\x00" + b"\x01\x00\x01\x09"
    + b"\x00"
)  # fmt: skip


def _full_width() -> HelloResp:
    """Q20: names that fill their fields exactly, with no NUL terminator."""
    return HelloResp(
        firmware_name="ABCDEFGHIJKLMNOP",
        firmware_version=(2, 0, 10),
        mcu_id=bytes(range(1, 9)),
        ota_capable=True,
        pins=tuple(PinCapability(i, Capability(c)) for i, c in enumerate(UNO_CAPS)),
        max_payload=512,
        modules=(ModuleDescriptor(0, "oled1306"), ModuleDescriptor(1, "neopixel", (1, 0), (6,))),
        datastreams=(
            DatastreamDescriptor(0, "temperature_0123", DatastreamType.FLOAT32, "celsius!"),
            DatastreamDescriptor(1, "setpoint", DatastreamType.INT16, "", True, True),
        ),
    )


def test_docs_example_bytes() -> None:
    payload = DOCS_EXAMPLE.encode()
    assert len(payload) == 52
    assert payload == DOCS_EXAMPLE_BYTES
    assert parse_hello(payload) == DOCS_EXAMPLE


def test_size_formula() -> None:
    """36 + N + Σ(12 + kᵢ) + 28·D (§6.1)."""
    hello = _full_width()
    assert len(hello.encode()) == 36 + 4 + (12 + 0) + (12 + 1) + 28 * 2


def test_full_width_names_without_nul() -> None:
    hello = _full_width()
    payload = hello.encode()
    assert payload[:16] == b"ABCDEFGHIJKLMNOP"
    parsed = parse_hello(payload)
    assert parsed == hello
    assert parsed.problems == ()
    assert not parsed.truncated
    assert parsed.module_by_name("oled1306") == ModuleDescriptor(0, "oled1306")
    ds = parsed.datastream_by_name("temperature_0123")
    assert ds is not None and ds.unit == "celsius!"


def test_trailing_bytes_are_ignored() -> None:
    assert parse_hello(DOCS_EXAMPLE_BYTES + b"\xde\xad") == DOCS_EXAMPLE


def test_retain_pin_ref_and_unknown_type_code() -> None:
    payload = bytearray(_full_width().encode())
    ds0 = len(payload) - 56
    payload[ds0 + 16] = 0x42  # unknown type code
    payload[ds0 + 26] = 0x07  # pin_ref
    parsed = parse_hello(bytes(payload))
    ds = parsed.datastream(0)
    assert ds is not None
    assert ds.type == 0x42 and ds.known_type is None
    assert ds.pin_ref == 7
    assert parsed.datastreams[1].retain and parsed.datastreams[1].writable
    assert parsed.datastreams[1].known_type is DatastreamType.INT16


def test_non_utf8_name_is_replaced_not_raised() -> None:
    payload = bytearray(DOCS_EXAMPLE_BYTES)
    payload[0] = 0xFF
    assert parse_hello(bytes(payload)).firmware_name == "\ufffdemo"


def test_ota_flag_is_exactly_one() -> None:
    payload = bytearray(DOCS_EXAMPLE_BYTES)
    payload[27] = 2
    assert parse_hello(bytes(payload)).ota_capable is False
    payload[27] = 1
    assert parse_hello(bytes(payload)).ota_capable is True


@pytest.mark.parametrize("size", [0, 1, 28])
def test_shorter_than_fixed_header_raises(size: int) -> None:
    with pytest.raises(HelloParseError) as info:
        parse_hello(DOCS_EXAMPLE_BYTES[:size])
    assert str(info.value) == (
        f"HELLO_RESP payload of {size} bytes is shorter than its 29-byte fixed header"
    )
    assert isinstance(info.value, ProtocolError)


@pytest.mark.parametrize(
    ("size", "problem"),
    [
        (29, "pin table: 3 pins declared, 0 present"),
        (31, "pin table: 3 pins declared, 2 present"),
        (32, "bus counts and max_payload missing"),
        (36, "bus counts and max_payload missing"),
        (37, "module count missing"),
        (38, "module 0 of 1: descriptor cut short"),
        (50, "module 0 of 1: pin list cut short"),
        (51, "datastream count missing"),
    ],
)
def test_truncation_problems(size: int, problem: str) -> None:
    parsed = parse_hello(DOCS_EXAMPLE_BYTES[:size])
    assert parsed.problems == (problem,)
    assert parsed.truncated
    assert parsed.firmware_name == "demo" and parsed.firmware_version == (1, 2, 3)


def test_truncated_datastream_keeps_earlier_ones() -> None:
    payload = _full_width().encode()
    parsed = parse_hello(payload[:-1])
    assert parsed.problems == ("datastream 1 of 2: descriptor cut short",)
    assert parsed.datastreams == _full_width().datastreams[:1]
    assert parsed.modules == _full_width().modules


def test_truncated_pin_table_keeps_present_pins() -> None:
    parsed = parse_hello(DOCS_EXAMPLE_BYTES[:31])
    assert parsed.pins == DOCS_EXAMPLE.pins[:2]
    assert parsed.max_payload == 0


def test_accessors() -> None:
    hello = parse_hello(DOCS_EXAMPLE_BYTES)
    assert hello.version_string == "1.2.3"
    assert hello.mcu_id_hex == "1e950f0000000000"
    assert hello.pin_count == 3
    assert hello.pin(3) is None and hello.pin(-1) is None
    assert hello.supports(1, PinMode.PWM)
    assert not hello.supports(0, PinMode.ANALOG)
    assert hello.supports(2, PinMode.ANALOG)
    assert not hello.supports(7, PinMode.INPUT)
    assert hello.module(0) == DOCS_EXAMPLE.modules[0]
    assert hello.module(1) is None
    assert hello.datastream(0) is None
    assert hello.datastream_by_name("x") is None
    pin1 = hello.pin(1)
    assert pin1 is not None
    assert pin1.capability_names == ("digital_in", "digital_out", "pwm_out", "interrupt")
    assert pin1.modes == (PinMode.INPUT, PinMode.OUTPUT, PinMode.PWM, PinMode.INPUT_PULLUP)


def test_identity_ignores_problems_but_not_layout() -> None:
    a = parse_hello(DOCS_EXAMPLE_BYTES)
    assert a.identity() == DOCS_EXAMPLE.identity()
    # `problems` is excluded from equality: a payload cut right before the (empty)
    # datastream count parses to an equal object, flagged as truncated.
    cut = parse_hello(DOCS_EXAMPLE_BYTES[:-1])
    assert cut.truncated and cut == a and cut.identity() == a.identity()
    changed = bytearray(DOCS_EXAMPLE_BYTES)
    changed[19] ^= 0xFF  # mcu_id
    assert parse_hello(bytes(changed)).identity() != a.identity()


@pytest.mark.parametrize(
    ("hello", "message"),
    [
        (
            HelloResp("x" * 17, (1, 0, 0), bytes(8)),
            "firmware name 'xxxxxxxxxxxxxxxxx' is 17 bytes; the field holds 16",
        ),
        (
            HelloResp("fw", (1, 0, 0), bytes(8), modules=(ModuleDescriptor(0, "servo123x"),)),
            "module name 'servo123x' is 9 bytes; the field holds 8",
        ),
        (
            HelloResp(
                "fw", (1, 0, 0), bytes(8), datastreams=(DatastreamDescriptor(0, "é" * 9, 1),)
            ),
            "datastream name 'ééééééééé' is 18 bytes; the field holds 16",
        ),
        (
            HelloResp(
                "fw",
                (1, 0, 0),
                bytes(8),
                datastreams=(DatastreamDescriptor(0, "t", 7, unit="kilopascal"),),
            ),
            "unit 'kilopascal' is 10 bytes; the field holds 8",
        ),
        (
            HelloResp(
                "fw",
                (1, 0, 0),
                bytes(8),
                pins=tuple(PinCapability(i, Capability(0)) for i in range(256)),
            ),
            "pin, module and datastream counts must each be at most 255",
        ),
    ],
)
def test_encode_errors(hello: HelloResp, message: str) -> None:
    with pytest.raises(ValueError) as info:
        hello.encode()
    assert str(info.value) == message


def test_mcu_id_is_padded_or_cut_to_eight_bytes() -> None:
    short = HelloResp("fw", (1, 0, 0), b"\x01\x02")
    assert short.encode()[19:27] == b"\x01\x02" + bytes(6)
    long = HelloResp("fw", (1, 0, 0), bytes(range(10)))
    assert long.encode()[19:27] == bytes(range(8))


# ------------------------------------------------------------------------------ properties


def _name(size: int) -> st.SearchStrategy[str]:
    return st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
        max_size=size,
    ).filter(lambda s: len(s.encode("utf-8")) <= size)


@st.composite
def hellos(draw: st.DrawFn) -> HelloResp:
    caps = draw(st.lists(st.integers(0, 255), max_size=40))
    modules = draw(
        st.lists(
            st.builds(
                ModuleDescriptor,
                module_id=st.integers(0, 255),
                name=_name(8),
                version=st.tuples(st.integers(0, 255), st.integers(0, 255)),
                pins=st.lists(st.integers(0, 255), max_size=6).map(tuple),
            ),
            max_size=6,
        )
    )
    n_ds = draw(st.integers(0, 6))
    datastreams = tuple(
        DatastreamDescriptor(
            index=i,
            name=draw(_name(16)),
            type=draw(st.sampled_from(list(DatastreamType)) | st.integers(0, 255)),
            unit=draw(_name(8)),
            writable=draw(st.booleans()),
            retain=draw(st.booleans()),
            pin_ref=draw(st.integers(0, 255)),
        )
        for i in range(n_ds)
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
        modules=tuple(modules),
        datastreams=datastreams,
    )


@given(hellos())
def test_build_parse_identity(hello: HelloResp) -> None:
    payload = hello.encode()
    expected = (
        36
        + len(hello.pins)
        + sum(12 + len(m.pins) for m in hello.modules)
        + 28 * len(hello.datastreams)
    )
    assert len(payload) == expected
    parsed = parse_hello(payload)
    assert parsed == hello
    assert parsed.problems == ()
    assert parse_hello(payload + b"\x00\xff") == hello


@given(hellos(), st.data())
def test_truncated_hello_never_raises_except_under_29_bytes(
    hello: HelloResp, data: st.DataObject
) -> None:
    payload = hello.encode()
    size = data.draw(st.integers(0, len(payload)))
    prefix = payload[:size]
    if size < FIXED_HEADER_SIZE:
        with pytest.raises(HelloParseError):
            parse_hello(prefix)
        return
    parsed = parse_hello(prefix)
    assert parsed.truncated == (size < len(payload))
    # Whatever was parsed is a faithful prefix of the original.
    assert parsed.firmware_name == hello.firmware_name
    assert parsed.pins == hello.pins[: len(parsed.pins)]
    assert parsed.modules == hello.modules[: len(parsed.modules)]
    assert parsed.datastreams == hello.datastreams[: len(parsed.datastreams)]


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_hello_parse_error(payload: bytes) -> None:
    if len(payload) < FIXED_HEADER_SIZE:
        with pytest.raises(HelloParseError):
            parse_hello(payload)
    else:
        parsed = parse_hello(payload)
        assert len(parsed.pins) <= payload[28]
