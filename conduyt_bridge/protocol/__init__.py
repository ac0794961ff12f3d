"""Sans-IO Conduyt protocol core: bytes in, packets out, and the reverse.

No asyncio, no sockets, no logging (house rule, as in h11/wsproto). Layouts per
`docs/protocol.md` (protocol v2).
"""

from conduyt_bridge.protocol.constants import (
    MAGIC,
    PROTOCOL_VERSION,
    Capability,
    DatastreamType,
    ErrorCode,
    PacketType,
    PinMode,
    SubscribeMode,
    error_name,
    type_name,
)
from conduyt_bridge.protocol.crc8 import crc8
from conduyt_bridge.protocol.errors import (
    BadMagicError,
    CrcMismatchError,
    HelloParseError,
    OversizePacketError,
    PayloadDecodeError,
    ProtocolError,
    TruncatedPacketError,
    ValueDecodeError,
    ValueEncodeError,
    VersionMismatchError,
)
from conduyt_bridge.protocol.framing import (
    CobsDeframer,
    Deframer,
    DeframerStats,
    FrameError,
    FrameErrorReason,
    RawDeframer,
    TextLine,
    cobs_frame,
)
from conduyt_bridge.protocol.hello import (
    DatastreamDescriptor,
    HelloResp,
    ModuleDescriptor,
    PinCapability,
    parse_hello,
)
from conduyt_bridge.protocol.packet import Packet, decode_packet, decode_prefix, encode_packet
from conduyt_bridge.protocol.values import (
    DatastreamValue,
    StringEncoding,
    decode_value,
    encode_value,
    shortest_float32,
)

__all__ = [
    "MAGIC",
    "PROTOCOL_VERSION",
    "BadMagicError",
    "Capability",
    "CobsDeframer",
    "CrcMismatchError",
    "DatastreamDescriptor",
    "DatastreamType",
    "DatastreamValue",
    "Deframer",
    "DeframerStats",
    "ErrorCode",
    "FrameError",
    "FrameErrorReason",
    "HelloParseError",
    "HelloResp",
    "ModuleDescriptor",
    "OversizePacketError",
    "Packet",
    "PacketType",
    "PayloadDecodeError",
    "PinCapability",
    "PinMode",
    "ProtocolError",
    "RawDeframer",
    "StringEncoding",
    "SubscribeMode",
    "TextLine",
    "TruncatedPacketError",
    "ValueDecodeError",
    "ValueEncodeError",
    "VersionMismatchError",
    "cobs_frame",
    "crc8",
    "decode_packet",
    "decode_prefix",
    "decode_value",
    "encode_packet",
    "encode_value",
    "error_name",
    "parse_hello",
    "shortest_float32",
    "type_name",
]
