"""Conduyt packet encode/decode, byte layout per `docs/protocol.md` §1.

A packet on the wire is `43 44 | VER | TYPE | SEQ | LEN u16le | PAYLOAD | CRC-8`, with the
CRC over VER..end of payload. This module knows nothing about framing (COBS, TCP).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conduyt_bridge.protocol.constants import (
    HEADER_SIZE,
    MAX_WIRE_PAYLOAD,
    OVERHEAD,
    PROTOCOL_VERSION,
    type_name,
)
from conduyt_bridge.protocol.crc8 import crc8_compiled
from conduyt_bridge.protocol.errors import (
    BadMagicError,
    CrcMismatchError,
    OversizePacketError,
    TruncatedPacketError,
    VersionMismatchError,
)


@dataclass(frozen=True, slots=True)
class Packet:
    """One Conduyt packet: TYPE byte, SEQ byte (0..255) and payload bytes.

    `type` is kept as a plain int so that types this protocol does not define still
    round-trip; compare it with `PacketType` members (an IntEnum).

    `wire`: the exact bytes this packet was decoded from, when decoding had them as one
    `bytes` object already (a COBS frame's decoded bytes; `decode_prefix` sets it, at no
    cost: no copy), else None. A decoded packet's encoding is those bytes (every field,
    the CRC included, is determined by type, seq and payload), so `encode` returns them
    instead of encoding again: the raw mirror republishes what the board sent
    (`docs/topics.md` §7). Not part of equality; never set it to other bytes.
    """

    type: int
    seq: int
    payload: bytes = b""
    wire: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.type <= 0xFF:
            raise ValueError(f"packet type {self.type} is not a byte")
        if not 0 <= self.seq <= 0xFF:
            raise ValueError(f"sequence number {self.seq} is not a byte")
        if len(self.payload) > MAX_WIRE_PAYLOAD:
            raise OversizePacketError(len(self.payload), MAX_WIRE_PAYLOAD)

    @property
    def type_name(self) -> str:
        """`"DS_EVENT"`, or `"0x5a"` for an undefined type."""
        return type_name(self.type)

    def encode(self) -> bytes:
        """The packet's wire bytes (8 + len(payload) bytes): the received ones if any."""
        if self.wire is not None:
            return self.wire
        return encode_packet(self.type, self.seq, self.payload)

    def __repr__(self) -> str:
        return f"Packet({self.type_name}, seq={self.seq}, payload={self.payload.hex(' ')!r})"


def encode_packet(type_: int, seq: int, payload: bytes = b"") -> bytes:
    """Wire bytes of a v2 packet: magic, VER=2, TYPE, SEQ, LEN u16le, payload, CRC-8 (§1.1).

    Raises OversizePacketError for a payload over 65535 bytes.
    """
    n = len(payload)
    if n > MAX_WIRE_PAYLOAD:
        raise OversizePacketError(n, MAX_WIRE_PAYLOAD)
    head = bytes((0x43, 0x44, PROTOCOL_VERSION, type_, seq, n & 0xFF, n >> 8))
    crc = crc8_compiled(payload, crc8_compiled(head[2:], 0))
    return head + payload + bytes((crc,))


def decode_packet(
    data: bytes | bytearray | memoryview, max_payload: int = MAX_WIRE_PAYLOAD
) -> Packet:
    """Decode the packet at the start of `data`; bytes after it are ignored (§1.3 step 6).

    Checks in the firmware's order (§1.3): length of the header, magic, version, LEN
    against `max_payload`, length of the payload, CRC.

    Raises TruncatedPacketError, BadMagicError, VersionMismatchError, OversizePacketError
    or CrcMismatchError; never IndexError.
    """
    packet, _ = decode_prefix(data, max_payload)
    return packet


def decode_prefix(
    data: bytes | bytearray | memoryview, max_payload: int = MAX_WIRE_PAYLOAD
) -> tuple[Packet, int]:
    """Like `decode_packet`, also returning how many bytes the packet occupied (8 + LEN).

    When `data` is a `bytes` object holding exactly the packet, the packet keeps it as
    its `wire` bytes (a reference, not a copy)."""
    size = len(data)
    if size < OVERHEAD:
        raise TruncatedPacketError(OVERHEAD, size)
    if data[0] != 0x43 or data[1] != 0x44:
        raise BadMagicError(bytes(data[0:2]))
    if data[2] != PROTOCOL_VERSION:
        raise VersionMismatchError(data[2])
    length = data[5] | (data[6] << 8)
    if length > max_payload:
        raise OversizePacketError(length, max_payload)
    end = HEADER_SIZE + length
    if size < end + 1:
        raise TruncatedPacketError(end + 1, size)
    crc = crc8_compiled(data[2:end], 0)
    if crc != data[end]:
        raise CrcMismatchError(crc, data[end])
    wire = data if end + 1 == size and type(data) is bytes else None
    return decoded_packet(data[3], data[4], bytes(data[HEADER_SIZE:end]), wire), end + 1


_new_packet = object.__new__
_set_type = vars(Packet)["type"].__set__
_set_seq = vars(Packet)["seq"].__set__
_set_payload = vars(Packet)["payload"].__set__
_set_wire = vars(Packet)["wire"].__set__
PACKET_SETTERS = (_new_packet, _set_type, _set_seq, _set_payload, _set_wire)
"""What `decoded_packet` calls, for a decoder that inlines it (the COBS deframer's hot
loop): `object.__new__` and the slot setters of `type`, `seq`, `payload` and `wire`."""


def decoded_packet(type_: int, seq: int, payload: bytes, wire: bytes | None) -> Packet:
    """A `Packet` from fields a decoder has checked already (`decode_prefix`, the COBS
    deframer's inline loop: TYPE and SEQ are bytes, LEN is a u16), without `__init__`'s
    checks: a third of the cost of building a packet on the DS_EVENT hot path
    (`docs/architecture.md` §6.1). Sets the slots directly, as a frozen dataclass's own
    `__init__` does."""
    packet: Packet = _new_packet(Packet)
    _set_type(packet, type_)
    _set_seq(packet, seq)
    _set_payload(packet, payload)
    _set_wire(packet, wire)
    return packet
