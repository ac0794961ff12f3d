"""Datastream values: encode by declared type, decode tolerant of the firmware (§5.5).

The firmware pushes DS_EVENT values by C++ overload, not by declared type (quirk Q10):
a UINT16 datastream usually arrives as a 4-byte int32, a STRING as raw UTF-8. DS_WRITE
values are encoded at the declared type's natural size, with range checks.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable
from enum import StrEnum

from conduyt_bridge.protocol.constants import FLOAT32_MAX, INTEGER_RANGES, DatastreamType
from conduyt_bridge.protocol.errors import ValueDecodeError, ValueEncodeError
from conduyt_bridge.protocol.hello import DatastreamDescriptor

DatastreamValue = bool | int | float | str | bytes
"""A decoded datastream value: BOOL → bool, integers → int, FLOAT32 → float,
STRING → str, BYTES → bytes."""

_INT_FORMAT = {
    DatastreamType.INT8: "<b",
    DatastreamType.UINT8: "<B",
    DatastreamType.INT16: "<h",
    DatastreamType.UINT16: "<H",
    DatastreamType.INT32: "<i",
}


class StringEncoding(StrEnum):
    """How STRING/BYTES DS_WRITE values are framed (§5.5: the sources disagree)."""

    U16_PREFIX = "u16_prefix"
    """u16le length, then the bytes (constants.json form; the default)."""
    RAW = "raw"
    """The bytes alone."""
    NUL = "nul"
    """The bytes and a terminating 0x00."""


def shortest_float32(value: float) -> float:
    """The Python float with the shortest decimal text that round-trips `value` as float32.

    `shortest_float32(21.500000953674316)` → `21.5`-like text for float32 data: JSON and
    MQTT payloads then read `21.5`, not `21.500000953674316`. NaN and ±inf pass through.
    """
    if not math.isfinite(value):
        return value
    target = _F32.pack(value)
    # Normal floats start at 6 significant digits: if a shorter text round-trips, rounding
    # to 6 digits yields exactly that text (a normal float32 lies within 2^-24 relative of
    # it, far inside the 6-digit rounding interval), so nothing shorter is missed. Hot path
    # (every DS_EVENT). Subnormals have coarser relative spacing: try every length.
    formats = _DIGIT_FORMATS if abs(value) >= _F32_MIN_NORMAL else _ALL_DIGIT_FORMATS
    for fmt in formats:
        candidate = float(fmt % value)
        try:
            packed = _F32.pack(candidate)
        except OverflowError:  # a short rounding of ±FLT_MAX lies beyond float32 range
            continue
        if packed == target:
            return candidate
    return value


_F32 = struct.Struct("<f")
_DIGIT_FORMATS = ("%.6g", "%.7g", "%.8g", "%.9g")
_ALL_DIGIT_FORMATS = tuple(f"%.{d}g" for d in range(1, 10))
_F32_MIN_NORMAL = 1.1754943508222875e-38


def value_range(ds_type: DatastreamType) -> tuple[float, float] | None:
    """Inclusive (min, max) a numeric type can hold; None for BOOL, STRING, BYTES."""
    if ds_type in INTEGER_RANGES:
        lo, hi = INTEGER_RANGES[ds_type]
        return float(lo), float(hi)
    if ds_type is DatastreamType.FLOAT32:
        return -FLOAT32_MAX, FLOAT32_MAX
    return None


FLOAT_WRITE_LIMIT = 1e9
"""Largest magnitude a FLOAT32 datastream write may have (both signs).

Not ±FLOAT32_MAX: Home Assistant's frontend checks a typed value against `min + n·step`,
and with a min of -3.4e38 no ordinary value (21.5) is a whole number of 0.001 steps away
in double precision, so every input would be flagged. ±1e9 is wider than any setpoint a
board plausibly takes (float32 keeps only ~7 significant digits anyway), and HA's
`number` entity advertises exactly this range
(`conduyt_bridge.northbound.homeassistant.discovery`), so what HA offers and what the
bridge accepts are one rule (`write_range`).
"""

PERCENT_RANGE = (0, 100)
"""Write range of an integer datastream whose unit is `%`: a percentage, not the type's
full range (a UINT8 `%` would otherwise take 0..255)."""


def write_range(ds: DatastreamDescriptor) -> tuple[float, float] | None:
    """Inclusive (min, max) a write to numeric datastream `ds` may take; None for BOOL,
    STRING, BYTES and unknown types.

    Integers: the type's range, narrowed to 0..100 when the unit is `%` (`PERCENT_RANGE`);
    FLOAT32: ±`FLOAT_WRITE_LIMIT`. `encode_value` refuses anything outside, and HA
    discovery advertises exactly these bounds as the `number` entity's min and max.
    """
    ds_type = ds.known_type
    if ds_type in INTEGER_RANGES:
        lo, hi = INTEGER_RANGES[ds_type]
        if ds.unit.strip() == "%":
            lo, hi = max(lo, PERCENT_RANGE[0]), min(hi, PERCENT_RANGE[1])
        return float(lo), float(hi)
    if ds_type is DatastreamType.FLOAT32:
        return -FLOAT_WRITE_LIMIT, FLOAT_WRITE_LIMIT
    return None


def encode_value(
    ds: DatastreamDescriptor,
    value: DatastreamValue,
    string_encoding: StringEncoding = StringEncoding.U16_PREFIX,
) -> bytes:
    """DS_WRITE value bytes for `value` at the declared type's natural size (§5.5).

    Integers are accepted for FLOAT32; floats with no fractional part for integer types.
    Raises ValueEncodeError naming the datastream, its type and the allowed range when the
    value is of the wrong kind, out of range, not finite, or the type is unknown.
    """
    ds_type = ds.known_type
    if ds_type is None:
        raise ValueEncodeError(
            f"datastream '{ds.name}' has type code {int(ds.type)}, which this bridge cannot encode"
        )
    label = f"datastream '{ds.name}' ({ds_type.name})"
    if ds_type is DatastreamType.BOOL:
        if not isinstance(value, bool):
            raise ValueEncodeError(f"{label} takes true or false, not {value!r}")
        return b"\x01" if value else b"\x00"
    if ds_type in INTEGER_RANGES:
        lo, hi = INTEGER_RANGES[ds_type]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueEncodeError(f"{label} takes an integer from {lo} to {hi}, not {value!r}")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueEncodeError(f"{label} takes an integer from {lo} to {hi}, not {value!r}")
            value = int(value)
        if not lo <= value <= hi:
            raise ValueEncodeError(f"{label}: {value} is out of range {lo}..{hi}")
        if ds.unit.strip() == "%" and not PERCENT_RANGE[0] <= value <= PERCENT_RANGE[1]:
            raise ValueEncodeError(
                f"{label}: {value} is out of range {PERCENT_RANGE[0]}..{PERCENT_RANGE[1]} (unit %)"
            )
        return struct.pack(_INT_FORMAT[ds_type], value)
    if ds_type is DatastreamType.FLOAT32:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueEncodeError(f"{label} takes a number, not {value!r}")
        number = float(value)
        if not math.isfinite(number) or abs(number) > FLOAT_WRITE_LIMIT:
            raise ValueEncodeError(
                f"{label}: {value!r} is out of range"
                f" {-FLOAT_WRITE_LIMIT:.0f}..{FLOAT_WRITE_LIMIT:.0f}"
            )
        return struct.pack("<f", number)
    if ds_type is DatastreamType.STRING:
        if not isinstance(value, str):
            raise ValueEncodeError(f"{label} takes text, not {value!r}")
        data = value.encode("utf-8")
    else:
        if not isinstance(value, bytes):
            raise ValueEncodeError(f"{label} takes bytes, not {value!r}")
        data = value
    if string_encoding is StringEncoding.U16_PREFIX:
        if len(data) > 0xFFFF:
            raise ValueEncodeError(f"{label}: {len(data)} bytes exceed 65535")
        return len(data).to_bytes(2, "little") + data
    if string_encoding is StringEncoding.NUL:
        return data + b"\x00"
    if not data:
        # DS_WRITE needs ≥ 2 payload bytes (§4.2): an empty raw value cannot be sent.
        raise ValueEncodeError(f"{label}: an empty value cannot be sent with raw encoding")
    return data


ValueDecoder = Callable[[bytes], DatastreamValue]
"""Decodes the value bytes of a DS_EVENT for one datastream (`value_decoder`)."""


def value_decoder(ds: DatastreamDescriptor) -> ValueDecoder:
    """`decode_value` for `ds`, with the choice by declared type made once (per
    HELLO_RESP, not per DS_EVENT): the same results and errors. A FLOAT32 value of 4
    bytes, the common case, takes a fast path: an integral value up to 2**24 is its own
    shortest form; otherwise the 6-digit text is kept when it packs back to exactly the
    received bytes, which is what `shortest_float32` returns first for a normal float
    (`docs/architecture.md` §6.1)."""
    if ds.known_type is not DatastreamType.FLOAT32:
        return functools.partial(decode_value, ds)
    unpack, pack = _F32.unpack, _F32.pack

    def decode_float32(raw: bytes) -> DatastreamValue:
        if len(raw) == 4:
            value: float = unpack(raw)[0]
            if -_F32_EXACT_INT <= value <= _F32_EXACT_INT and value.is_integer():
                return value  # its integer text is the shortest (counters, whole readings)
            if _F32_MIN_NORMAL <= abs(value) < _F32_SHORT_MAX:  # normal, finite
                candidate = float(f"{value:.6g}")
                if pack(candidate) == raw:
                    return candidate
            return shortest_float32(value)
        return decode_value(ds, raw)

    return decode_float32


_F32_EXACT_INT = float(2**24)
"""Up to here every integer is a float32, 1 or less apart from the next: no decimal with
fewer digits than the integer's own is nearer than half a step, so `shortest_float32` of
an integral value is the value itself (zero and -0.0 included)."""

_F32_SHORT_MAX = 3.0e38
"""Below FLT_MAX (3.4028235e38) by more than a 6-digit rounding step, so packing the
6-digit candidate cannot overflow (above it, `shortest_float32` handles the case)."""


def decode_value(ds: DatastreamDescriptor, raw: bytes) -> DatastreamValue:
    """Decode a DS_EVENT value of length L for declared type T, following §5.5's rules.

    L == nominal size → as T; L == 4 for a smaller integer type or BOOL → int32 overload
    (clamped to T's range, BOOL: non-zero = true); L == 1 for a 2/4-byte type → bool/uint8
    overload; STRING → UTF-8 (replacement chars), trailing NULs stripped, a u16le prefix
    equal to L-2 stripped; BYTES → as is.

    Raises ValueDecodeError (with `.raw`) for any other length, an empty value or an
    unknown type.
    """
    ds_type = ds.known_type
    n = len(raw)
    if ds_type is DatastreamType.STRING:
        data = raw
        if n >= 2 and int.from_bytes(raw[:2], "little") == n - 2:
            data = raw[2:]
        return data.rstrip(b"\x00").decode("utf-8", errors="replace")
    if ds_type is DatastreamType.BYTES:
        return bytes(raw)
    if ds_type is None:
        raise ValueDecodeError(
            f"datastream '{ds.name}' has unknown type code {int(ds.type)}", bytes(raw)
        )
    size = ds_type.nominal_size
    if ds_type is DatastreamType.BOOL:
        if n in (1, 4):
            return any(raw)
    elif ds_type is DatastreamType.FLOAT32:
        if n == 4:
            return shortest_float32(struct.unpack("<f", raw)[0])
        if n == 1:
            return int(raw[0])
    elif n == size:
        return int(struct.unpack(_INT_FORMAT[ds_type], raw)[0])
    elif n == 4:
        lo, hi = INTEGER_RANGES[ds_type]
        return min(max(int(struct.unpack("<i", raw)[0]), lo), hi)
    elif n == 1:
        return int(raw[0])
    raise ValueDecodeError(
        f"datastream '{ds.name}' ({ds_type.name}): a {n}-byte value fits no known encoding",
        bytes(raw),
    )
