"""`UtcClock` (`conduyt_bridge/northbound/conduyt/payloads.py`): the `ts` of JSON payloads,
its date-and-seconds text built once per second, always the text `utc_timestamp` gives;
and the split of a session's frame errors into CRC and framing errors."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from conduyt_bridge.device.session_stats import SessionStats
from conduyt_bridge.northbound.conduyt.payloads import UtcClock, utc_timestamp
from conduyt_bridge.protocol.deframer import FrameErrorReason


def reference(epoch_s: float) -> str:
    return utc_timestamp(datetime.fromtimestamp(int(epoch_s * 1000) / 1000, UTC))


@given(st.lists(st.floats(min_value=0, max_value=4e9), min_size=1, max_size=20))
def test_clock_text_equals_utc_timestamp(times: list[float]) -> None:
    clock = UtcClock()
    for t in sorted(times) + times:  # in order (the cache's case) and out of order
        assert clock.now(t) == reference(t)


def test_clock_examples_across_a_second_boundary() -> None:
    clock = UtcClock()
    assert clock.now(1_763_784_999.998) == "2025-11-22T04:16:39.998Z"
    assert clock.now(1_763_785_000.001) == "2025-11-22T04:16:40.001Z"
    assert clock.now(0.0) == "1970-01-01T00:00:00.000Z"


def test_frame_errors_split_into_crc_and_framing() -> None:
    stats = SessionStats()
    stats.frame_error(FrameErrorReason.CRC_MISMATCH)
    for reason in (FrameErrorReason.COBS, FrameErrorReason.TRUNCATED, FrameErrorReason.OVERSIZE):
        stats.frame_error(reason)
    assert (stats.frame_errors, stats.crc_errors, stats.framing_errors) == (4, 1, 3)
