"""Command payload builders and event payload parsers (`docs/protocol.md` §4).

Builders send exactly what the firmware parses, including its length oddities (quirk
Q7): PIN_SUBSCRIBE is always 7 bytes, STREAM_START always 5. Parsers raise
PayloadDecodeError for a payload shorter than its layout.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from conduyt_bridge.protocol.constants import ErrorCode, PinMode, SubscribeMode, error_name
from conduyt_bridge.protocol.errors import PayloadDecodeError


def _byte(value: int, what: str) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{what} {value} is not in 0..255")
    return value


def _u16(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what} {value} is not in 0..65535")
    return value.to_bytes(2, "little")


def pin_mode(pin: int, mode: PinMode) -> bytes:
    """PIN_MODE payload `[pin][mode]` (§4.2)."""
    return bytes((_byte(pin, "pin"), int(mode)))


def pin_write(pin: int, value: int, mode: PinMode | None = None) -> bytes:
    """PIN_WRITE payload `[pin][value]` or `[pin][value][mode]` (§4.2).

    Without the mode byte the firmware treats values 2..255 as PWM; pass `PinMode.PWM` to
    write duty 1/255 as PWM, or `PinMode.OUTPUT` for a digital level.
    """
    head = bytes((_byte(pin, "pin"), _byte(value, "value")))
    return head if mode is None else head + bytes((int(mode),))


def pin_read(pin: int, mode: PinMode | None = None) -> bytes:
    """PIN_READ payload `[pin]` or `[pin][mode]` (§4.2)."""
    return bytes((_byte(pin, "pin"),)) if mode is None else bytes((_byte(pin, "pin"), int(mode)))


def pin_subscribe(pin: int, mode: SubscribeMode, interval_ms: int, threshold: int = 0) -> bytes:
    """PIN_SUBSCRIBE payload, always the 7-byte form the firmware reads fully (§4.2, Q7).

    `interval_ms` 0 means 100 ms on the board; `threshold` in raw ADC counts.
    """
    return (
        bytes((_byte(pin, "pin"), int(mode)))
        + _u16(interval_ms, "interval_ms")
        + _u16(threshold, "threshold")
        + b"\x00"
    )


def pin_unsubscribe(pin: int) -> bytes:
    """PIN_UNSUBSCRIBE payload `[pin]`."""
    return bytes((_byte(pin, "pin"),))


def stream_start(pin_mask: int, rate_hz: int) -> bytes:
    """STREAM_START payload: mask u16le, rate u16le, one pad byte (the firmware needs ≥ 5)."""
    return _u16(pin_mask, "pin_mask") + _u16(rate_hz, "rate_hz") + b"\x00"


def ds_write(index: int, value: bytes) -> bytes:
    """DS_WRITE payload `[index][value…]` (value encoded by `values.encode_value`)."""
    if not value:
        raise ValueError("a DS_WRITE value needs at least one byte")
    return bytes((_byte(index, "datastream index"),)) + value


def mod_cmd(module_id: int, command: int, args: bytes = b"") -> bytes:
    """MOD_CMD payload `[module_id][cmd][args…]` (§4.2)."""
    return bytes((_byte(module_id, "module_id"), _byte(command, "command"))) + args


@dataclass(frozen=True, slots=True)
class PinValue:
    """A pin reading (PIN_EVENT or PIN_READ_RESP): pin index and raw value (0/1 or ADC counts)."""

    pin: int
    value: int


def parse_pin_value(payload: bytes) -> PinValue:
    """`[pin u8][value u16le]` of PIN_EVENT / PIN_READ_RESP. Raises PayloadDecodeError."""
    if len(payload) < 3:
        raise PayloadDecodeError(f"pin value needs 3 bytes, got {len(payload)}")
    return PinValue(payload[0], payload[1] | (payload[2] << 8))


def parse_nak(payload: bytes) -> int | None:
    """NAK error code, or None for an empty NAK payload ("code unknown", §4.1)."""
    return payload[0] if payload else None


def nak_description(code: int | None) -> str:
    """`"INVALID_PIN (0x04)"` for a NAK code."""
    return "UNKNOWN" if code is None else f"{error_name(code)} (0x{code:02x})"


@dataclass(frozen=True, slots=True)
class DatastreamEvent:
    """A DS_EVENT: datastream index and the raw value bytes (decode with `decode_value`)."""

    index: int
    raw: bytes


def parse_ds_event(payload: bytes) -> DatastreamEvent:
    """`[ds_index u8][value…]`. Raises PayloadDecodeError for an empty payload."""
    if not payload:
        raise PayloadDecodeError("DS_EVENT payload is empty")
    return DatastreamEvent(payload[0], bytes(payload[1:]))


@dataclass(frozen=True, slots=True)
class ModuleEvent:
    """A MOD_EVENT: module id as sent (built-ins send 0, Q9), event code, data bytes."""

    module_id: int
    event: int
    data: bytes


def parse_mod_event(payload: bytes) -> ModuleEvent:
    """`[module_id][event_code][data…]`. Raises PayloadDecodeError if under 2 bytes."""
    if len(payload) < 2:
        raise PayloadDecodeError(f"MOD_EVENT needs 2 bytes, got {len(payload)}")
    return ModuleEvent(payload[0], payload[1], bytes(payload[2:]))


def parse_mod_resp(payload: bytes) -> tuple[int, bytes]:
    """`[module_id][data…]` of MOD_RESP: (module_id as sent, data after it) (§4.2, #20)."""
    if not payload:
        raise PayloadDecodeError("MOD_RESP payload is empty")
    return payload[0], bytes(payload[1:])


def parse_stream_data(payload: bytes, pin_mask: int) -> dict[int, int]:
    """STREAM_DATA values by pin: one u16le per set bit of `pin_mask`, ascending (§4.2)."""
    pins = [p for p in range(16) if pin_mask >> p & 1]
    if len(payload) < 2 * len(pins):
        raise PayloadDecodeError(
            f"STREAM_DATA for {len(pins)} pins needs {2 * len(pins)} bytes, got {len(payload)}"
        )
    values = struct.unpack(f"<{len(pins)}H", payload[: 2 * len(pins)])
    return dict(zip(pins, values, strict=True))


__all__ = [
    "DatastreamEvent",
    "ErrorCode",
    "ModuleEvent",
    "PinValue",
    "ds_write",
    "mod_cmd",
    "nak_description",
    "parse_ds_event",
    "parse_mod_event",
    "parse_mod_resp",
    "parse_nak",
    "parse_pin_value",
    "parse_stream_data",
    "pin_mode",
    "pin_read",
    "pin_subscribe",
    "pin_unsubscribe",
    "pin_write",
    "stream_start",
]
