"""Conduyt protocol constants (protocol v2).

Every number here is taken from `docs/protocol.md` (§1 packet layout, §4 packet types,
§5 enumerations); the firmware is the authority where sources disagree.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

MAGIC = b"CD"
"""The two magic bytes that start every packet (`0x43 0x44`), §1.1."""

PROTOCOL_VERSION = 2
"""VER byte of protocol v2. v1 used a different CRC table and is not interoperable (§1.4)."""

HEADER_SIZE = 7
"""Bytes before the payload: magic 2 + VER 1 + TYPE 1 + SEQ 1 + LEN 2 (§1.1)."""

OVERHEAD = HEADER_SIZE + 1
"""Header plus trailing CRC-8: a packet is `OVERHEAD + len(payload)` bytes (§1.1)."""

MAX_WIRE_PAYLOAD = 0xFFFF
"""LEN is a u16le, so no packet can carry more than 65535 payload bytes (§1.5)."""


class PacketType(IntEnum):
    """TYPE byte: commands (host → device) and events (device → host), §4.1."""

    PING = 0x01
    HELLO = 0x02
    PIN_MODE = 0x10
    PIN_WRITE = 0x11
    PIN_READ = 0x12
    PIN_SUBSCRIBE = 0x13
    PIN_UNSUBSCRIBE = 0x14
    I2C_WRITE = 0x20
    I2C_READ = 0x21
    I2C_READ_REG = 0x22
    SPI_XFER = 0x30
    MOD_CMD = 0x40
    STREAM_START = 0x50
    STREAM_STOP = 0x51
    DS_WRITE = 0x60
    DS_READ = 0x61
    DS_SUBSCRIBE = 0x62
    OTA_BEGIN = 0x70
    OTA_CHUNK = 0x71
    OTA_FINALIZE = 0x72
    RESET = 0xF0

    PONG = 0x80
    HELLO_RESP = 0x81
    ACK = 0x82
    NAK = 0x83
    PIN_EVENT = 0x90
    PIN_READ_RESP = 0x91
    I2C_READ_RESP = 0xA0
    SPI_XFER_RESP = 0xB0
    MOD_EVENT = 0xC0
    MOD_RESP = 0xC1
    STREAM_DATA = 0xD0
    DS_EVENT = 0xD1
    DS_READ_RESP = 0xD2
    LOG = 0xE0
    FATAL = 0xFF

    @property
    def is_command(self) -> bool:
        """True for host → device types (`0x01..0x7F` and RESET `0xF0`)."""
        return is_command_type(self.value)


def is_command_type(type_: int) -> bool:
    """True if TYPE byte `type_` is in the command range (`0x01..0x7F` or `0xF0`), §1.1."""
    return 0x01 <= type_ <= 0x7F or type_ == 0xF0


def type_name(type_: int) -> str:
    """Name of a TYPE byte (`"PING"`), or `"0x5a"` for a type this protocol does not define."""
    return _TYPE_NAMES[type_ & 0xFF]


_TYPE_NAMES = tuple(
    PacketType(t).name if t in PacketType._value2member_map_ else f"0x{t:02x}" for t in range(256)
)


RESPONSE_TYPES = frozenset(
    {
        PacketType.PONG,
        PacketType.HELLO_RESP,
        PacketType.ACK,
        PacketType.NAK,
        PacketType.PIN_READ_RESP,
        PacketType.I2C_READ_RESP,
        PacketType.SPI_XFER_RESP,
        PacketType.MOD_RESP,
        PacketType.DS_READ_RESP,
    }
)
"""Replies that echo the command's SEQ and resolve a pending command (§4.1 matching rule)."""

EVENT_TYPES = frozenset(
    {
        PacketType.PIN_EVENT,
        PacketType.STREAM_DATA,
        PacketType.DS_EVENT,
        PacketType.MOD_EVENT,
        PacketType.LOG,
        PacketType.FATAL,
    }
)
"""Unsolicited events; the firmware sends them with SEQ 0 (§1.6, quirk Q5)."""

OTA_TYPES = frozenset({PacketType.OTA_BEGIN, PacketType.OTA_CHUNK, PacketType.OTA_FINALIZE})
"""Packet types that rewrite the board's firmware (§4.2)."""


class ErrorCode(IntEnum):
    """NAK payload codes, §5.1 (several are never sent by current firmware)."""

    UNKNOWN_TYPE = 0x01
    CRC_MISMATCH = 0x02
    PAYLOAD_TOO_LARGE = 0x03
    INVALID_PIN = 0x04
    PIN_MODE_UNSUPPORTED = 0x05
    I2C_NOT_AVAILABLE = 0x06
    I2C_NACK = 0x07
    MODULE_NOT_LOADED = 0x08
    UNKNOWN_MODULE_CMD = 0x09
    MODULE_BUSY = 0x0A
    SUB_LIMIT_REACHED = 0x0B
    OUT_OF_MEMORY = 0x0C
    UNKNOWN_DATASTREAM = 0x0D
    DATASTREAM_READONLY = 0x0E
    OTA_INVALID = 0x0F
    VERSION_MISMATCH = 0x10


def error_name(code: int | None) -> str:
    """Name of a NAK code (`"INVALID_PIN"`), `"UNKNOWN"` for None, `"0x42"` if undefined."""
    if code is None:
        return "UNKNOWN"
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"0x{code:02x}"


class Capability(IntFlag):
    """Pin capability bits of the HELLO_RESP per-pin byte, §5.2."""

    NONE = 0
    DIGITAL_IN = 0x01
    DIGITAL_OUT = 0x02
    PWM_OUT = 0x04
    ANALOG_IN = 0x08
    I2C_SDA = 0x10
    I2C_SCL = 0x20
    SPI = 0x40
    INTERRUPT = 0x80


class PinMode(IntEnum):
    """PIN_MODE codes (also the optional mode byte of PIN_WRITE / PIN_READ), §5.3."""

    INPUT = 0x00
    OUTPUT = 0x01
    PWM = 0x02
    ANALOG = 0x03
    INPUT_PULLUP = 0x04


PIN_MODE_CAPABILITY: dict[PinMode, Capability] = {
    PinMode.INPUT: Capability.DIGITAL_IN,
    PinMode.OUTPUT: Capability.DIGITAL_OUT,
    PinMode.PWM: Capability.PWM_OUT,
    PinMode.ANALOG: Capability.ANALOG_IN,
    PinMode.INPUT_PULLUP: Capability.DIGITAL_IN,
}
"""The capability bit a pin needs for each mode (the firmware checks none of them, Q12)."""


class SubscribeMode(IntEnum):
    """PIN_SUBSCRIBE modes, §5.4. Only ANALOG_POLL fires on current firmware (Q11)."""

    CHANGE = 0x01
    RISING = 0x02
    FALLING = 0x03
    ANALOG_POLL = 0x04


class DatastreamType(IntEnum):
    """Datastream type codes of the HELLO_RESP descriptor, §5.5."""

    BOOL = 0x01
    INT8 = 0x02
    UINT8 = 0x03
    INT16 = 0x04
    UINT16 = 0x05
    INT32 = 0x06
    FLOAT32 = 0x07
    STRING = 0x08
    BYTES = 0x09

    @property
    def nominal_size(self) -> int | None:
        """Natural encoded size in bytes, None for the variable-length STRING and BYTES."""
        return _NOMINAL_SIZE.get(self)

    @property
    def is_numeric(self) -> bool:
        """True for the integer and float types (not BOOL, STRING, BYTES)."""
        return self in _NUMERIC

    @property
    def is_integer(self) -> bool:
        """True for INT8..INT32 and UINT8/UINT16."""
        return self in _NUMERIC and self is not DatastreamType.FLOAT32


_NOMINAL_SIZE = {
    DatastreamType.BOOL: 1,
    DatastreamType.INT8: 1,
    DatastreamType.UINT8: 1,
    DatastreamType.INT16: 2,
    DatastreamType.UINT16: 2,
    DatastreamType.INT32: 4,
    DatastreamType.FLOAT32: 4,
}
_NUMERIC = frozenset(
    {
        DatastreamType.INT8,
        DatastreamType.UINT8,
        DatastreamType.INT16,
        DatastreamType.UINT16,
        DatastreamType.INT32,
        DatastreamType.FLOAT32,
    }
)

INTEGER_RANGES: dict[DatastreamType, tuple[int, int]] = {
    DatastreamType.INT8: (-128, 127),
    DatastreamType.UINT8: (0, 255),
    DatastreamType.INT16: (-32768, 32767),
    DatastreamType.UINT16: (0, 65535),
    DatastreamType.INT32: (-(2**31), 2**31 - 1),
}
"""Inclusive value range of each integer datastream type."""

FLOAT32_MAX = 3.4028234663852886e38
"""Largest finite float32; FLOAT32 datastream writes must lie in ±this."""
