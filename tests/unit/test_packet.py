"""Packet layout, CRC-8 and the decode error paths (`docs/protocol.md` §1, §2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conduyt_bridge.protocol import (
    BadMagicError,
    CrcMismatchError,
    OversizePacketError,
    Packet,
    PacketType,
    ProtocolError,
    TruncatedPacketError,
    VersionMismatchError,
    crc8,
    decode_packet,
    decode_prefix,
    encode_packet,
    type_name,
)
from conduyt_bridge.protocol.constants import (
    HEADER_SIZE,
    MAX_WIRE_PAYLOAD,
    OVERHEAD,
    is_command_type,
)
from conduyt_bridge.protocol.crc8 import crc8_compiled, crc8_reference

PIN_WRITE_13_HIGH = bytes.fromhex("43 44 02 11 01 02 00 0d 01 94")  # §1.1 worked example

packets = st.builds(
    Packet,
    type=st.integers(0, 255),
    seq=st.integers(0, 255),
    payload=st.binary(max_size=300),
)


def crc8_bitwise(data: bytes) -> int:
    """The bitwise definition of §2, independent of the table."""
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


# ------------------------------------------------------------------------------ CRC-8


def test_crc8_reference_values() -> None:
    """§2 reference values and check value."""
    assert [crc8(b""), crc8(b"\x00"), crc8(b"\x01")] == [0x00, 0x00, 0x31]
    assert crc8(bytes([0x47, 0x46, 0x01, 0x02])) == 0xB3
    assert crc8(b"\xff") == 0xAC
    assert crc8(b"123456789") == 0xA2


@given(st.binary(max_size=200))
def test_crc8_table_matches_bitwise_definition(data: bytes) -> None:
    assert crc8(data) == crc8_bitwise(data)
    assert crc8_reference(data) == crc8_bitwise(data)


@given(st.binary(max_size=300), st.integers(0, 255))
def test_compiled_crc8_equals_pure_python_reference(data: bytes, start: int) -> None:
    """The compiled CRC (fastcrc, `docs/libraries.md` §5) is the table form, from any
    starting value and on every bytes-like type the deframers hand it."""
    expected = crc8_reference(data, start)
    assert crc8(data, start) == expected
    assert crc8_compiled(data, start) == expected
    assert crc8(bytearray(data), start) == expected
    assert crc8(memoryview(data), start) == expected


def test_crc8_rejects_text() -> None:
    with pytest.raises(TypeError, match=r"^a bytes-like object is required, not 'str'$"):
        crc8("123456789")  # type: ignore[arg-type]


@given(st.binary(max_size=100), st.binary(max_size=100))
def test_crc8_continuation_and_residue(a: bytes, b: bytes) -> None:
    assert crc8(b, crc8(a)) == crc8(a + b)
    assert crc8(a + bytes((crc8(a),))) == 0  # residue 0 (§2)


# ------------------------------------------------------------------------------ encode


def test_encode_worked_example() -> None:
    assert encode_packet(PacketType.PIN_WRITE, 1, b"\x0d\x01") == PIN_WRITE_13_HIGH
    assert Packet(0x11, 1, b"\x0d\x01").encode() == PIN_WRITE_13_HIGH


def test_encode_zero_payload_is_eight_bytes() -> None:
    assert encode_packet(PacketType.PING, 0) == bytes.fromhex("43 44 02 01 00 00 00 0c")


def test_encode_len_is_little_endian() -> None:
    wire = encode_packet(0xD1, 0, bytes(0x1234))
    assert wire[5:7] == b"\x34\x12"
    assert len(wire) == 0x1234 + OVERHEAD


def test_encode_max_payload_and_one_more() -> None:
    wire = encode_packet(0xA0, 3, bytes(MAX_WIRE_PAYLOAD))
    assert wire[5:7] == b"\xff\xff"
    assert decode_packet(wire).payload == bytes(MAX_WIRE_PAYLOAD)
    with pytest.raises(OversizePacketError) as info:
        encode_packet(0xA0, 3, bytes(MAX_WIRE_PAYLOAD + 1))
    assert str(info.value) == "payload of 65536 bytes exceeds the limit of 65535 bytes"
    assert (info.value.length, info.value.limit) == (65536, 65535)


def test_packet_validates_fields() -> None:
    with pytest.raises(ValueError, match=r"^packet type 256 is not a byte$"):
        Packet(256, 0)
    with pytest.raises(ValueError, match=r"^packet type -1 is not a byte$"):
        Packet(-1, 0)
    with pytest.raises(ValueError, match=r"^sequence number 256 is not a byte$"):
        Packet(1, 256)
    with pytest.raises(OversizePacketError, match="payload of 65536 bytes"):
        Packet(1, 0, bytes(65536))


def test_packet_names_and_repr() -> None:
    assert Packet(0xD1, 0, b"\x00\x01").type_name == "DS_EVENT"
    assert Packet(0x5A, 0).type_name == "0x5a"
    assert repr(Packet(0x83, 5, b"\x04")) == "Packet(NAK, seq=5, payload='04')"
    assert type_name(0xF0) == "RESET"
    assert PacketType.RESET.is_command and not PacketType.ACK.is_command
    assert [t for t in range(256) if is_command_type(t)] == [*range(1, 0x80), 0xF0]


# ------------------------------------------------------------------------------ decode errors


def test_decode_worked_example() -> None:
    assert decode_packet(PIN_WRITE_13_HIGH) == Packet(0x11, 1, b"\x0d\x01")
    assert decode_packet(bytearray(PIN_WRITE_13_HIGH)) == Packet(0x11, 1, b"\x0d\x01")
    assert decode_packet(memoryview(PIN_WRITE_13_HIGH)) == Packet(0x11, 1, b"\x0d\x01")


def test_decode_payload_is_bytes_even_from_memoryview() -> None:
    assert type(decode_packet(memoryview(PIN_WRITE_13_HIGH)).payload) is bytes


@pytest.mark.parametrize("size", range(OVERHEAD))
def test_decode_short_header(size: int) -> None:
    with pytest.raises(TruncatedPacketError) as info:
        decode_packet(PIN_WRITE_13_HIGH[:size])
    assert str(info.value) == f"truncated packet: need 8 bytes, got {size}"
    assert (info.value.needed, info.value.got) == (8, size)


def test_decode_short_payload() -> None:
    with pytest.raises(TruncatedPacketError) as info:
        decode_packet(PIN_WRITE_13_HIGH[:9])
    assert str(info.value) == "truncated packet: need 10 bytes, got 9"


def test_decode_bad_magic() -> None:
    with pytest.raises(BadMagicError) as info:
        decode_packet(b"\x43\x45" + PIN_WRITE_13_HIGH[2:])
    assert str(info.value) == "bad magic: 43 45 (expected 43 44)"
    assert info.value.magic == b"CE"


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (
            1,
            "protocol version mismatch: got 1, expected 2 (board runs protocol-v1 firmware; "
            "re-flash it)",
        ),
        (3, "protocol version mismatch: got 3, expected 2 (unsupported)"),
        (0, "protocol version mismatch: got 0, expected 2 (unsupported)"),
    ],
)
def test_decode_version_mismatch(version: int, message: str) -> None:
    wire = bytearray(PIN_WRITE_13_HIGH)
    wire[2] = version
    with pytest.raises(VersionMismatchError) as info:
        decode_packet(wire)
    assert str(info.value) == message
    assert info.value.version == version


def test_decode_crc_mismatch() -> None:
    wire = bytearray(PIN_WRITE_13_HIGH)
    wire[-1] = 0x95
    with pytest.raises(CrcMismatchError) as info:
        decode_packet(wire)
    assert str(info.value) == "CRC mismatch: computed 0x94, packet says 0x95"
    assert (info.value.expected, info.value.actual) == (0x94, 0x95)


def test_decode_oversize_against_max_payload() -> None:
    with pytest.raises(OversizePacketError) as info:
        decode_packet(PIN_WRITE_13_HIGH, max_payload=1)
    assert str(info.value) == "payload of 2 bytes exceeds the limit of 1 bytes"
    assert decode_packet(PIN_WRITE_13_HIGH, max_payload=2).payload == b"\x0d\x01"


def test_decode_check_order() -> None:
    """§1.3: magic before version, version before LEN/CRC, LEN limit before truncation."""
    with pytest.raises(BadMagicError):
        decode_packet(b"XX\x01\x11\x01\x02\x00\x00")  # bad magic and bad version
    with pytest.raises(VersionMismatchError):
        decode_packet(b"CD\x01\x11\x01\xff\xff\x00")  # v1, huge LEN, bad CRC, short
    with pytest.raises(OversizePacketError):
        decode_packet(b"CD\x02\x11\x01\xff\x00\x00", max_payload=16)  # over limit and short
    with pytest.raises(TruncatedPacketError):
        decode_packet(b"CD\x02\x11\x01\x05\x00\x00\x00")  # short, CRC would fail too


def test_errors_are_value_errors() -> None:
    assert issubclass(ProtocolError, ValueError)
    for cls in (BadMagicError, CrcMismatchError, OversizePacketError, TruncatedPacketError):
        assert issubclass(cls, ProtocolError)


def test_decode_prefix_ignores_trailing_bytes() -> None:
    packet, used = decode_prefix(PIN_WRITE_13_HIGH + b"\x43\x44\x02")
    assert packet == Packet(0x11, 1, b"\x0d\x01")
    assert used == len(PIN_WRITE_13_HIGH)
    assert HEADER_SIZE == 7 and OVERHEAD == 8


# ------------------------------------------------------------------------------ properties


@given(packets, st.binary(max_size=20))
def test_encode_decode_identity(packet: Packet, trailing: bytes) -> None:
    wire = packet.encode()
    assert len(wire) == OVERHEAD + len(packet.payload)
    assert wire[:3] == b"CD\x02" and wire[-1] == crc8(wire[2:-1])
    assert decode_packet(wire) == packet
    assert decode_prefix(wire + trailing) == (packet, len(wire))


@given(packets, st.data())
def test_single_bit_error_is_always_detected(packet: Packet, data: st.DataObject) -> None:
    """CRC-8 with poly 0x31 catches every single-bit error in VER..payload and the CRC.

    A flip in LEN that shortens the packet can land on a valid shorter packet (the CRC is
    then read from inside the old payload; 1 in 256); it never passes as the whole frame.
    """
    wire = bytearray(packet.encode())
    bit = data.draw(st.integers(0, len(wire) * 8 - 1))
    byte = bit // 8
    wire[byte] ^= 1 << (bit % 8)
    if byte in (5, 6):
        try:
            _, used = decode_prefix(wire)
        except ProtocolError:
            return
        assert used < len(wire)
        return
    expected = {0: BadMagicError, 1: BadMagicError, 2: VersionMismatchError}
    with pytest.raises(expected.get(byte, CrcMismatchError)):
        decode_packet(wire)


@given(st.binary(max_size=64))
def test_decode_arbitrary_bytes_raises_only_protocol_errors(data: bytes) -> None:
    try:
        packet, used = decode_prefix(data)
    except ProtocolError:
        return
    assert used <= len(data)
    assert encode_packet(packet.type, packet.seq, packet.payload) == data[:used]
