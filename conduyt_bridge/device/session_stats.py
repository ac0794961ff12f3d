"""Counters of one board's session, read by the health report and the metrics."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from conduyt_bridge.protocol.deframer import FrameErrorReason

LATENCY_WINDOW = 1024
"""Command latencies kept for percentiles."""


@dataclass
class SessionStats:
    """Counters of one board since the bridge started."""

    packets_in: int = 0
    packets_out: int = 0
    reads_in: int = 0
    """Reads of the link that carried bytes: `packets_in` / `reads_in` is the packets one
    read carries, which read coalescing raises (`docs/architecture.md` §6.1)."""
    frame_errors: int = 0
    """Frames dropped on receive, for any reason: `crc_errors` + `framing_errors`."""
    crc_errors: int = 0
    """Frames whose CRC-8 did not match (`docs/protocol.md` §2): bit errors on the line."""
    framing_errors: int = 0
    """Frames dropped for any other reason: bad COBS, magic, version, truncated, oversized
    (a baud rate mismatch or another protocol on the port, more than noise)."""
    text_lines: int = 0
    reboots_suspected: int = 0
    crc_naks: int = 0
    retransmits: int = 0
    naks: int = 0
    timeouts: int = 0
    reconnects: int = 0
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    latency_observers: list[Callable[[float], None]] = field(default_factory=list)
    """Called with every command latency, seconds (e.g. a Prometheus histogram: the
    window above cannot give cumulative buckets)."""

    def frame_error(self, reason: FrameErrorReason) -> None:
        """Count one dropped frame under `frame_errors` and its kind."""
        self.frame_errors += 1
        if reason is FrameErrorReason.CRC_MISMATCH:
            self.crc_errors += 1
        else:
            self.framing_errors += 1

    def record_latency(self, seconds: float) -> None:
        """Note one command's latency (seconds) in the window and tell the observers."""
        self.latencies_s.append(seconds)
        for observer in self.latency_observers:
            observer(seconds)

    def latency_percentile(self, q: float) -> float | None:
        """The q-quantile (0..1) of recent command latencies in seconds, None if none yet."""
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
