"""Raw command packets (`cmd/{tt}`): one packet's TYPE and payload checked as a whole.

Exact layouts per `docs/protocol.md` §4.2, then the same capability checks as the typed
topics (`conduyt_bridge.device.validation.pins`, `.limits`, `.modules`,
`.datastreams`), so a raw packet can do nothing a typed topic would refuse. Pure
functions, no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

from conduyt_bridge.device.validation.datastreams import check_ds_write_value, require_datastream
from conduyt_bridge.device.validation.limits import (
    check_i2c_address,
    check_payload_size,
    check_read_count,
)
from conduyt_bridge.device.validation.modules import check_module_args, module_command_spec
from conduyt_bridge.device.validation.pins import (
    SUBSCRIBE_MODE_NAMES,
    check_pin_read,
    check_pin_write,
    check_stream_mask,
    check_subscribe,
    require_mode,
    require_pin,
)
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytForbiddenError,
    ConduytPayloadError,
    ErrorName,
)
from conduyt_bridge.protocol.constants import (
    OTA_TYPES,
    PacketType,
    PinMode,
    SubscribeMode,
    type_name,
)
from conduyt_bridge.protocol.hello import HelloResp

__all__ = ["check_command"]

_NO_PAYLOAD = frozenset(
    {
        PacketType.PING,
        PacketType.HELLO,
        PacketType.STREAM_STOP,
        PacketType.OTA_FINALIZE,
        PacketType.RESET,
    }
)


def _need(name: str, payload: bytes, sizes: Iterable[int], layout: str) -> None:
    allowed = tuple(sizes)
    if len(payload) not in allowed:
        want = " or ".join(str(s) for s in allowed)
        raise ConduytPayloadError(
            f"{name} payload must be {want} bytes {layout}, got {len(payload)}",
            ErrorName.BAD_LENGTH,
        )


def _at_least(name: str, payload: bytes, size: int, layout: str) -> None:
    if len(payload) < size:
        raise ConduytPayloadError(
            f"{name} payload needs at least {size} bytes {layout}, got {len(payload)}",
            ErrorName.BAD_LENGTH,
        )


def check_command(
    hello: HelloResp,
    type_: int,
    payload: bytes,
    *,
    max_command_payload: int,
    allow_ota: bool = False,
    pin_modes: Mapping[int, PinMode] | None = None,
) -> None:
    """Validate one command packet (TYPE and payload) for this board, as the typed topics
    are validated (`docs/protocol.md` §4.2 layouts, §5 enumerations, §6 capabilities).

    Exact layouts are required, because the firmware reads missing bytes as 0 and, on
    non-COBS links, is poisoned by malformed packets (Q3): PING, HELLO, STREAM_STOP,
    OTA_FINALIZE and RESET carry nothing; PIN_SUBSCRIBE is the 7-byte form (Q7);
    STREAM_START the 5-byte form. `pin_modes` are the modes set through the bridge (for
    PIN_WRITE range checks); without them only capability bits are checked.

    Stateful limits (subscription slots, an active subscription for PIN_UNSUBSCRIBE) are
    the caller's job. DS_READ is refused: the firmware NAKs every DS_READ (§10 #11).

    Raises ConduytCapabilityError (event or unknown type → `UNKNOWN_TYPE`, and everything the
    board cannot do), ConduytPayloadError (wrong layout), ConduytForbiddenError (`OTA_DISABLED`
    unless
    `allow_ota`).
    """
    name = type_name(type_)
    if type_ >= 0x80 and type_ != PacketType.RESET:
        label = name if name.startswith("0x") else f"{name} (0x{type_:02x})"
        raise ConduytCapabilityError(
            f"{label} is an event type (0x80..0xFF), not a command: the board would NAK it "
            "UNKNOWN_TYPE",
            ErrorName.UNKNOWN_TYPE,
        )
    try:
        kind = PacketType(type_)
    except ValueError:
        raise ConduytCapabilityError(
            f"0x{type_:02x} is not a Conduyt command type: the board would NAK it UNKNOWN_TYPE",
            ErrorName.UNKNOWN_TYPE,
        ) from None
    check_payload_size(name, len(payload), max_command_payload)
    modes = pin_modes or {}
    if kind in OTA_TYPES:
        # First: OTA_FINALIZE is also a no-payload type, and must never slip through there.
        if not allow_ota:
            raise ConduytForbiddenError(
                f"{name} refused: OTA packets are disabled for this board (allow_ota = false)",
                ErrorName.OTA_DISABLED,
            )
        if not hello.ota_capable:
            raise ConduytCapabilityError(
                "this board's firmware was built without OTA support (ota_capable = 0)",
                ErrorName.OTA_INVALID,
            )
    if kind in _NO_PAYLOAD:
        _need(name, payload, (0,), "(it takes no payload)")
    elif kind is PacketType.OTA_BEGIN:
        _need(name, payload, (36,), "[total_bytes u32le, sha256 x 32]")
    elif kind is PacketType.OTA_CHUNK:
        _at_least(name, payload, 5, "[offset u32le, data…]")
    elif kind is PacketType.PIN_MODE:
        _need(name, payload, (2,), "[pin, mode]")
        if payload[1] > PinMode.INPUT_PULLUP:
            raise ConduytPayloadError(
                f"PIN_MODE mode {payload[1]} is not a pin mode (0..4)", ErrorName.BAD_MODE
            )
        require_mode(hello, payload[0], PinMode(payload[1]))
    elif kind is PacketType.PIN_WRITE:
        _need(name, payload, (2, 3), "[pin, value, mode?]")
        pin, value = payload[0], payload[1]
        if len(payload) == 3:
            if payload[2] not in (PinMode.OUTPUT, PinMode.PWM):
                raise ConduytPayloadError(
                    f"PIN_WRITE mode byte must be 1 (output) or 2 (pwm), got {payload[2]}",
                    ErrorName.BAD_MODE,
                )
            pwm = payload[2] == PinMode.PWM
        else:
            pwm = value > 1  # the firmware's rule without a mode byte (§4.2)
        check_pin_write(hello, pin, value, pwm, modes.get(pin))
    elif kind is PacketType.PIN_READ:
        _need(name, payload, (1, 2), "[pin, mode?]")
        if len(payload) == 2:
            if payload[1] > PinMode.INPUT_PULLUP:
                raise ConduytPayloadError(
                    f"PIN_READ mode {payload[1]} is not a pin mode (0..4)", ErrorName.BAD_MODE
                )
            analog = payload[1] == PinMode.ANALOG
        else:
            analog = modes.get(payload[0]) is PinMode.ANALOG
        check_pin_read(hello, payload[0], analog)
    elif kind is PacketType.PIN_SUBSCRIBE:
        _need(name, payload, (7,), "[pin, mode, interval u16le, threshold u16le, 0x00]")
        if payload[1] not in SUBSCRIBE_MODE_NAMES:
            raise ConduytPayloadError(
                f"PIN_SUBSCRIBE mode {payload[1]} is not a subscribe mode (1..4)",
                ErrorName.BAD_MODE,
            )
        interval, threshold = struct.unpack_from("<HH", payload, 2)
        check_subscribe(hello, payload[0], SubscribeMode(payload[1]), interval, threshold)
    elif kind is PacketType.PIN_UNSUBSCRIBE:
        _need(name, payload, (1,), "[pin]")
        require_pin(hello, payload[0])
    elif kind is PacketType.I2C_WRITE:
        _at_least(name, payload, 2, "[address, data…]")
        check_i2c_address(hello, payload[0])
    elif kind is PacketType.I2C_READ:
        _need(name, payload, (2,), "[address, count]")
        check_i2c_address(hello, payload[0])
        check_read_count(hello, payload[1])
    elif kind is PacketType.I2C_READ_REG:
        _need(name, payload, (3,), "[address, register, count]")
        check_i2c_address(hello, payload[0])
        check_read_count(hello, payload[2])
    elif kind is PacketType.SPI_XFER:
        _at_least(name, payload, 2, "[cs_pin, data…]")
        if hello.spi_buses < 1:
            raise ConduytCapabilityError("this board has no SPI bus", ErrorName.SPI_NOT_AVAILABLE)
        require_mode(hello, payload[0], PinMode.OUTPUT)  # the firmware drives CS as output
        check_read_count(hello, len(payload) - 1)  # one MISO byte per data byte comes back
    elif kind is PacketType.MOD_CMD:
        _at_least(name, payload, 2, "[module_id, command, args…]")
        spec = module_command_spec(hello, payload[0], payload[1])
        if spec is not None:
            check_module_args(hello, spec, payload[2:])
    elif kind is PacketType.STREAM_START:
        _need(name, payload, (5,), "[pin_mask u16le, rate_hz u16le, 0x00]")
        check_stream_mask(hello, payload[0] | payload[1] << 8)
    elif kind is PacketType.DS_WRITE:
        _at_least(name, payload, 2, "[ds_index, value…]")
        ds = require_datastream(hello, payload[0])
        check_ds_write_value(ds, payload[1:])
    elif kind is PacketType.DS_READ:
        raise ConduytCapabilityError(
            "DS_READ is not supported by the firmware (it NAKs every DS_READ "
            "UNKNOWN_DATASTREAM): read the retained state topic ds/{slug}",
            ErrorName.UNKNOWN_DATASTREAM,
        )
    elif kind is PacketType.DS_SUBSCRIBE:
        _need(name, payload, (1, 3), "[ds_index, interval_ms u16le?]")
        require_datastream(hello, payload[0])
