"""The bridge's health document (`docs/topics.md` §2): `{base}/bridge/{id}/health` on
MQTT and `/api/status` over HTTP."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from conduyt_bridge.app.config import Settings
from conduyt_bridge.core.board import Board
from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.northbound.conduyt.claims import ClaimKeeper
from conduyt_bridge.northbound.mqtt.connection import MqttConnection
from conduyt_bridge.version import __version__

__all__ = ["HealthSource", "health_document"]


class HealthSource(Protocol):
    """What the health document is made of (the `Bridge`)."""

    @property
    def bridge_id(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def mqtt(self) -> MqttConnection: ...
    @property
    def claims(self) -> ClaimKeeper: ...
    @property
    def boards(self) -> Mapping[str, Board]: ...
    @property
    def sessions(self) -> Mapping[str, DeviceSession]: ...


def health_document(bridge: HealthSource) -> dict[str, Any]:
    """The health document of `bridge`: a refused board's state is `refused`, with its
    `reason` (`docs/fleet.md` §2). Reads the boards live (one added at run time is in
    the next document)."""
    boards: dict[str, Any] = {}
    for dev, session in bridge.sessions.items():
        s = session.stats
        p50 = s.latency_percentile(0.5)
        p99 = s.latency_percentile(0.99)
        refusal = bridge.claims.refused.get(dev)
        boards[dev] = {
            "state": "refused" if refusal is not None else str(session.state),
            "packets_in": s.packets_in,
            "packets_out": s.packets_out,
            "reads_in": s.reads_in,
            "frame_errors": s.frame_errors,
            "crc_errors": s.crc_errors,
            "framing_errors": s.framing_errors,
            "text_lines": s.text_lines,
            "log_lines_dropped": bridge.boards[dev].text_limiter.dropped,
            "reboots_suspected": s.reboots_suspected,
            "crc_naks": s.crc_naks,
            "naks": s.naks,
            "timeouts": s.timeouts,
            "reconnects": s.reconnects,
            "latency_ms_p50": round(p50 * 1000, 2) if p50 is not None else None,
            "latency_ms_p99": round(p99 * 1000, 2) if p99 is not None else None,
            "last_error": session.last_error,
        }
        if refusal is not None:
            boards[dev]["reason"] = refusal
    return {
        "bridge_id": bridge.bridge_id,
        "version": __version__,
        "uptime_s": round(time.time() - bridge.started_at, 1),
        # Peers count this bridge dead when its health stops (`docs/fleet.md` §2).
        "health_interval_s": bridge.settings.bridge.health_interval_s,
        "broker": {
            "connected": bridge.mqtt.connected,
            "reconnects": bridge.mqtt.reconnects,
            "queue_depth": bridge.mqtt.queue_depth,
            "queue_bytes": bridge.mqtt.queue_bytes,
            "dropped": bridge.mqtt.dropped,
            "inbound_dropped": bridge.mqtt.inbound.dropped,
            "last_error": bridge.mqtt.last_error,
            "refused_subscriptions": sorted(bridge.mqtt.refused_subscriptions),
        },
        "boards": boards,
    }
