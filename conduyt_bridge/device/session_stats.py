"""Counters of one board's session, read by the health report and the metrics."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

LATENCY_WINDOW = 1024
"""Command latencies kept for percentiles."""


@dataclass
class SessionStats:
    """Counters of one board since the bridge started."""

    packets_in: int = 0
    packets_out: int = 0
    frame_errors: int = 0
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
