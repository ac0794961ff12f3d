"""Datastream values: DS_WRITE encoding and tolerant DS_EVENT decoding (§5.5, quirk Q10)."""

from __future__ import annotations

import math
import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conduyt_bridge.protocol import (
    DatastreamDescriptor,
    DatastreamType,
    ProtocolError,
    StringEncoding,
    ValueDecodeError,
    ValueEncodeError,
    decode_value,
    encode_value,
    shortest_float32,
)
from conduyt_bridge.protocol.constants import FLOAT32_MAX, INTEGER_RANGES
from conduyt_bridge.protocol.values import value_range, write_range

T = DatastreamType


def ds(type_: DatastreamType | int, name: str = "x") -> DatastreamDescriptor:
    return DatastreamDescriptor(0, name, type_)


def i32(n: int) -> bytes:
    return struct.pack("<i", n)


# ------------------------------------------------------------------------------ encode


@pytest.mark.parametrize(
    ("type_", "value", "wire"),
    [
        (T.BOOL, True, b"\x01"),
        (T.BOOL, False, b"\x00"),
        (T.INT8, -1, b"\xff"),
        (T.UINT8, 255, b"\xff"),
        (T.INT16, -2, b"\xfe\xff"),
        (T.UINT16, 0x1234, b"\x34\x12"),
        (T.INT32, -(2**31), b"\x00\x00\x00\x80"),
        (T.INT16, -3.0, b"\xfd\xff"),  # integral float accepted
        (T.FLOAT32, 22.5, b"\x00\x00\xb4\x41"),  # the DS_WRITE wire vector's value
        (T.FLOAT32, 1, b"\x00\x00\x80\x3f"),  # int accepted for FLOAT32
        (T.STRING, "hé", b"\x03\x00h\xc3\xa9"),  # u16le prefix by default
        (T.BYTES, b"\x00\x01", b"\x02\x00\x00\x01"),
    ],
)
def test_encode_natural_sizes(type_: DatastreamType, value: object, wire: bytes) -> None:
    assert encode_value(ds(type_), value) == wire  # type: ignore[arg-type]


def test_string_encodings() -> None:
    assert encode_value(ds(T.STRING), "ab", StringEncoding.RAW) == b"ab"
    assert encode_value(ds(T.STRING), "ab", StringEncoding.NUL) == b"ab\x00"
    assert encode_value(ds(T.STRING), "", StringEncoding.NUL) == b"\x00"
    assert encode_value(ds(T.STRING), "") == b"\x00\x00"
    assert encode_value(ds(T.BYTES), b"\x05", StringEncoding.RAW) == b"\x05"


@pytest.mark.parametrize(
    ("type_", "value", "kwargs", "message"),
    [
        (T.BOOL, 1, {}, "datastream 'x' (BOOL) takes true or false, not 1"),
        (T.UINT8, True, {}, "datastream 'x' (UINT8) takes an integer from 0 to 255, not True"),
        (T.UINT8, 1.5, {}, "datastream 'x' (UINT8) takes an integer from 0 to 255, not 1.5"),
        (T.UINT8, "1", {}, "datastream 'x' (UINT8) takes an integer from 0 to 255, not '1'"),
        (T.UINT8, 256, {}, "datastream 'x' (UINT8): 256 is out of range 0..255"),
        (T.INT16, -32769, {}, "datastream 'x' (INT16): -32769 is out of range -32768..32767"),
        (T.INT32, 2**31, {}, "datastream 'x' (INT32): 2147483648 is out of range "
                             "-2147483648..2147483647"),
        (T.FLOAT32, True, {}, "datastream 'x' (FLOAT32) takes a number, not True"),
        (T.FLOAT32, "1", {}, "datastream 'x' (FLOAT32) takes a number, not '1'"),
        (T.FLOAT32, math.nan, {},
         "datastream 'x' (FLOAT32): nan is out of range -1000000000..1000000000"),
        (T.FLOAT32, 1e39, {},
         "datastream 'x' (FLOAT32): 1e+39 is out of range -1000000000..1000000000"),
        (T.FLOAT32, 1000000001, {},
         "datastream 'x' (FLOAT32): 1000000001 is out of range -1000000000..1000000000"),
        (T.FLOAT32, -1.5e9, {},
         "datastream 'x' (FLOAT32): -1500000000.0 is out of range -1000000000..1000000000"),
        (T.STRING, b"x", {}, "datastream 'x' (STRING) takes text, not b'x'"),
        (T.BYTES, "x", {}, "datastream 'x' (BYTES) takes bytes, not 'x'"),
        (T.STRING, "x" * 65536, {}, "datastream 'x' (STRING): 65536 bytes exceed 65535"),
        (T.STRING, "", {"string_encoding": StringEncoding.RAW},
         "datastream 'x' (STRING): an empty value cannot be sent with raw encoding"),
        (T.BYTES, b"", {"string_encoding": StringEncoding.RAW},
         "datastream 'x' (BYTES): an empty value cannot be sent with raw encoding"),
        (0x42, 1, {}, "datastream 'x' has type code 66, which this bridge cannot encode"),
    ],
)  # fmt: skip
def test_encode_errors(
    type_: DatastreamType | int, value: object, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueEncodeError) as info:
        encode_value(ds(type_), value, **kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message
    assert isinstance(info.value, ProtocolError)


@pytest.mark.parametrize(
    ("type_", "unit", "expected"),
    [
        (T.UINT8, "", (0.0, 255.0)),
        (T.UINT8, "%", (0.0, 100.0)),
        (T.INT8, "%", (0.0, 100.0)),
        (T.UINT16, " % ", (0.0, 100.0)),
        (T.INT16, "°C", (-32768.0, 32767.0)),
        (T.FLOAT32, "", (-1e9, 1e9)),
        (T.FLOAT32, "%", (-1e9, 1e9)),  # a float percentage keeps the float bounds
        (T.BOOL, "%", None),
        (T.STRING, "", None),
    ],
)
def test_write_range(type_: DatastreamType, unit: str, expected: object) -> None:
    assert write_range(DatastreamDescriptor(0, "x", type_, unit=unit)) == expected


def test_write_range_is_what_encode_accepts() -> None:
    # The bounds HA is told (write_range) are accepted; one step beyond is refused.
    for type_, unit in [(T.UINT8, "%"), (T.INT8, "%"), (T.UINT8, ""), (T.FLOAT32, "")]:
        d = DatastreamDescriptor(0, "x", type_, unit=unit)
        bounds = write_range(d)
        assert bounds is not None
        lo, hi = bounds
        as_int = type_ is not T.FLOAT32
        for edge in (lo, hi):
            encode_value(d, int(edge) if as_int else edge)
        with pytest.raises(ValueEncodeError):
            encode_value(d, int(hi) + 1 if as_int else hi * 1.0001)
        with pytest.raises(ValueEncodeError):
            encode_value(d, int(lo) - 1 if as_int else lo * 1.0001)


def test_percent_integer_refuses_above_100() -> None:
    duty = DatastreamDescriptor(0, "duty", T.UINT8, unit="%", writable=True)
    assert encode_value(duty, 100) == b"\x64"
    with pytest.raises(ValueEncodeError) as info:
        encode_value(duty, 101)
    assert str(info.value) == "datastream 'duty' (UINT8): 101 is out of range 0..100 (unit %)"
    with pytest.raises(ValueEncodeError) as info:
        encode_value(duty, 256)
    assert str(info.value) == "datastream 'duty' (UINT8): 256 is out of range 0..255"


def test_value_range() -> None:
    assert value_range(T.UINT16) == (0.0, 65535.0)
    assert value_range(T.FLOAT32) == (-FLOAT32_MAX, FLOAT32_MAX)
    assert value_range(T.BOOL) is None and value_range(T.STRING) is None


# ------------------------------------------------------------------------------ decode (§5.5)


@pytest.mark.parametrize(
    ("type_", "raw", "value"),
    [
        # L equals the nominal size → as T
        (T.BOOL, b"\x01", True),
        (T.BOOL, b"\x00", False),
        (T.BOOL, b"\x02", True),
        (T.INT8, b"\xff", -1),
        (T.UINT8, b"\xff", 255),
        (T.INT16, b"\xfe\xff", -2),
        (T.UINT16, b"\xff\xff", 65535),
        (T.INT32, i32(-7), -7),
        (T.FLOAT32, b"\x00\x00\xac\x41", 21.5),
        # L = 4 for a smaller type or BOOL → int32 overload, clamped (BOOL: non-zero)
        (T.UINT16, i32(1023), 1023),
        (T.UINT16, i32(70000), 65535),
        (T.UINT16, i32(-5), 0),
        (T.INT16, i32(-40000), -32768),
        (T.INT8, i32(200), 127),
        (T.UINT8, i32(-1), 0),
        (T.BOOL, i32(0), False),
        (T.BOOL, i32(256), True),
        # L = 1 for a 2/4-byte type → bool/uint8 overload
        (T.FLOAT32, b"\x01", 1),
        (T.INT32, b"\x00", 0),
        (T.UINT16, b"\x01", 1),
        # STRING: raw, NULs stripped, u16 prefix equal to L-2 stripped, bad UTF-8 replaced
        (T.STRING, b"hello", "hello"),
        (T.STRING, b"hello\x00\x00", "hello"),
        (T.STRING, b"\x05\x00hello", "hello"),
        (T.STRING, b"\x04\x00hello", "\x04\x00hello"),  # prefix != L-2: kept
        (T.STRING, b"\xffab", "\ufffdab"),
        (T.STRING, b"", ""),
        # BYTES: raw
        (T.BYTES, b"\x02\x00\x00\x01", b"\x02\x00\x00\x01"),
    ],
)
def test_decode_rules(type_: DatastreamType, raw: bytes, value: object) -> None:
    decoded = decode_value(ds(type_), raw)
    assert decoded == value
    assert type(decoded) is type(value)


def test_decode_float32_uses_shortest_text() -> None:
    assert decode_value(ds(T.FLOAT32), struct.pack("<f", 0.1)) == 0.1
    assert repr(decode_value(ds(T.FLOAT32), struct.pack("<f", 22.4))) == "22.4"


@pytest.mark.parametrize(
    ("type_", "raw", "message"),
    [
        (T.INT16, b"\x01\x02\x03", "datastream 'x' (INT16): a 3-byte value fits no known encoding"),
        (T.BOOL, b"", "datastream 'x' (BOOL): a 0-byte value fits no known encoding"),
        (T.BOOL, b"\x01\x00", "datastream 'x' (BOOL): a 2-byte value fits no known encoding"),
        (T.INT8, b"\x01\x00", "datastream 'x' (INT8): a 2-byte value fits no known encoding"),
        (T.INT32, b"\x01\x00", "datastream 'x' (INT32): a 2-byte value fits no known encoding"),
        (T.FLOAT32, b"", "datastream 'x' (FLOAT32): a 0-byte value fits no known encoding"),
        (T.FLOAT32, bytes(8), "datastream 'x' (FLOAT32): a 8-byte value fits no known encoding"),
        (0x42, b"\x01", "datastream 'x' has unknown type code 66"),
    ],
)
def test_decode_malformed_keeps_raw(type_: DatastreamType | int, raw: bytes, message: str) -> None:
    with pytest.raises(ValueDecodeError) as info:
        decode_value(ds(type_), raw)
    assert str(info.value) == message
    assert info.value.raw == raw
    assert type(info.value.raw) is bytes


# ------------------------------------------------------------------------------ shortest_float32


def test_shortest_float32() -> None:
    assert shortest_float32(struct.unpack("<f", struct.pack("<f", 0.1))[0]) == 0.1
    assert shortest_float32(21.5) == 21.5
    assert math.isnan(shortest_float32(math.nan))
    assert shortest_float32(-math.inf) == -math.inf


def test_shortest_float32_at_the_float32_limits() -> None:
    """Regression: ±FLT_MAX used to raise OverflowError (a 6-digit rounding overflows)."""
    assert shortest_float32(FLOAT32_MAX) == 3.4028235e38
    assert shortest_float32(-FLOAT32_MAX) == -3.4028235e38
    assert decode_value(ds(T.FLOAT32), b"\xff\xff\x7f\x7f") == 3.4028235e38
    assert shortest_float32(1.401298464324817e-45) == 1e-45  # smallest subnormal


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_shortest_float32_round_trips(value: float) -> None:
    short = shortest_float32(value)
    assert struct.pack("<f", short) == struct.pack("<f", value)
    # Fewer significant digits, not a shorter `repr`: Python prints 1e15 as
    # `1000000000000000.0`, one character longer than its float32 neighbour's digits.
    assert _significant_digits(short) <= _significant_digits(value)


def _significant_digits(value: float) -> int:
    """How many significant digits the shortest decimal text of `value` has."""
    return len(Decimal(repr(value)).normalize().as_tuple().digits)


def test_shortest_float32_counts_digits_not_characters() -> None:
    """Regression (found by hypothesis): 999999986991104.0 is float32 1e15."""
    assert shortest_float32(999999986991104.0) == 1e15


# ------------------------------------------------------------------------------ identity


@given(st.sampled_from(sorted(INTEGER_RANGES)), st.data())
def test_integer_identity(type_: DatastreamType, data: st.DataObject) -> None:
    lo, hi = INTEGER_RANGES[type_]
    value = data.draw(st.integers(lo, hi))
    raw = encode_value(ds(type_), value)
    assert len(raw) == type_.nominal_size
    assert decode_value(ds(type_), raw) == value


@given(st.booleans())
def test_bool_identity(value: bool) -> None:
    assert decode_value(ds(T.BOOL), encode_value(ds(T.BOOL), value)) is value


@given(st.floats(min_value=-1e9, max_value=1e9, width=32))
def test_float32_identity(value: float) -> None:
    decoded = decode_value(ds(T.FLOAT32), encode_value(ds(T.FLOAT32), value))
    assert isinstance(decoded, float)
    assert struct.pack("<f", decoded) == struct.pack("<f", value)


@given(
    st.text(alphabet=st.characters(codec="utf-8")).filter(lambda s: not s.endswith("\x00")),
    st.sampled_from([StringEncoding.U16_PREFIX, StringEncoding.NUL]),
)
def test_string_identity(value: str, encoding: StringEncoding) -> None:
    assert decode_value(ds(T.STRING), encode_value(ds(T.STRING), value, encoding)) == value


@given(st.binary(min_size=1))
def test_bytes_identity_raw(value: bytes) -> None:
    raw = encode_value(ds(T.BYTES), value, StringEncoding.RAW)
    assert decode_value(ds(T.BYTES), raw) == value


@given(st.sampled_from(list(DatastreamType)), st.binary(max_size=8))
def test_decode_never_raises_anything_but_value_decode_error(
    type_: DatastreamType, raw: bytes
) -> None:
    try:
        decode_value(ds(type_), raw)
    except ValueDecodeError as exc:
        assert exc.raw == raw
