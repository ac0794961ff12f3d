"""Datastream checks: DS_WRITE values and datastream indexes against HELLO_RESP.

A value must have the declared type's natural size (`docs/protocol.md` §5.5); the
firmware would otherwise read missing bytes as 0. Pure functions, no I/O.
"""

from __future__ import annotations

import math
import struct

from conduyt_bridge.errors import ConduytCapabilityError, ConduytPayloadError, ErrorName
from conduyt_bridge.protocol.constants import DatastreamType
from conduyt_bridge.protocol.hello import DatastreamDescriptor, HelloResp

__all__ = ["check_ds_write_value", "require_datastream"]


def check_ds_write_value(ds: DatastreamDescriptor, value: bytes) -> None:
    """Raw DS_WRITE value bytes for `ds` (§5.5): writable, the declared type's natural size
    (BOOL 0/1, FLOAT32 finite), at least one byte for STRING/BYTES.

    Raises ConduytCapabilityError `DATASTREAM_READONLY` or `OUT_OF_RANGE`, ConduytPayloadError
    `BAD_VALUE` for a value of the wrong size.
    """
    if not ds.writable:
        raise ConduytCapabilityError(
            f"datastream '{ds.name}' is read-only", ErrorName.DATASTREAM_READONLY
        )
    ds_type = ds.known_type
    label = f"datastream '{ds.name}' ({ds_type.name if ds_type else int(ds.type)})"
    if ds_type is None:
        raise ConduytCapabilityError(
            f"{label}: unknown type, cannot be written", ErrorName.UNKNOWN_DATASTREAM
        )
    size = ds_type.nominal_size
    if size is None:
        if not value:
            raise ConduytPayloadError(
                f"{label} needs a value of at least 1 byte", ErrorName.BAD_VALUE
            )
        return
    if len(value) != size:
        raise ConduytPayloadError(
            f"{label} takes a {size}-byte value, got {len(value)} bytes", ErrorName.BAD_VALUE
        )
    if ds_type is DatastreamType.BOOL and value[0] > 1:
        raise ConduytCapabilityError(
            f"{label} takes 0x00 or 0x01, got 0x{value[0]:02x}", ErrorName.OUT_OF_RANGE
        )
    if ds_type is DatastreamType.FLOAT32 and not math.isfinite(struct.unpack("<f", value)[0]):
        raise ConduytCapabilityError(f"{label} takes a finite float32", ErrorName.OUT_OF_RANGE)


def require_datastream(hello: HelloResp, index: int) -> DatastreamDescriptor:
    """Datastream `index` (§6.1). Raises ConduytCapabilityError `UNKNOWN_DATASTREAM`."""
    ds = hello.datastream(index)
    if ds is None:
        raise ConduytCapabilityError(
            f"datastream index {index} does not exist: this board has "
            f"{len(hello.datastreams)} datastreams",
            ErrorName.UNKNOWN_DATASTREAM,
        )
    return ds
