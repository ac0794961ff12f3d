"""What a board sends unasked, as typed events for `device.events()` (`docs/library.md` §4).

Events carry SEQ 0 (`docs/protocol.md` §1.6, §4.1): DS_EVENT (a datastream value, decoded
per §5.5 from the declared type, tolerant of the firmware's int32 pushes, Q10), PIN_EVENT
(an ANALOG_POLL reading, Q11), MOD_EVENT (attributed to a module by its shape, since
built-in modules send module id 0, Q9; decoded by the module catalog, §8), LOG and FATAL
(UTF-8 text), and the text lines a sketch prints between frames (`docs/serial-text.md`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from enum import StrEnum

from conduyt_bridge.protocol.commands import parse_ds_event, parse_mod_event, parse_pin_value
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.errors import PayloadDecodeError, ValueDecodeError
from conduyt_bridge.protocol.framing import TextLine
from conduyt_bridge.protocol.hello import HelloResp
from conduyt_bridge.protocol.modules import CATALOG, Fields, attribute_event, decode_event
from conduyt_bridge.protocol.packet import Packet
from conduyt_bridge.protocol.values import DatastreamValue, decode_value


class LogSource(StrEnum):
    """Where a `LogEvent`'s text came from."""

    LOG = "log"
    """A LOG packet (0xE0) the sketch sent."""
    FATAL = "fatal"
    """A FATAL packet (0xFF) the sketch sent."""
    SERIAL = "serial"
    """A text line printed on the serial port between frames (`Serial.println`)."""
    LIBRARY = "library"
    """A note of the library itself, not of the board: a pin mode or subscription that
    could not be set again after a reconnect (`docs/library.md` §4)."""


@dataclass(frozen=True, slots=True)
class DatastreamEvent:
    """The board pushed a datastream value (DS_EVENT): `value` decoded per the declared
    type, in the datastream's `unit`; `raw` the value bytes as received."""

    name: str
    index: int
    value: DatastreamValue
    unit: str = ""
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class PinEvent:
    """A pin subscription reported a reading (PIN_EVENT): ADC counts."""

    pin: int
    value: int


@dataclass(frozen=True, slots=True)
class ModuleEvent:
    """A module reported something (MOD_EVENT): encoder `tick` → fields `count`, `delta`
    (steps); stepper `done` → `position` (steps).

    `module_id` and `module` name the module it was attributed to (None when the event
    fits no loaded module or several); `event` is the catalog's event name, None for an
    event the catalog does not know, whose bytes are in `data`.
    """

    module_id: int | None
    module: str | None
    event: str | None
    code: int
    fields: Fields = field(default_factory=dict)
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class LogEvent:
    """A line of text from the board (`source` says which kind)."""

    text: str
    source: LogSource


DeviceEvent = DatastreamEvent | PinEvent | ModuleEvent | LogEvent
"""Any event `device.events()` yields."""


def event_from_packet(hello: HelloResp | None, packet: Packet) -> DeviceEvent | None:
    """The typed event for an event packet, None for one that is malformed, refers to
    nothing in `hello` (an unknown datastream index) or is not one of the four kinds
    (STREAM_DATA, a reply nobody waited for)."""
    kind = packet.type
    try:
        if kind == PacketType.DS_EVENT:
            ds_event = parse_ds_event(packet.payload)
            ds = hello.datastream(ds_event.index) if hello is not None else None
            if ds is None:
                return None
            value = decode_value(ds, ds_event.raw)
            return DatastreamEvent(ds.name, ds.index, value, ds.unit, ds_event.raw)
        if kind == PacketType.PIN_EVENT:
            reading = parse_pin_value(packet.payload)
            return PinEvent(reading.pin, reading.value)
        if kind == PacketType.MOD_EVENT:
            return _module_event(hello, packet.payload)
    except (PayloadDecodeError, ValueDecodeError):
        return None
    if kind == PacketType.LOG:
        return LogEvent(packet.payload.decode("utf-8", errors="replace"), LogSource.LOG)
    if kind == PacketType.FATAL:
        return LogEvent(packet.payload.decode("utf-8", errors="replace"), LogSource.FATAL)
    return None


def event_from_text(line: TextLine) -> LogEvent:
    """The event for a text line printed between frames."""
    return LogEvent(line.text, LogSource.SERIAL)


def _module_event(hello: HelloResp | None, payload: bytes) -> ModuleEvent:
    raw = parse_mod_event(payload)
    modules = hello.modules if hello is not None else ()
    name = attribute_event([m.name for m in modules], raw.event, raw.data)
    if name is not None:
        module_id: int | None = next(m.module_id for m in modules if m.name == name)
    else:
        # Not a built-in's shape: a sketch's own module may well send its real id.
        by_id = hello.module(raw.module_id) if hello is not None else None
        name = by_id.name if by_id is not None else None
        module_id = by_id.module_id if by_id is not None else None
    event_name: str | None = None
    fields: Fields = {}
    if name is not None and name in CATALOG:
        with contextlib.suppress(PayloadDecodeError):  # an unknown event stays raw
            event_name, fields = decode_event(name, raw.event, raw.data)
    return ModuleEvent(module_id, name, event_name, raw.event, fields, raw.data)
