"""MQTT PUBLISH packets at QoS 0, encoded here: the bytes of the bridge's telemetry fast path.

Byte layout per MQTT 3.1.1 §2.2 and §3.3 and MQTT 5.0 §2.1, §2.2 and §3.3
(`docs/architecture.md` §6.1): a fixed header (`0x30 | RETAIN`; DUP and the QoS bits are 0
at QoS 0), the Remaining Length as a Variable Byte Integer (1 to 4 bytes, 7 bits each,
least significant group first, the top bit set while more follow; at most 268,435,455),
the Topic Name as a UTF-8 string with a two-byte big-endian length, no Packet Identifier
(QoS 0), in MQTT 5 the properties (their length as a Variable Byte Integer, so `00` for
none), then the payload. No IO: `conduyt_bridge.northbound.mqtt.fastpath` writes these
bytes onto the broker socket.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "MAX_REMAINING_LENGTH",
    "MAX_TOPIC_BYTES",
    "PacketType",
    "TopicCache",
    "encode_publish_qos0",
    "encode_remaining_length",
    "topic_prefix",
]

MAX_REMAINING_LENGTH = 268_435_455
"""Largest Remaining Length a Variable Byte Integer of 4 bytes holds (MQTT 5.0 §1.5.5)."""

MAX_TOPIC_BYTES = 65_535
"""Longest Topic Name, UTF-8 bytes (its length is a two-byte integer, MQTT 5.0 §1.5.4)."""


class PacketType(IntEnum):
    """MQTT Control Packet types used here, as the high nibble of the fixed header."""

    PUBLISH = 3


_PUBLISH_QOS0 = PacketType.PUBLISH << 4
"""Fixed header byte 1 of a QoS 0 PUBLISH without RETAIN (DUP 0, QoS 0)."""


def encode_remaining_length(value: int) -> bytes:
    """The Remaining Length `value` as a Variable Byte Integer (1 to 4 bytes).

    Raises ValueError `"packet too large: remaining length N exceeds 268435455"` for a
    value over `MAX_REMAINING_LENGTH`, and for a negative one.
    """
    if not 0 <= value <= MAX_REMAINING_LENGTH:
        raise ValueError(
            f"packet too large: remaining length {value} exceeds {MAX_REMAINING_LENGTH}"
        )
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def topic_prefix(topic: str, v5: bool) -> bytes:
    """The part of a QoS 0 PUBLISH's variable header that depends only on the topic: the
    Topic Name (two-byte length, UTF-8 bytes) and, for MQTT 5, an empty property list.

    Raises ValueError for a topic a PUBLISH may not carry (MQTT 5.0 §3.3.2.1, §4.7.3):
    empty (`"empty topic"`), with a wildcard (`"topic 'a/+' contains a wildcard"`), with
    U+0000 (`"topic contains U+0000"`), longer than 65,535 bytes (`"topic of N bytes
    exceeds 65535"`); and UnicodeEncodeError for a lone surrogate.
    """
    if not topic:
        raise ValueError("empty topic")
    if "+" in topic or "#" in topic:
        raise ValueError(f"topic {topic[:80]!r} contains a wildcard")
    if "\x00" in topic:
        raise ValueError("topic contains U+0000")
    data = topic.encode("utf-8")
    if len(data) > MAX_TOPIC_BYTES:
        raise ValueError(f"topic of {len(data)} bytes exceeds {MAX_TOPIC_BYTES}")
    head = len(data).to_bytes(2, "big") + data
    return head + b"\x00" if v5 else head


def encode_publish_qos0(
    topic: str, payload: bytes, retain: bool, v5: bool, properties: bytes | None = None
) -> bytes:
    """One complete QoS 0 PUBLISH packet.

    `properties`: MQTT 5 only, the packed property list including its length (e.g.
    paho's `Properties.pack()`); None or omitted is the empty list (`00`). Raises
    ValueError as `topic_prefix` and `encode_remaining_length` do, and for properties on
    MQTT 3.1.1 (`"MQTT 3.1.1 has no properties"`).
    """
    prefix = topic_prefix(topic, v5)
    if properties is not None:
        if not v5:
            raise ValueError("MQTT 3.1.1 has no properties")
        prefix = prefix[:-1] + properties
    body = len(prefix) + len(payload)
    return bytes((_PUBLISH_QOS0 | retain,)) + encode_remaining_length(body) + prefix + payload


class TopicCache(dict[str, bytes]):
    """`topic_prefix` per topic, kept for the connection's protocol version.

    A bridge publishes on a fixed set of topics (per board: datastreams, pins, events), so
    the UTF-8 encoding and validity checks of a topic are done once. Bounded: cleared
    when it reaches `limit` entries (a bridge with more topics than that re-encodes).
    """

    __slots__ = ("limit", "v5")

    def __init__(self, v5: bool, limit: int = 4096) -> None:
        super().__init__()
        self.v5 = v5
        self.limit = limit

    def __missing__(self, topic: str) -> bytes:
        prefix = topic_prefix(topic, self.v5)
        if len(self) >= self.limit:
            self.clear()
        self[topic] = prefix
        return prefix
