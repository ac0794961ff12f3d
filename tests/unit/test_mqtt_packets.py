"""QoS 0 PUBLISH encoding (`conduyt_bridge.northbound.mqtt.packets`): byte-exact against the
MQTT 3.1.1 / 5.0 layout written out here, against paho's own encoder for both versions,
at the Remaining Length boundaries, and round-tripped through a decoder written from the
spec (`docs/architecture.md` §6.1)."""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conduyt_bridge.northbound.mqtt.packets import (
    MAX_REMAINING_LENGTH,
    TopicCache,
    encode_publish_qos0,
    encode_remaining_length,
    topic_prefix,
)

# ---- a decoder from the spec (MQTT 5.0 §1.5.5, §2.1, §3.3) -------------------------------


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    for i in range(4):
        byte = data[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    raise ValueError("Variable Byte Integer longer than 4 bytes")


def decode_publish(data: bytes, v5: bool) -> tuple[int, str, bytes, bytes]:
    """(fixed header byte, topic, properties incl. length, payload) of one packet that
    must fill `data` exactly."""
    header = data[0]
    assert header >> 4 == 3, "not a PUBLISH"
    assert header & 0x0E == 0, "DUP/QoS bits must be 0 at QoS 0"
    remaining, pos = decode_varint(data, 1)
    assert len(data) - pos == remaining, "Remaining Length does not match"
    topic_len = int.from_bytes(data[pos : pos + 2], "big")
    topic = data[pos + 2 : pos + 2 + topic_len].decode("utf-8")
    pos += 2 + topic_len
    props = b""
    if v5:
        props_len, after = decode_varint(data, pos)
        props = data[pos : after + props_len]
        pos = after + props_len
    return header, topic, props, data[pos:]


def paho_encoding(
    topic: str, payload: bytes, retain: bool, v5: bool, properties: Properties | None = None
) -> bytes:
    """The bytes paho itself queues for `publish(topic, payload, 0, retain)`."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    )
    captured: list[bytes] = []

    def capture(command: int, packet: bytes, *_: Any, **__: Any) -> mqtt.MQTTErrorCode:
        captured.append(bytes(packet))
        return mqtt.MQTT_ERR_SUCCESS

    client._sock = object()  # type: ignore[assignment]  # _send_publish only checks it is set
    client._packet_queue = capture  # type: ignore[method-assign]
    client.publish(topic, payload, 0, retain, properties)
    client._sock = None  # nothing to close
    (packet,) = captured
    return packet


# ---- layout ------------------------------------------------------------------------------


def test_mqtt5_layout_byte_by_byte() -> None:
    assert encode_publish_qos0("a/b", b"21.5", retain=False, v5=True) == bytes(
        [0x30, 10, 0x00, 0x03, *b"a/b", 0x00, *b"21.5"]
    )


def test_mqtt311_layout_byte_by_byte() -> None:
    assert encode_publish_qos0("a/b", b"21.5", retain=True, v5=False) == bytes(
        [0x31, 9, 0x00, 0x03, *b"a/b", *b"21.5"]
    )


def test_empty_payload() -> None:
    assert encode_publish_qos0("t", b"", retain=True, v5=True) == b"\x31\x04\x00\x01t\x00"


def test_properties_are_placed_after_the_topic() -> None:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.CorrelationData = b"c1"
    packed = props.pack()
    assert packed == b"\x05\x09\x00\x02c1"
    assert encode_publish_qos0("r", b"x", retain=False, v5=True, properties=packed) == (
        b"\x30\x0a\x00\x01r" + packed + b"x"
    )
    assert encode_publish_qos0("r", b"x", False, True, packed) == paho_encoding(
        "r", b"x", False, True, props
    )


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (MAX_REMAINING_LENGTH, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_boundaries(value: int, encoded: bytes) -> None:
    # The table of MQTT 5.0 §1.5.5 (and 3.1.1 §2.2.3).
    assert encode_remaining_length(value) == encoded
    assert decode_varint(encoded, 0) == (value, len(encoded))


@pytest.mark.parametrize("value", [MAX_REMAINING_LENGTH + 1, -1])
def test_remaining_length_out_of_range(value: int) -> None:
    with pytest.raises(ValueError) as err:
        encode_remaining_length(value)
    assert str(err.value) == (
        f"packet too large: remaining length {value} exceeds {MAX_REMAINING_LENGTH}"
    )


@pytest.mark.parametrize("v5", [True, False])
@pytest.mark.parametrize("remaining", [127, 128, 16_383, 16_384])
def test_packets_at_the_boundaries_match_paho(v5: bool, remaining: int) -> None:
    topic = "t/x"
    overhead = 2 + len(topic) + (1 if v5 else 0)
    payload = bytes(range(256)) * (remaining // 256 + 1)
    payload = payload[: remaining - overhead]
    ours = encode_publish_qos0(topic, payload, False, v5)
    assert ours == paho_encoding(topic, payload, False, v5)
    assert decode_publish(ours, v5) == (0x30, topic, b"\x00" if v5 else b"", payload)
    assert decode_varint(ours, 1)[0] == remaining


@pytest.mark.parametrize("v5", [True, False])
def test_utf8_topics_count_bytes_not_characters(v5: bool) -> None:
    topic = "häus/température/温度/🌡"
    ours = encode_publish_qos0(topic, "22 °C".encode(), True, v5)
    assert ours == paho_encoding(topic, "22 °C".encode(), True, v5)
    assert int.from_bytes(ours[2:4], "big") == len(topic.encode()) == 30


# ---- refused topics ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("", "empty topic"),
        ("a/+/b", "topic 'a/+/b' contains a wildcard"),
        ("a/#", "topic 'a/#' contains a wildcard"),
        ("a\x00b", "topic contains U+0000"),
        ("x" * 65_536, "topic of 65536 bytes exceeds 65535"),
        ("é" * 32_768, "topic of 65536 bytes exceeds 65535"),
    ],
)
def test_topics_a_publish_may_not_carry(topic: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        topic_prefix(topic, v5=True)
    assert str(err.value) == message


def test_a_lone_surrogate_is_not_utf8() -> None:
    with pytest.raises(UnicodeEncodeError):
        topic_prefix("a/\udc80", v5=False)


def test_longest_topic_is_accepted() -> None:
    prefix = topic_prefix("x" * 65_535, v5=False)
    assert prefix[:2] == b"\xff\xff" and len(prefix) == 65_537


def test_properties_on_mqtt311_are_refused() -> None:
    with pytest.raises(ValueError) as err:
        encode_publish_qos0("t", b"", False, False, properties=b"\x00")
    assert str(err.value) == "MQTT 3.1.1 has no properties"


def test_topic_cache_is_bounded_and_per_version() -> None:
    cache = TopicCache(v5=True, limit=2)
    assert cache["a"] == b"\x00\x01a\x00"
    assert cache["b"] == b"\x00\x01b\x00"
    assert cache["c"] == b"\x00\x01c\x00"  # the third clears the first two
    assert list(cache) == ["c"]
    assert TopicCache(v5=False)["a"] == b"\x00\x01a"
    with pytest.raises(ValueError):
        cache["a/#"]
    assert "a/#" not in cache


# ---- round trip --------------------------------------------------------------------------

topics = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="+#\x00"),
    min_size=1,
    max_size=40,
)


@given(topic=topics, payload=st.binary(max_size=20_000), retain=st.booleans(), v5=st.booleans())
def test_round_trip_through_a_spec_decoder(
    topic: str, payload: bytes, retain: bool, v5: bool
) -> None:
    packet = encode_publish_qos0(topic, payload, retain, v5)
    assert decode_publish(packet, v5) == (
        0x31 if retain else 0x30,
        topic,
        b"\x00" if v5 else b"",
        payload,
    )


@given(topic=topics, payload=st.binary(max_size=300), retain=st.booleans(), v5=st.booleans())
def test_same_bytes_as_paho(topic: str, payload: bytes, retain: bool, v5: bool) -> None:
    assert encode_publish_qos0(topic, payload, retain, v5) == paho_encoding(
        topic, payload, retain, v5
    )
