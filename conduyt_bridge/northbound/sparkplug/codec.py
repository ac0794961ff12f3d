"""Sparkplug B payloads: build and read the protobuf `Payload` (`docs/sparkplug.md` §4).

The message classes come from the Eclipse Tahu schema `sparkplug_b.proto` as compiled and
shipped by the `esio-spb-builder` package (`docs/sparkplug.md` §8 says why that one), run
by Google's `protobuf`. Only its generated module is used; this module is the one place
that touches it, so the rest of the adapter deals in plain Python values.

Value fields per Sparkplug 3.0 §6.4.16 (datatypes) and §6.4.7 (metric values): Int8..Int32
and UInt8..UInt32 in `int_value` (signed ones as 32-bit two's complement), Int64/UInt64
and DateTime in `long_value`, Float in `float_value`, Double in `double_value`, Boolean in
`boolean_value`, String/Text/UUID in `string_value`, Bytes in `bytes_value`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from esio_spb_builder.core import sparkplug_b_pb2 as _pb
from google.protobuf.message import DecodeError

from conduyt_bridge.protocol.constants import DatastreamType
from conduyt_bridge.protocol.hello import DatastreamDescriptor
from conduyt_bridge.protocol.values import DatastreamValue

MAX_COMMAND_BYTES = 65536
"""Largest NCMD/DCMD payload decoded; a bigger one is ignored (and counted)."""

MAX_COMMAND_METRICS = 64
"""Metrics taken from one NCMD/DCMD; the rest are ignored (and counted)."""


class DataType(IntEnum):
    """Sparkplug B metric datatypes (3.0 §6.4.16; the codes of `sparkplug_b.proto`)."""

    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14
    UUID = 15
    BYTES = 17


_FROM_CONDUYT = {
    DatastreamType.BOOL: DataType.BOOLEAN,
    DatastreamType.INT8: DataType.INT8,
    DatastreamType.UINT8: DataType.UINT8,
    DatastreamType.INT16: DataType.INT16,
    DatastreamType.UINT16: DataType.UINT16,
    DatastreamType.INT32: DataType.INT32,
    DatastreamType.FLOAT32: DataType.FLOAT,
    DatastreamType.STRING: DataType.STRING,
    DatastreamType.BYTES: DataType.BYTES,
}

_INT32 = {DataType.INT8, DataType.INT16, DataType.INT32}
_UINT32 = {DataType.UINT8, DataType.UINT16, DataType.UINT32}
_LONG = {DataType.INT64, DataType.UINT64, DataType.DATETIME}
_TEXT = {DataType.STRING, DataType.TEXT, DataType.UUID}


def datatype_of(ds: DatastreamDescriptor) -> DataType:
    """The Sparkplug datatype of a Conduyt datastream (`docs/sparkplug.md` §4 table); a type
    code this bridge does not know is carried as Bytes."""
    known = ds.known_type
    return _FROM_CONDUYT[known] if known is not None else DataType.BYTES


class SparkplugPayloadError(ValueError):
    """A command payload that is too large or is no Sparkplug B protobuf `Payload`."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric to encode: `name` and/or `alias`; `datatype` (omitted in DATA messages
    when None); `value` None is sent as `is_null`; `properties` maps a property name to
    its datatype and value (e.g. `engUnit`, `readOnly`); `ts_ms` in ms since the epoch."""

    name: str | None
    alias: int | None
    datatype: DataType | None
    value: DatastreamValue | None
    ts_ms: int | None = None
    properties: Mapping[str, tuple[DataType, DatastreamValue]] | None = None
    value_type: DataType | None = None
    """How to encode `value` when `datatype` is omitted (DATA messages)."""


def _set_value(target: Any, datatype: DataType, value: DatastreamValue) -> None:
    if datatype is DataType.BOOLEAN:
        target.boolean_value = bool(value)
    elif datatype in _INT32:
        target.int_value = int(value) & 0xFFFFFFFF
    elif datatype in _UINT32:
        target.int_value = int(value)
    elif datatype in _LONG:
        target.long_value = int(value) & 0xFFFFFFFFFFFFFFFF
    elif datatype is DataType.FLOAT:
        target.float_value = float(value)
    elif datatype is DataType.DOUBLE:
        target.double_value = float(value)
    elif datatype in _TEXT:
        target.string_value = value if isinstance(value, str) else str(value)
    elif isinstance(value, bytes):
        target.bytes_value = value
    else:
        target.bytes_value = str(value).encode()


def encode_payload(metrics: list[Metric], *, ts_ms: int, seq: int | None) -> bytes:
    """A serialized `Payload` with `timestamp` (ms), `seq` (omitted when None: NDEATH,
    3.0 §6.4.1) and `metrics` in order."""
    payload = _pb.Payload()
    payload.timestamp = ts_ms
    if seq is not None:
        payload.seq = seq
    for m in metrics:
        pm = payload.metrics.add()
        if m.name is not None:
            pm.name = m.name
        if m.alias is not None:
            pm.alias = m.alias
        if m.datatype is not None:
            pm.datatype = int(m.datatype)
        if m.ts_ms is not None:
            pm.timestamp = m.ts_ms
        kind = m.datatype or m.value_type
        if m.value is None or kind is None:
            pm.is_null = True
        else:
            _set_value(pm, kind, m.value)
        if m.properties:
            for key, (ptype, pvalue) in m.properties.items():
                pm.properties.keys.append(key)
                pv = pm.properties.values.add()
                pv.type = int(ptype)
                _set_value(pv, ptype, pvalue)
    data: bytes = payload.SerializeToString()
    return data


@dataclass(frozen=True, slots=True)
class CommandMetric:
    """A metric of an NCMD/DCMD: `name` ("" if absent), `alias` (None if absent),
    `datatype` (None if absent), its value field (None when `is_null` or unset)."""

    name: str
    alias: int | None
    datatype: int | None
    value: DatastreamValue | None


def decode_command(data: bytes) -> tuple[list[CommandMetric], int]:
    """The metrics of a command payload (at most `MAX_COMMAND_METRICS`) and how many more
    were left out. Raises SparkplugPayloadError (too large, not a `Payload`)."""
    if len(data) > MAX_COMMAND_BYTES:
        raise SparkplugPayloadError(f"payload of {len(data)} bytes > {MAX_COMMAND_BYTES}")
    payload = _pb.Payload()
    try:
        payload.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise SparkplugPayloadError(f"not a Sparkplug B payload: {exc}") from None
    out: list[CommandMetric] = []
    for pm in list(payload.metrics)[:MAX_COMMAND_METRICS]:
        datatype = pm.datatype if pm.HasField("datatype") else None
        out.append(
            CommandMetric(
                name=pm.name,
                alias=pm.alias if pm.HasField("alias") else None,
                datatype=datatype,
                value=None if pm.is_null else _read_value(pm, datatype),
            )
        )
    return out, max(0, len(payload.metrics) - MAX_COMMAND_METRICS)


def as_signed(value: DatastreamValue, datatype: int | None) -> DatastreamValue:
    """`value` as read from `int_value`/`long_value` (unsigned on the wire), sign-converted
    for a signed `datatype` (two's complement, 3.0 §6.4.16); anything else as is."""
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    if datatype in _INT32 and 2**31 <= value < 2**32:
        return value - 2**32
    if datatype == DataType.INT64 and value >= 2**63:
        return value - 2**64
    return value


def _read_value(pm: Any, datatype: int | None) -> DatastreamValue | None:
    field = pm.WhichOneof("value")
    if field is None:
        return None
    value = getattr(pm, field)
    if field in ("int_value", "long_value"):
        value = as_signed(value, datatype)
    if isinstance(value, bool | int | float | str | bytes):
        return value
    return None  # DataSet, Template, extension: not a datastream value


__all__ = [
    "MAX_COMMAND_BYTES",
    "MAX_COMMAND_METRICS",
    "CommandMetric",
    "DataType",
    "Metric",
    "SparkplugPayloadError",
    "as_signed",
    "datatype_of",
    "decode_command",
    "encode_payload",
]
