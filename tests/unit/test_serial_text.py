"""Text printed on a COBS link between frames (`docs/serial-text.md`): the deframer yields
it as `TextLine`s, in stream order, without losing a frame."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conduyt_bridge.device.serial_text import LineRateLimiter, boot_banner
from conduyt_bridge.protocol.framing import (
    MIN_PRINTABLE_PERCENT,
    CobsDeframer,
    FrameError,
    TextLine,
    cobs_frame,
)
from conduyt_bridge.protocol.packet import Packet

EVENT = Packet(0xD1, 0, b"\x00\x00\x00\xac\x41")
FRAME = cobs_frame(EVENT.encode())


def test_a_line_comes_out_when_its_lf_arrives() -> None:
    d = CobsDeframer()
    assert d.feed_stream(b"debug: t=21") == []
    assert d.feed_stream(b".5\r\n") == [TextLine("debug: t=21.5")]
    assert (d.stats.text_lines, d.stats.text_bytes, d.stats.noise_bytes) == (1, 15, 0)
    assert d.feed_stream(FRAME) == [EVENT]


def test_text_and_frame_in_one_read_keep_their_order() -> None:
    d = CobsDeframer()
    out = d.feed_stream(b"a\r\n\r\nb \xc2\xb0C\n" + FRAME + b"c\n")
    assert out == [TextLine("a"), TextLine("b °C"), EVENT, TextLine("c")]
    assert d.stats.dropped == 0


def test_a_fragment_in_front_of_a_frame_joins_the_text_after_it() -> None:
    d = CobsDeframer()
    assert d.feed_stream(b"x=" + FRAME + b"5\r\n") == [EVENT, TextLine("x=5")]


def test_long_lines_come_in_pieces_cut_on_character_boundaries() -> None:
    d = CobsDeframer(max_line=8)
    out = d.feed_stream("abcdefgé€xyz!\n".encode())
    # `é` would straddle byte 8: the first piece stops before it.
    assert out == [TextLine("abcdefg", False), TextLine("é€xyz", False), TextLine("!")]
    assert all(len(t.text.encode()) <= 8 for t in out if isinstance(t, TextLine))


def test_binary_noise_is_not_text() -> None:
    d = CobsDeframer()
    noise = b"\xff\xfe\x01\x1b[2J\x90\n" * 3
    assert d.feed_stream(noise + FRAME) == [EVENT]
    assert (d.stats.text_lines, d.stats.noise_bytes) == (0, len(noise))


def test_ansi_colour_lines_are_text_without_their_escape_sequences() -> None:
    """ESP-IDF logs in colour by default: `ESC [0;32m` ... `ESC [0m`."""
    d = CobsDeframer()
    line = b"\x1b[0;32mI (1234) wifi: connected, rssi=-61\x1b[0m\r\n"
    assert d.feed_stream(line) == [TextLine("I (1234) wifi: connected, rssi=-61")]
    assert d.feed_stream(b"\x1b[2K\x1b[1;31mE (99) x\x1b[0m\n" + FRAME) == [
        TextLine("E (99) x"),
        EVENT,
    ]
    assert (d.stats.text_lines, d.stats.noise_bytes, d.stats.dropped) == (2, 0, 0)


def test_a_line_with_a_corrupted_byte_is_text_with_a_replacement_character() -> None:
    d = CobsDeframer()
    line = b"temperature = 21.\xf55 C\r\n"
    assert d.feed_stream(line + FRAME) == [TextLine("temperature = 21.\ufffd5 C"), EVENT]
    assert (d.stats.text_bytes, d.stats.noise_bytes, d.stats.dropped) == (len(line), 0, 0)
    # The same bytes arriving with the frame in one read, and split byte by byte, agree.
    d = CobsDeframer()
    stream = line + FRAME
    out = [item for i in range(len(stream)) for item in d.feed_stream(stream[i : i + 1])]
    assert out == [TextLine("temperature = 21.\ufffd5 C"), EVENT]


def test_the_printable_share_decides_between_text_and_noise() -> None:
    """`MIN_PRINTABLE_PERCENT`: 90 % of the bytes (LF, escape sequences not counted)."""
    assert MIN_PRINTABLE_PERCENT == 90
    d = CobsDeframer()
    nine_of_ten = b"abcdefghi\x01\n"  # text; the control character is shown as U+FFFD
    eight_of_ten = b"abcdefgh\x01\xff\n"  # noise
    assert d.feed_stream(nine_of_ten + eight_of_ten + FRAME) == [
        TextLine("abcdefghi\ufffd"),
        EVENT,
    ]
    assert d.stats.noise_bytes == len(eight_of_ten)
    # Without an LF (a fragment in front of a frame) only fully printable text counts.
    d = CobsDeframer()
    assert d.feed_stream(b"abcdefghijklmnopqrs\xff" + FRAME) == [EVENT]
    assert (d.stats.text_lines, d.stats.noise_bytes) == (0, 20)


def test_a_mostly_printable_run_never_hides_a_frame() -> None:
    """A frame printed into the middle of a line: `43 44 02` is never text."""
    packet = Packet(0xD1, 0, b"\n" + b"\x01" * 40)  # an LF early in the frame
    stream = b"x" * 60 + cobs_frame(packet.encode()) + b"tail\n"
    expected = [packet, TextLine("x" * 60 + "tail")]
    assert CobsDeframer().feed_stream(stream) == expected
    d = CobsDeframer()
    assert [item for i in range(len(stream)) for item in d.feed_stream(stream[i : i + 1])] == (
        expected
    )
    assert (d.stats.noise_bytes, d.stats.dropped) == (0, 0)


def test_noise_ends_a_text_fragment() -> None:
    d = CobsDeframer()
    out = d.feed_stream(b"half a line" + FRAME + b"\x01\x02\x03\x00")
    assert out[:2] == [EVENT, TextLine("half a line", False)]
    assert isinstance(out[2], FrameError) and len(out) == 3


def test_an_lf_that_is_a_cobs_code_byte_is_not_taken_for_text() -> None:
    # LEN 0x0101, seq 1, third payload byte 0: the first zero is at packet index 9, so
    # the frame's code byte is 0x0A, an LF.
    packet = Packet(0x40, 1, b"\x01\x01\x00" + b"\x01" * 254)
    frame = cobs_frame(packet.encode())
    assert frame[:3] == b"\nCD"
    d = CobsDeframer()
    assert d.feed_stream(b"no newline yet") == []
    assert d.feed_stream(frame[:5]) == []
    assert d.feed_stream(frame[5:]) == [packet]
    assert d.feed_stream(b"\r\n") == [TextLine("no newline yet")]


lines = st.lists(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("é°€"),
        min_size=1,
        max_size=40,
    ),
    max_size=4,
)


@given(st.lists(lines, max_size=6), st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_any_chunking_gives_the_same_lines_and_packets(
    groups: list[list[str]], sizes: list[int]
) -> None:
    stream = b"".join(b"".join(f"{t}\r\n".encode() for t in g) + FRAME for g in groups)
    expected = [item for g in groups for item in [*map(TextLine, g), EVENT]]
    d = CobsDeframer()
    out = []
    pos = 0
    i = 0
    while pos < len(stream):
        size = sizes[i % len(sizes)]
        out += d.feed_stream(stream[pos : pos + size])
        pos += size
        i += 1
    assert out == expected
    assert d.stats.dropped == 0 and d.stats.noise_bytes == 0


def test_boot_banners_are_recognised() -> None:
    assert boot_banner("rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)")
    assert boot_banner("ets Jun  8 2016 00:22:57")
    assert boot_banner(" ets Jan  8 2013,rst cause:2, boot mode:(3,6)")
    assert boot_banner("ESP-ROM:esp32s3-20210327")
    assert boot_banner("debug: reset counter 3") is None
    assert boot_banner("temperature 21.5") is None


def test_log_lines_are_rate_limited_after_a_burst() -> None:
    limiter = LineRateLimiter(rate=0.001, burst=5)
    assert [limiter.allow() for _ in range(8)] == [True] * 5 + [False] * 3
    assert limiter.dropped == 3


def test_simulator_prints_lines_between_frames() -> None:
    from conduyt_bridge.simulator.board import SimulatedBoard
    from conduyt_bridge.simulator.profiles import get_profile

    board = SimulatedBoard(get_profile("thermostat"), seed=1)
    board.tick(0.0)
    board.faults.print_lines = ["debug: one", "debug: two"]
    wire = board.tick(5.0)
    assert wire.startswith(b"debug: one\r\ndebug: two\r\n")
    assert board.faults.print_lines == []
    d = CobsDeframer()
    out = d.feed_stream(wire)
    assert out[:2] == [TextLine("debug: one"), TextLine("debug: two")]
    assert all(isinstance(item, Packet) for item in out[2:]) and len(out) > 2


segments = st.lists(
    st.one_of(
        st.binary(max_size=30).map(lambda b: b.replace(b"\x00", b"")),
        st.text(max_size=30).map(lambda t: t.replace("\x00", "").encode()),
        st.sampled_from([b"\n", b"\r\n", b"\x1b[0;32m", b"\x1b[0m", b"\xf5", b"CD", FRAME]),
    ),
    max_size=20,
)


@given(segments, st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_text_noise_and_frames_do_not_depend_on_chunking(
    parts: list[bytes], sizes: list[int]
) -> None:
    """Mixed text, escape sequences, bad bytes, long runs and frames: fed whole or in any
    chunks, the same items come out and the same bytes count as noise."""
    stream = b"".join(parts) + b"\n\x00"
    whole = CobsDeframer(max_line=8)
    expected = whole.feed_stream(stream)
    d = CobsDeframer(max_line=8)
    out = []
    pos = i = 0
    while pos < len(stream):
        size = sizes[i % len(sizes)]
        out += d.feed_stream(stream[pos : pos + size])
        pos += size
        i += 1
    assert [x for x in out if not isinstance(x, FrameError)] == [
        x for x in expected if not isinstance(x, FrameError)
    ]
    assert (d.stats.noise_bytes, d.stats.text_bytes) == (
        whole.stats.noise_bytes,
        whole.stats.text_bytes,
    )
