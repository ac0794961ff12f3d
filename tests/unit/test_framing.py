"""Stream framing: COBS + 0x00 (§3.1) and raw packets on TCP (§3.2)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conduyt_bridge.protocol import (
    CobsDeframer,
    DeframerStats,
    FrameError,
    FrameErrorReason,
    Packet,
    RawDeframer,
    cobs_frame,
    encode_packet,
)

PW = bytes.fromhex("43 44 02 11 01 02 00 0d 01 94")  # PIN_WRITE pin 13 HIGH, seq 1
PW_PACKET = Packet(0x11, 1, b"\x0d\x01")
PW_FRAME = bytes.fromhex("07 43 44 02 11 01 02 04 0d 01 94 00")

SMALL = 32  # max_payload used where the tests want oversize paths to be reachable

packets = st.builds(
    Packet,
    type=st.integers(0, 255),
    seq=st.integers(0, 255),
    payload=st.binary(max_size=SMALL),
)
nonzero = st.binary(max_size=120).map(lambda b: b.replace(b"\x00", b"\x01"))
text_garbage = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("\r\n"),
    min_size=1,
    max_size=80,
).map(lambda s: s.encode("ascii"))


def _chunks(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _feed_all(deframer: CobsDeframer | RawDeframer, parts: Sequence[bytes]) -> list[object]:
    out: list[object] = []
    for part in parts:
        out.extend(deframer.feed_events(part))
    return out


def _is_subsequence(needles: Sequence[Packet], haystack: Sequence[object]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


# ------------------------------------------------------------------------------ COBS


def test_cobs_frame_exact() -> None:
    assert cobs_frame(PW) == PW_FRAME
    assert CobsDeframer().frame(PW) == PW_FRAME


def test_cobs_deframer_single_frame() -> None:
    d = CobsDeframer()
    assert d.feed(PW_FRAME) == [PW_PACKET]
    assert d.stats == DeframerStats(packets=1)


def test_cobs_default_max_frame() -> None:
    # (2048 + 8) bytes of packet, + 2056 // 254 + 1 COBS overhead.
    assert CobsDeframer().max_frame == 2056 + 8 + 1
    assert CobsDeframer(max_payload=SMALL).max_frame == 40 + 0 + 1


def test_cobs_empty_frames_are_skipped_not_errors() -> None:
    d = CobsDeframer()
    assert d.feed_events(b"\x00\x00" + PW_FRAME + b"\x00") == [PW_PACKET]
    assert d.stats.empty_frames == 3
    assert d.stats.dropped == 0


def test_cobs_bad_cobs_frame() -> None:
    d = CobsDeframer()
    assert d.feed_events(b"\x05ab\x00") == [
        FrameError(FrameErrorReason.COBS, "not enough input bytes for length code", b"\x05ab")
    ]
    assert (d.stats.cobs_errors, d.stats.garbage_bytes) == (1, 3)


def test_cobs_bad_magic_frame() -> None:
    d = CobsDeframer()
    frame = cobs_frame(b"XY" + PW[2:])
    assert d.feed_events(frame) == [
        FrameError(FrameErrorReason.BAD_MAGIC, "bad magic: 58 59 (expected 43 44)", frame[:-1])
    ]
    assert d.stats.bad_magic == 1


def test_cobs_crc_error_frame() -> None:
    bad = bytearray(PW)
    bad[-1] ^= 0x01
    d = CobsDeframer()
    events = d.feed_events(cobs_frame(bytes(bad)))
    assert events == [
        FrameError(
            FrameErrorReason.CRC_MISMATCH,
            "CRC mismatch: computed 0x94, packet says 0x95",
            cobs_frame(bytes(bad))[:-1],
        )
    ]
    assert d.stats.crc_errors == 1 and d.stats.dropped == 1


def test_cobs_version_mismatch_and_truncated_frames() -> None:
    v1 = bytearray(PW)
    v1[2] = 1
    d = CobsDeframer()
    events = d.feed_events(cobs_frame(bytes(v1)) + cobs_frame(PW[:9]))
    assert [(e.reason, e.detail) for e in events if isinstance(e, FrameError)] == [
        (
            FrameErrorReason.VERSION_MISMATCH,
            "protocol version mismatch: got 1, expected 2 (board runs protocol-v1 firmware; "
            "re-flash it)",
        ),
        (FrameErrorReason.TRUNCATED, "truncated packet: need 10 bytes, got 9"),
    ]
    assert (d.stats.version_mismatch, d.stats.truncated, d.stats.dropped) == (1, 1, 2)


def test_cobs_oversize_packet_len() -> None:
    """A frame within max_frame whose LEN exceeds max_payload is dropped as OVERSIZE."""
    d = CobsDeframer(max_payload=SMALL)
    frame = cobs_frame(b"CD\x02\x11\x01\xff\x00\x00")
    assert d.feed_events(frame) == [
        FrameError(
            FrameErrorReason.OVERSIZE,
            "payload of 255 bytes exceeds the limit of 32 bytes",
            frame[:-1],
        )
    ]
    # The //254 slack of max_frame lets a zero-rich packet one byte over the limit through
    # the frame-length check; the LEN check still rejects it.
    d = CobsDeframer(max_payload=300)
    frame = cobs_frame(encode_packet(0xD1, 0, bytes(301)))
    assert len(frame) - 1 <= d.max_frame
    events = d.feed_events(frame)
    assert [(e.reason, e.detail) for e in events if isinstance(e, FrameError)] == [
        (FrameErrorReason.OVERSIZE, "payload of 301 bytes exceeds the limit of 300 bytes")
    ]


def test_cobs_oversize_frame_in_one_chunk() -> None:
    d = CobsDeframer(max_payload=SMALL)
    junk = b"\x01" * 100
    events = d.feed_events(junk + b"\x00" + PW_FRAME)
    assert events == [
        FrameError(FrameErrorReason.OVERSIZE, "frame of 100 bytes exceeds 41 bytes", junk[:64]),
        PW_PACKET,
    ]
    assert (d.stats.oversize, d.stats.garbage_bytes) == (1, 100)


def test_cobs_no_delimiter_overflow_then_recovery() -> None:
    d = CobsDeframer(max_payload=SMALL)
    assert d.feed_events(b"\x01" * 41) == []  # exactly max_frame: kept
    events = d.feed_events(b"\x01")
    assert events == [
        FrameError(FrameErrorReason.OVERSIZE, "no delimiter within 41 bytes", b"\x01" * 42)
    ]
    assert d.feed_events(b"\x02" * 500) == []  # discarding until the next delimiter
    assert d.feed_events(b"\x02\x00" + PW_FRAME) == [PW_PACKET]
    assert d.stats.oversize == 1
    assert d.stats.garbage_bytes == 42 + 500 + 1


def test_cobs_frame_of_exactly_max_frame_is_decoded() -> None:
    packet = Packet(0xD1, 0, b"\x07" * SMALL)
    frame = cobs_frame(packet.encode())
    d = CobsDeframer(max_payload=SMALL)
    assert len(frame) - 1 == d.max_frame == 41  # 40 packet bytes + 1 code byte
    assert d.feed(frame) == [packet]


def test_cobs_both_encodings_of_a_254_byte_run_are_accepted() -> None:
    """§3.1: after a full 254-byte block the firmware adds a `01` code; the `cobs` lib
    (our encoder) ends the frame instead. The deframer accepts both."""
    packet = Packet(0xD1, 0x11, b"\x07" * 253)  # LEN fd 00: a zero, then 253 + CRC bytes
    wire = packet.encode()
    assert wire[6] == 0 and b"\x00" not in wire[7:] and len(wire[7:]) == 254
    ours = cobs_frame(wire)
    assert ours == bytes.fromhex("07 43 44 02 d1 11 fd ff") + wire[7:] + b"\x00"
    firmware_style = ours[:-1] + b"\x01\x00"
    d = CobsDeframer()
    assert d.feed(ours + firmware_style) == [packet, packet]
    assert d.stats.dropped == 0


def test_cobs_trailing_bytes_inside_frame_are_discarded() -> None:
    """§1.3 step 6: bytes after 8+LEN inside a COBS frame are not part of the packet."""
    d = CobsDeframer()
    assert d.feed(cobs_frame(PW + b"\xaa\xbb")) == [PW_PACKET]
    assert d.stats.dropped == 0


def test_cobs_resync_after_printed_text() -> None:
    """Q19: sketch prints and boot banners in front of a frame cost only the text."""
    banner = b"ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\nHello CD world\r\n"
    d = CobsDeframer()
    assert d.feed_events(banner + PW_FRAME) == [PW_PACKET]
    assert d.stats.resyncs == 1
    assert d.stats.garbage_bytes == len(banner)
    assert d.stats.dropped == 0


def test_cobs_frame_error_raw_is_capped_at_64_bytes() -> None:
    d = CobsDeframer()
    events = d.feed_events(b"\xff" + b"\x01" * 199 + b"\x00")  # code FF needs 254
    assert len(events) == 1 and isinstance(events[0], FrameError)
    assert events[0].reason is FrameErrorReason.COBS
    assert len(events[0].raw) == 64


def test_feed_returns_only_packets() -> None:
    d = CobsDeframer()
    assert d.feed(b"\x05ab\x00" + PW_FRAME) == [PW_PACKET]
    assert d.stats.cobs_errors == 1


def test_stats_as_dict() -> None:
    d = CobsDeframer()
    d.feed(b"\x05ab\x00\x00" + PW_FRAME)
    assert d.stats.as_dict() == {
        "packets": 1,
        "empty_frames": 1,
        "cobs_errors": 1,
        "bad_magic": 0,
        "version_mismatch": 0,
        "truncated": 0,
        "crc_errors": 0,
        "oversize": 0,
        "resyncs": 0,
        "garbage_bytes": 3,
        "text_lines": 0,
        "text_bytes": 0,
        "dropped": 1,
        "noise_bytes": 3,
    }


# ------------------------------------------------------------------------------ raw


def test_raw_deframer_single_packet_and_frame() -> None:
    d = RawDeframer()
    assert d.frame(PW) == PW
    assert d.feed(PW) == [PW_PACKET]
    assert d.stats == DeframerStats(packets=1)


def test_raw_skips_garbage_and_keeps_a_trailing_c() -> None:
    d = RawDeframer()
    assert d.feed_events(b"xyzC") == []
    assert d.stats.garbage_bytes == 3
    assert d.feed_events(PW[1:]) == [PW_PACKET]


def test_raw_version_mismatch_is_skipped() -> None:
    v1 = bytearray(PW)
    v1[2] = 1
    d = RawDeframer()
    events = d.feed_events(bytes(v1) + PW)
    assert events == [
        FrameError(
            FrameErrorReason.VERSION_MISMATCH,
            "protocol version mismatch: got 1, expected 2 (board runs protocol-v1 firmware; "
            "re-flash it)",
            bytes(v1[:8]),
        ),
        PW_PACKET,
    ]


def test_raw_oversize_len_is_skipped_without_waiting() -> None:
    d = RawDeframer()
    head = b"CD\x02\x11\x01\xff\xff"
    events = d.feed_events(head + PW)
    assert events == [
        FrameError(
            FrameErrorReason.OVERSIZE,
            "payload of 65535 bytes exceeds the limit of 2048 bytes",
            (head + PW)[:8],
        ),
        PW_PACKET,
    ]
    assert d.stats.oversize == 1


def test_raw_crc_error_then_recovery() -> None:
    bad = bytearray(PW)
    bad[-1] ^= 1
    d = RawDeframer()
    events = d.feed_events(bytes(bad) + PW)
    assert events == [
        FrameError(
            FrameErrorReason.CRC_MISMATCH,
            "CRC mismatch: computed 0x94, packet says 0x95",
            bytes(bad[:8]),
        ),
        PW_PACKET,
    ]
    assert d.stats.crc_errors == 1


def test_raw_magic_inside_payload_is_not_a_packet_start() -> None:
    inner = Packet(0xD1, 0, b"\x00CD\x02\x01\x00\x00\x00")
    d = RawDeframer()
    assert d.feed(inner.encode() + PW) == [inner, PW_PACKET]
    assert d.stats.dropped == 0


def test_raw_waits_for_the_whole_packet() -> None:
    d = RawDeframer()
    assert d.feed(PW[:7]) == []
    assert d.feed(PW[7:9]) == []
    assert d.feed(PW[9:]) == [PW_PACKET]


# ------------------------------------------------------------------------------ properties

cobs_parts = st.lists(
    st.one_of(
        packets.map(lambda p: ("packet", p)),
        nonzero.map(lambda g: ("garbage", g)),
        st.just(("empty", b"")),
    ),
    max_size=12,
)


def _cobs_stream(parts: Sequence[tuple[str, object]]) -> bytes:
    out = bytearray()
    for kind, value in parts:
        if kind == "packet":
            assert isinstance(value, Packet)
            out += cobs_frame(value.encode())
        else:
            assert isinstance(value, bytes)
            out += value + b"\x00"
    return bytes(out)


def _summary(events: Sequence[object]) -> list[object]:
    # FrameError details/raw of an oversize frame depend on where the overflow was noticed.
    return [e.reason if isinstance(e, FrameError) else e for e in events]


@given(cobs_parts, st.lists(st.integers(0, 10_000), max_size=20))
def test_cobs_output_independent_of_chunking(
    parts: list[tuple[str, object]], cuts: list[int]
) -> None:
    stream = _cobs_stream(parts)
    whole = CobsDeframer(max_payload=SMALL)
    chunked = CobsDeframer(max_payload=SMALL)
    bytewise = CobsDeframer(max_payload=SMALL)
    expected = whole.feed_events(stream)
    assert _summary(_feed_all(chunked, _chunks(stream, cuts))) == _summary(expected)
    assert _summary(_feed_all(bytewise, [stream[i : i + 1] for i in range(len(stream))])) == (
        _summary(expected)
    )
    assert chunked.stats == whole.stats == bytewise.stats


@given(
    st.lists(st.tuples(nonzero, packets), max_size=10),
    st.lists(st.integers(0, 10_000), max_size=20),
)
def test_cobs_garbage_between_frames_loses_no_frame(
    items: list[tuple[bytes, Packet]], cuts: list[int]
) -> None:
    stream = b"".join(g + b"\x00" + cobs_frame(p.encode()) for g, p in items)
    d = CobsDeframer(max_payload=SMALL)
    out = _feed_all(d, _chunks(stream, cuts))
    assert _is_subsequence([p for _, p in items], out)
    assert len(d._buf) == 0  # every frame ended with its delimiter


@given(st.lists(st.tuples(text_garbage, packets), max_size=8))
def test_cobs_printed_text_in_front_of_frames_is_resynced(
    items: list[tuple[bytes, Packet]],
) -> None:
    """Printable text (Q19) directly before a frame never hides the frame."""
    stream = b"".join(g + cobs_frame(p.encode()) for g, p in items)
    d = CobsDeframer()
    assert d.feed(stream) == [p for _, p in items]
    assert d.stats.resyncs == len(items)
    assert d.stats.garbage_bytes == sum(len(g) for g, _ in items)


@given(st.lists(nonzero, max_size=30))
def test_cobs_buffer_never_exceeds_max_frame(chunks: list[bytes]) -> None:
    d = CobsDeframer(max_payload=SMALL)
    for chunk in chunks:
        d.feed_events(chunk)
        assert len(d._buf) <= d.max_frame
    assert d.feed(b"\x00" + PW_FRAME) == [PW_PACKET]


raw_parts = st.lists(st.tuples(st.binary(max_size=60), packets), max_size=10)


@given(raw_parts, st.lists(st.integers(0, 10_000), max_size=20))
def test_raw_output_independent_of_chunking(
    items: list[tuple[bytes, Packet]], cuts: list[int]
) -> None:
    stream = b"".join(g + p.encode() for g, p in items) + bytes(SMALL + 8)

    def summary(events: Sequence[object]) -> list[object]:
        # `raw` holds what was buffered when the skip happened: chunking-dependent.
        return [(e.reason, e.detail) if isinstance(e, FrameError) else e for e in events]

    whole = RawDeframer(max_payload=SMALL)
    chunked = RawDeframer(max_payload=SMALL)
    expected = summary(whole.feed_events(stream))
    assert summary(_feed_all(chunked, _chunks(stream, cuts))) == expected
    assert chunked.stats == whole.stats


@given(raw_parts, st.lists(st.integers(0, 10_000), max_size=20))
def test_raw_arbitrary_garbage_loses_no_packet(
    items: list[tuple[bytes, Packet]], cuts: list[int]
) -> None:
    """Garbage may open a false candidate that waits for LEN bytes; flushing with
    max_payload + 8 zero bytes resolves it, and every real packet still comes out."""
    stream = b"".join(g + p.encode() for g, p in items) + bytes(SMALL + 8)
    d = RawDeframer(max_payload=SMALL)
    out = _feed_all(d, _chunks(stream, cuts))
    assert _is_subsequence([p for _, p in items], out)
    assert len(d._buf) < SMALL + 8


@pytest.mark.parametrize("deframer", [CobsDeframer, RawDeframer])
@given(data=st.binary(max_size=300))
def test_arbitrary_input_never_raises(
    deframer: type[CobsDeframer] | type[RawDeframer], data: bytes
) -> None:
    d = deframer(max_payload=SMALL)
    events = d.feed_events(data)
    assert all(isinstance(e, Packet | FrameError) for e in events)
    assert d.stats.packets == sum(isinstance(e, Packet) for e in events)
    assert d.stats.dropped == sum(isinstance(e, FrameError) for e in events)
