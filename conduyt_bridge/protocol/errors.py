"""Typed errors of the sans-IO protocol core. All derive from `ProtocolError`, a
`ConduytError` (the package's one root, `conduyt_bridge.errors`) and a `ValueError`."""

from __future__ import annotations

from conduyt_bridge.errors import ConduytError


class ProtocolError(ConduytError, ValueError):
    """Base of every error raised while decoding or encoding Conduyt bytes: the bytes (from
    the board, or a raw packet from a caller) do not follow the protocol."""

    @property
    def name(self) -> str:
        return "PROTOCOL"


ConduytProtocolError = ProtocolError
"""The public name of `ProtocolError`."""


class TruncatedPacketError(ProtocolError):
    """Fewer bytes than the header or the header's LEN promise (§1.3 steps 1 and 4)."""

    def __init__(self, needed: int, got: int) -> None:
        super().__init__(f"truncated packet: need {needed} bytes, got {got}")
        self.needed = needed
        self.got = got


class BadMagicError(ProtocolError):
    """The first two bytes are not `43 44` ("CD"), §1.3 step 2."""

    def __init__(self, magic: bytes) -> None:
        super().__init__(f"bad magic: {magic.hex(' ')} (expected 43 44)")
        self.magic = magic


class VersionMismatchError(ProtocolError):
    """VER is not 2; v1 boards need re-flashing (§1.4). Checked before LEN and CRC."""

    def __init__(self, version: int) -> None:
        hint = "board runs protocol-v1 firmware; re-flash it" if version == 1 else "unsupported"
        super().__init__(f"protocol version mismatch: got {version}, expected 2 ({hint})")
        self.version = version


class CrcMismatchError(ProtocolError):
    """The trailing CRC-8 does not match VER..payload (§2)."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"CRC mismatch: computed 0x{expected:02x}, packet says 0x{actual:02x}")
        self.expected = expected
        self.actual = actual


class OversizePacketError(ProtocolError):
    """A payload longer than the limit in force (the board's max_payload, or 65535), §1.5."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"payload of {length} bytes exceeds the limit of {limit} bytes")
        self.length = length
        self.limit = limit


class HelloParseError(ProtocolError):
    """A HELLO_RESP payload too short to contain even the fixed firmware header (§6.1)."""


class ValueEncodeError(ProtocolError):
    """A datastream value that cannot be encoded for its declared type (wrong kind, range)."""


class ValueDecodeError(ProtocolError):
    """A DS_EVENT value whose length fits no rule of §5.5 for its declared type."""

    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(message)
        self.raw = raw


class PayloadDecodeError(ProtocolError):
    """An event payload (PIN_EVENT, MOD_RESP, ...) shorter than its layout needs."""
