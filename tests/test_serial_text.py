"""Text printed on a COBS link between frames (`docs/serial-text.md`): the deframer yields
it as `TextLine`s, in stream order, without losing a frame."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.device.serial_text import LineRateLimiter, boot_banner
from bridge.protocol.framing import CobsDeframer, FrameError, TextLine, cobs_frame
from bridge.protocol.packet import Packet

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
    from bridge.simulator.board import SimulatedBoard
    from bridge.simulator.profiles import get_profile

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
