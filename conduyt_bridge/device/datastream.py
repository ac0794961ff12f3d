"""`device.datastream(name)`: a datastream the board declares in its HELLO_RESP
(`docs/protocol.md` §5.5 types and values, §6.1 descriptors)."""

from __future__ import annotations

from conduyt_bridge.device.board_context import BoardContext
from conduyt_bridge.device.capabilities import check_ds_write_value
from conduyt_bridge.errors import ConduytCapabilityError, ErrorName
from conduyt_bridge.protocol.commands import ds_write
from conduyt_bridge.protocol.constants import DatastreamType, PacketType
from conduyt_bridge.protocol.errors import ValueEncodeError
from conduyt_bridge.protocol.hello import DatastreamDescriptor
from conduyt_bridge.protocol.values import (
    DatastreamValue,
    StringEncoding,
    encode_value,
    shortest_float32,
    write_range,
)


class Datastream:
    """A named datastream of the board behind a `ConduytDevice`.

    `value` is the last value the board pushed (DS_EVENT) or that was written through this
    device, None before either; the firmware cannot be asked for it (DS_READ always NAKs,
    Q8). Values: BOOL → bool, integer types → int, FLOAT32 → float, STRING → str,
    BYTES → bytes; the unit is the descriptor's (`descriptor.unit`).
    """

    def __init__(
        self,
        context: BoardContext,
        name: str,
        string_encoding: StringEncoding = StringEncoding.U16_PREFIX,
    ) -> None:
        self._context = context
        self.name = name
        self.string_encoding = string_encoding
        """How STRING/BYTES writes are framed (§5.5: the sources disagree)."""

    def __repr__(self) -> str:
        return f"Datastream({self.name!r})"

    @property
    def descriptor(self) -> DatastreamDescriptor:
        """The datastream's HELLO_RESP descriptor (index, type, unit, writable, retain).

        Raises ConduytDisconnectedError before the first handshake, ConduytCapabilityError
        `UNKNOWN_DATASTREAM` if the board has no datastream of that name.
        """
        hello = self._context.require_hello()
        ds = hello.datastream_by_name(self.name)
        if ds is None:
            known = ", ".join(d.name for d in hello.datastreams) or "none"
            raise ConduytCapabilityError(
                f"datastream '{self.name}' does not exist on this board (datastreams: {known})",
                ErrorName.UNKNOWN_DATASTREAM,
            )
        return ds

    @property
    def value(self) -> DatastreamValue | None:
        """The last value pushed by the board or written through this device, or None."""
        return self._context.values.get(self.name)

    async def write(self, value: DatastreamValue) -> None:
        """Write `value` (DS_WRITE, §4.2) at the declared type's natural size, after
        checking it against the descriptor: writable, right kind, within the type's range
        (`conduyt_bridge.protocol.values.write_range`: 0..100 for an integer in `%`,
        ±1e9 for FLOAT32). The board sends no DS_EVENT back; `value` is updated on ACK.

        Raises ConduytCapabilityError `UNKNOWN_DATASTREAM`, `DATASTREAM_READONLY` or
        `OUT_OF_RANGE` (`datastream 'setpoint' (FLOAT32) takes a number, not 'hot'`),
        before anything is sent; then ConduytDisconnectedError, ConduytTimeoutError or
        ConduytNAKError.
        """
        ds = self.descriptor
        if not ds.writable:
            raise ConduytCapabilityError(
                f"datastream '{ds.name}' is read-only", ErrorName.DATASTREAM_READONLY
            )
        _check_integer_kind(ds, value)
        try:
            raw = encode_value(ds, value, self.string_encoding)
        except ValueEncodeError as exc:
            raise ConduytCapabilityError(str(exc), ErrorName.OUT_OF_RANGE) from None
        check_ds_write_value(ds, raw)
        await self._context.request(PacketType.DS_WRITE, ds_write(ds.index, raw))
        if ds.known_type is DatastreamType.FLOAT32 and isinstance(value, int | float):
            value = shortest_float32(float(value))
        elif isinstance(value, float) and ds.known_type is not None and ds.known_type.is_integer:
            value = int(value)
        self._context.values[ds.name] = value


def _check_integer_kind(ds: DatastreamDescriptor, value: DatastreamValue) -> None:
    """Refuse a value that is not a whole number for an integer datastream, naming the
    range a write may take (`write_range`: 0..100 for a `%` unit, `docs/protocol.md` §5.5).

    Raises ConduytCapabilityError `OUT_OF_RANGE`.
    """
    kind = ds.known_type
    bounds = write_range(ds)
    if kind is None or not kind.is_integer or bounds is None:
        return
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if whole and not isinstance(value, bool):
        return
    unit = f", unit {ds.unit.strip()}" if ds.unit.strip() else ""
    raise ConduytCapabilityError(
        f"datastream '{ds.name}' ({kind.name}{unit}) takes an integer from "
        f"{bounds[0]:.0f} to {bounds[1]:.0f}, not {value!r}",
        ErrorName.OUT_OF_RANGE,
    )
