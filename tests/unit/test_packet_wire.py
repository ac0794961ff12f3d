"""A decoded packet keeps the bytes it was decoded from (`Packet.wire`), so the raw mirror
republishes what the board sent instead of encoding it and computing its CRC again
(`docs/topics.md` §7, issue 10)."""

from __future__ import annotations

import struct

from conduyt_bridge.protocol.cobs_deframer import CobsDeframer, cobs_frame
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.packet import Packet, decode_prefix, encode_packet
from conduyt_bridge.protocol.raw_deframer import RawDeframer

WIRE = encode_packet(PacketType.DS_EVENT, 0, b"\x00" + struct.pack("<f", 21.5))


def test_cobs_frames_keep_their_decoded_bytes_and_encode_returns_them() -> None:
    (packet,) = CobsDeframer().feed_stream(cobs_frame(WIRE))
    assert isinstance(packet, Packet)
    assert packet.wire == WIRE
    assert packet.encode() is packet.wire  # the received object, not a new encoding


def test_decode_prefix_keeps_a_reference_only_to_a_whole_bytes_object() -> None:
    packet, size = decode_prefix(WIRE)
    assert packet.wire is WIRE and size == len(WIRE)
    # Trailing bytes, or a bytearray/memoryview: no copy is made, the packet encodes anew.
    assert decode_prefix(WIRE + b"\x00")[0].wire is None
    assert decode_prefix(bytearray(WIRE))[0].wire is None
    assert decode_prefix(memoryview(WIRE))[0].wire is None
    assert decode_prefix(WIRE + b"\x00")[0].encode() == WIRE


def test_raw_links_encode_again_with_the_same_bytes() -> None:
    (packet,) = RawDeframer().feed_stream(WIRE)
    assert isinstance(packet, Packet)
    assert packet.wire is None and packet.encode() == WIRE


def test_wire_is_not_part_of_equality_or_repr() -> None:
    decoded, _ = decode_prefix(WIRE)
    built = Packet(PacketType.DS_EVENT, 0, b"\x00" + struct.pack("<f", 21.5))
    assert built.wire is None
    assert decoded == built and hash(decoded) == hash(built)
    assert repr(decoded) == repr(built)
