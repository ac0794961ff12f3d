"""Prometheus metrics of one Bridge (`docs/architecture.md` §10, `/metrics`).

Counters already live on the objects that count them (`SessionStats`, `MqttConnection`,
`Board`), so a custom `Collector` reads them at scrape time instead of keeping a
second set of counters in step. The one exception is the command latency histogram:
`SessionStats` only keeps a sliding window of recent latencies (for the p50/p99 of the
health document), which cannot give Prometheus' cumulative buckets, so each session's
stats feed every observation to a `Histogram` child through `latency_observers`.

Every Bridge gets its own `CollectorRegistry` (never prometheus_client's global one), so
several bridges in one process (tests, the demo) never share or clash over metrics.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from conduyt_bridge.version import __version__

if TYPE_CHECKING:
    from conduyt_bridge.core.board import Board
    from conduyt_bridge.northbound.host import AdapterHost

PREFIX = "conduyt_bridge"
"""Every metric name starts with this."""

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Histogram buckets for command latency, seconds: a USB-CDC round trip is ~1-5 ms, a
115200-baud UART one ~2-20 ms, and the default command timeout is 1 s."""

# (metric suffix, SessionStats attribute, help text): per-board counters read at scrape time.
_SESSION_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("packets_in", "packets_in", "Conduyt packets received from the board."),
    ("packets_out", "packets_out", "Conduyt packets sent to the board."),
    (
        "link_reads",
        "reads_in",
        "Reads of the board's link that carried bytes (packets_in / link_reads: packets per read).",
    ),
    (
        "frame_errors",
        "frame_errors",
        "Frames dropped on receive (CRC mismatch, bad COBS, truncated, oversized).",
    ),
    ("crc_errors", "crc_errors", "Frames dropped on receive because their CRC-8 failed."),
    (
        "framing_errors",
        "framing_errors",
        "Frames dropped on receive for bad COBS, magic, version, length or size.",
    ),
    ("crc_naks", "crc_naks", "NAK CRC_MISMATCH (seq 0) received: the board saw a bad frame."),
    ("retransmits", "retransmits", "Commands sent again after a CRC NAK."),
    ("naks", "naks", "Commands the board answered with NAK."),
    ("command_timeouts", "timeouts", "Commands the board did not answer in time."),
    ("board_reconnects", "reconnects", "Attempts to reopen the board's link after the first."),
)


class BridgeCollector(Collector):
    """Reads the bridge's live counters and gauges whenever Prometheus scrapes."""

    def __init__(self, bridge: AdapterHost) -> None:
        self._bridge = bridge

    def collect(self) -> Iterator[Metric]:
        """Yield one metric family per exported quantity (labels: `device`, ...)."""
        bridge = self._bridge
        info = InfoMetricFamily(PREFIX, "Bridge version.")
        info.add_metric([], {"version": __version__})
        yield info
        yield GaugeMetricFamily(
            f"{PREFIX}_uptime_seconds",
            "Seconds since the bridge started.",
            value=time.time() - bridge.started_at,
        )
        yield from self._broker_metrics()
        yield from self._board_metrics()

    def _broker_metrics(self) -> Iterator[Metric]:
        mqtt = self._bridge.mqtt
        yield GaugeMetricFamily(
            f"{PREFIX}_broker_connected",
            "1 while the MQTT broker link is up, else 0.",
            value=1.0 if mqtt.connected else 0.0,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_broker_reconnects",
            "Reconnect attempts to the MQTT broker.",
            value=mqtt.reconnects,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_mqtt_queue_depth",
            "Messages waiting in the outbox for the broker.",
            value=mqtt.queue_depth,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_mqtt_queue_bytes",
            "Bytes encoded for the broker and not yet on its socket: the QoS 0 fast path's "
            "buffer and paho's packet queue (docs/architecture.md 6.1).",
            value=mqtt.queue_bytes,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_mqtt_lost_bytes",
            "QoS 0 bytes dropped because the broker link broke before they were written "
            "(docs/architecture.md 6.1).",
            value=mqtt.lost_bytes,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_mqtt_published",
            "Messages the broker accepted.",
            value=mqtt.published,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_mqtt_dropped",
            "Messages dropped because the outbox overflowed while the broker was away.",
            value=mqtt.dropped,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_mqtt_inbound_dropped",
            "Incoming MQTT messages dropped because the bridge's inbound queue was full "
            "(conduyt_bridge.northbound.mqtt.inbound).",
            value=mqtt.inbound.dropped,
        )

    def _board_metrics(self) -> Iterator[Metric]:
        bridge = self._bridge
        online = GaugeMetricFamily(
            f"{PREFIX}_board_online",
            "1 while the board is online (handshake done), else 0.",
            labels=["device"],
        )
        counters = {
            suffix: CounterMetricFamily(f"{PREFIX}_{suffix}", text, labels=["device"])
            for suffix, _, text in _SESSION_COUNTERS
        }
        events = CounterMetricFamily(
            f"{PREFIX}_events",
            "Events received from the board, by packet type.",
            labels=["device", "type"],
        )
        values = GaugeMetricFamily(
            f"{PREFIX}_datastream_value",
            "Last value of each numeric or boolean datastream (booleans as 0/1).",
            labels=["device", "datastream", "unit"],
        )
        for dev, session in bridge.sessions.items():
            online.add_metric([dev], 1.0 if session.online else 0.0)
            for suffix, attribute, _ in _SESSION_COUNTERS:
                counters[suffix].add_metric([dev], getattr(session.stats, attribute))
            board = bridge.boards.get(dev)
            if board is None:
                continue
            for type_name, count in sorted(board.event_counts.items()):
                events.add_metric([dev, type_name], count)
            for slug, value in board.values.items():
                # Strings and bytes have no numeric value; NaN/inf are left out rather than
                # exported as a sample no alert rule can compare against.
                if isinstance(value, bool | int | float) and math.isfinite(float(value)):
                    ds = board.ds_by_slug.get(slug)
                    unit = ds.unit if ds is not None else ""
                    values.add_metric([dev, slug, unit], float(value))
        yield online
        yield from counters.values()
        yield events
        yield values


class BridgeMetrics:
    """The Prometheus registry of one Bridge: live counters plus the latency histogram."""

    def __init__(self, bridge: AdapterHost) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(BridgeCollector(bridge))
        self.latency = Histogram(
            f"{PREFIX}_command_latency_seconds",
            "Time from sending a command to its reply (ACK or response), seconds.",
            ["device"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        for dev, session in bridge.sessions.items():
            # Create the child now so that the series exist (at zero) before any command.
            session.stats.latency_observers.append(self.latency.labels(device=dev).observe)
        bridge.on_board_added(self._board_added)
        bridge.on_board_removed(self._board_removed)
        self._host = bridge

    async def _board_added(self, board: Board) -> None:
        """A board added at run time gets its latency series (`docs/architecture.md` §11)."""
        session = self._host.sessions[board.dev]
        session.stats.latency_observers.append(self.latency.labels(device=board.dev).observe)

    async def _board_removed(self, board: Board, successor: str | None) -> None:
        """A removed board's latency series goes (a restarted one starts again at 0)."""
        with contextlib.suppress(KeyError):
            self.latency.remove(board.dev)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition for an HTTP `Accept` header: `(body, content type)`.

        Prometheus text format by default; OpenMetrics when the scraper asks for it.
        """
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
