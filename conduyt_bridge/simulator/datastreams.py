"""The simulated sketch's datastreams: current values, pushes, and DS_WRITE adoption.

DS_EVENT values are encoded the way the firmware's `writeDatastream` overloads do (quirk
Q10, `docs/protocol.md` §5.5): int32 for every integer type, f32 for FLOAT32, one byte
for BOOL, raw UTF-8 for STRING (no prefix, no NUL), raw bytes for BYTES.
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass

from conduyt_bridge.protocol.constants import FLOAT32_MAX, DatastreamType
from conduyt_bridge.protocol.errors import ValueDecodeError
from conduyt_bridge.protocol.hello import DatastreamDescriptor
from conduyt_bridge.protocol.values import DatastreamValue, decode_value
from conduyt_bridge.simulator.models import Hold, ValueModel
from conduyt_bridge.simulator.profiles import DatastreamSpec
from conduyt_bridge.simulator.sampling import TIME_EPSILON_S

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def zero_value(ds_type: DatastreamType) -> DatastreamValue:
    """The value a fresh sketch variable of `ds_type` holds."""
    if ds_type is DatastreamType.BOOL:
        return False
    if ds_type is DatastreamType.FLOAT32:
        return 0.0
    if ds_type is DatastreamType.STRING:
        return ""
    if ds_type is DatastreamType.BYTES:
        return b""
    return 0


def coerce(ds_type: DatastreamType, value: object) -> DatastreamValue:
    """`value` as the sketch variable behind a datastream of `ds_type` would hold it.

    BOOL takes bool (or int 0/1); integer types take int (or a whole float) within int32;
    FLOAT32 takes int or float (NaN and ±inf allowed: a failing sensor may push NaN);
    STRING takes str; BYTES takes bytes. Raises TypeError for the wrong kind and
    ValueError for a value out of range.
    """
    if ds_type is DatastreamType.BOOL:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        raise TypeError(f"a BOOL datastream takes true/false, not {value!r}")
    if ds_type is DatastreamType.FLOAT32:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"a FLOAT32 datastream takes a number, not {value!r}")
        number = float(value)
        if math.isfinite(number) and abs(number) > FLOAT32_MAX:
            raise ValueError(f"{value!r} does not fit a float32")
        return number
    if ds_type is DatastreamType.STRING:
        if not isinstance(value, str):
            raise TypeError(f"a STRING datastream takes text, not {value!r}")
        return value
    if ds_type is DatastreamType.BYTES:
        if not isinstance(value, bytes | bytearray):
            raise TypeError(f"a BYTES datastream takes bytes, not {value!r}")
        return bytes(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"an {ds_type.name} datastream takes an integer, not {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise TypeError(f"an {ds_type.name} datastream takes an integer, not {value!r}")
        value = int(value)
    if not INT32_MIN <= value <= INT32_MAX:
        raise ValueError(f"{value} does not fit the int32 writeDatastream overload")
    return value


def firmware_encode(ds_type: DatastreamType, value: DatastreamValue) -> bytes:
    """DS_EVENT value bytes as `writeDatastream` sends them (Q10); `value` already coerced."""
    if ds_type is DatastreamType.BOOL:
        return b"\x01" if value else b"\x00"
    if ds_type is DatastreamType.FLOAT32:
        assert isinstance(value, int | float)
        return struct.pack("<f", value)
    if ds_type is DatastreamType.STRING:
        assert isinstance(value, str)
        return value.encode("utf-8")
    if ds_type is DatastreamType.BYTES:
        assert isinstance(value, bytes)
        return value
    assert isinstance(value, int)
    return struct.pack("<i", value)


@dataclass(slots=True)
class DatastreamState:
    """One datastream at run time: its spec, HELLO descriptor and current value."""

    index: int
    spec: DatastreamSpec
    descriptor: DatastreamDescriptor
    model: ValueModel
    value: DatastreamValue
    next_due: float | None = None
    last_step: float | None = None

    def encode(self) -> bytes:
        """The current value as DS_EVENT value bytes."""
        return firmware_encode(self.spec.type, self.value)


class DatastreamTable:
    """All datastreams of the running sketch, by index (ds_index) and by name."""

    def __init__(
        self,
        specs: tuple[DatastreamSpec, ...],
        descriptors: tuple[DatastreamDescriptor, ...],
        rng: random.Random,
    ) -> None:
        self._rng = rng
        self.entries: list[DatastreamState] = []
        for i, (spec, desc) in enumerate(zip(specs, descriptors, strict=True)):
            model = spec.model if spec.model is not None else Hold(zero_value(spec.type))
            value = coerce(spec.type, model.initial())
            self.entries.append(DatastreamState(i, spec, desc, model, value))
        self._by_name = {e.spec.name: e for e in self.entries}

    def get(self, index: int) -> DatastreamState | None:
        """The datastream at ds_index `index`, None if there is none."""
        return self.entries[index] if 0 <= index < len(self.entries) else None

    def by_name(self, name: str) -> DatastreamState:
        """The datastream called `name`. Raises KeyError naming the known datastreams."""
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(self._by_name) or "none"
            raise KeyError(f"no datastream {name!r}; this board has: {known}") from None

    def values(self) -> dict[str, DatastreamValue]:
        """Current value of every datastream by name."""
        return {e.spec.name: e.value for e in self.entries}

    def due(self, now: float) -> list[DatastreamState]:
        """Datastreams whose push is due at `now`, with their values stepped forward.

        The first push of each, at the first tick after boot, carries the boot value; a
        push period of 0 pushes on every call. A late tick does not cause a burst of
        catch-up pushes.
        """
        out: list[DatastreamState] = []
        for e in self.entries:
            period = e.spec.push_interval_s
            if period is None:
                continue
            if e.next_due is None:
                e.next_due = now
            elif now < e.next_due - TIME_EPSILON_S:
                continue
            else:
                dt = now - (e.last_step if e.last_step is not None else now)
                step = e.model.step(e.value, dt, self._rng, self.values())
                e.value = coerce(e.spec.type, step)
            e.last_step = now
            e.next_due += period
            if e.next_due <= now and period > 0:
                e.next_due = now + period
            out.append(e)
        return out

    def adopt(self, state: DatastreamState, raw: bytes) -> DatastreamValue:
        """The sketch's write callback: decode DS_WRITE value bytes and keep the value.

        Values the sketch cannot make sense of (a length that fits no encoding) are
        returned as the raw bytes and leave the current value alone; the firmware ACKs
        them all the same.
        """
        data = raw
        prefixed = len(raw) >= 2 and int.from_bytes(raw[:2], "little") == len(raw) - 2
        if state.spec.type is DatastreamType.BYTES and prefixed:
            # The host's default u16le length prefix (§5.5) is not part of the value.
            data = raw[2:]
        try:
            decoded = decode_value(state.descriptor, data)
            value = coerce(state.spec.type, decoded)
        except (ValueDecodeError, TypeError, ValueError):
            return bytes(raw)
        state.value = value
        return value
