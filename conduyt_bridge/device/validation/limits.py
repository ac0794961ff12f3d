"""Size and bus checks: what a board's buffers can receive and send back, and which I2C
addresses it can reach.

Limits follow from HELLO_RESP's `max_payload` and the firmware's COBS buffer
(`docs/protocol.md` §1.5); a command over them is refused before anything is sent, since
the board would drop it silently or answer with a reply it cannot transmit. Pure
functions, no I/O.
"""

from __future__ import annotations

from conduyt_bridge.errors import ConduytCapabilityError, ErrorName
from conduyt_bridge.protocol.hello import HelloResp

__all__ = [
    "I2C_ADDRESS_MAX",
    "I2C_ADDRESS_MIN",
    "check_i2c_address",
    "check_payload_size",
    "check_read_count",
    "reply_payload_limit",
]

I2C_ADDRESS_MIN = 0x08
I2C_ADDRESS_MAX = 0x77
"""7-bit addresses the firmware accepts (§4.2); the rest are reserved by the I2C spec."""


def check_payload_size(what: str, size: int, limit: int) -> None:
    """Refuse a command payload larger than the board can receive (§1.5).

    Raises ConduytCapabilityError `PAYLOAD_TOO_LARGE`.
    """
    if size > limit:
        raise ConduytCapabilityError(
            f"{what} payload of {size} bytes exceeds this board's limit of {limit} bytes",
            ErrorName.PAYLOAD_TOO_LARGE,
        )


def reply_payload_limit(hello: HelloResp) -> int:
    """Largest reply payload the board can send over a COBS link, bytes (§1.5 table).

    The encoded frame must fit the board's M + ⌊M/254⌋ + 2 byte COBS buffer: 121 for
    M = 128, 249 for 256, 505 for 512. Replies over it are never transmitted (the host
    would only see a timeout), so reads asking for more are refused.
    """
    m = hello.max_payload or 0xFFFF
    room = m + m // 254 + 2
    p = max(0, m - 7)
    while p > 0 and (8 + p) + (8 + p) // 254 + 1 > room:
        p -= 1
    return p


# ------------------------------------------------------------------------------ buses


def check_i2c_address(hello: HelloResp, address: int) -> None:
    """The board has an I2C bus and `address` is a usable 7-bit address (0x08..0x77).

    Raises ConduytCapabilityError `I2C_NOT_AVAILABLE`.
    """
    if hello.i2c_buses < 1:
        raise ConduytCapabilityError("this board has no I2C bus", ErrorName.I2C_NOT_AVAILABLE)
    if not I2C_ADDRESS_MIN <= address <= I2C_ADDRESS_MAX:
        raise ConduytCapabilityError(
            f"I2C address 0x{address:02x} is outside 0x08..0x77", ErrorName.I2C_NOT_AVAILABLE
        )


def check_read_count(hello: HelloResp, count: int) -> None:
    """A read of `count` bytes whose reply fits what the board can send (§1.5).

    Raises ConduytCapabilityError `PAYLOAD_TOO_LARGE` (count 0 → `OUT_OF_RANGE`).
    """
    limit = reply_payload_limit(hello)
    if count < 1:
        raise ConduytCapabilityError(
            "a read needs a count of at least 1 byte", ErrorName.OUT_OF_RANGE
        )
    if count > limit:
        raise ConduytCapabilityError(
            f"a read of {count} bytes does not fit this board's reply limit of {limit} bytes",
            ErrorName.PAYLOAD_TOO_LARGE,
        )
