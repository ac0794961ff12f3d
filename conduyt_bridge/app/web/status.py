"""The status document behind `/api/status` (`docs/architecture.md` §10): the bridge's
health counters plus, per board, its identity, datastreams with their live values and its
recent error reports. Read from the live objects on every request: nothing is copied.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from conduyt_bridge.northbound.conduyt.payloads import json_value, utc_timestamp
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics, DeviceTopics
from conduyt_bridge.northbound.host import AdapterHost

if TYPE_CHECKING:
    from conduyt_bridge.core.board import Board


def board_status(
    board: Board, topics: DeviceTopics, counters: dict[str, Any] | None
) -> dict[str, Any]:
    """One board's entry of the status document.

    Args:
        board: the board.
        topics: its topics in the Conduyt layout.
        counters: its entry of `Bridge.health()["boards"]` (packets, errors, latency), if any.
    """
    hello = board.hello
    datastreams = []
    for slug, ds in board.ds_by_slug.items():
        known = ds.known_type
        value = board.values.get(slug)
        datastreams.append(
            {
                "slug": slug,
                "name": ds.name,
                "type": known.name.lower() if known else int(ds.type),
                "unit": ds.unit,
                "writable": ds.writable,
                "value": json_value(value) if value is not None else None,
                "has_value": value is not None,
                "updated": iso_time(board.value_times.get(slug)),
                "topic": topics.ds(slug),
            }
        )
    return {
        "id": board.dev,
        "port": board.config.port,
        "state": board.state,
        "read_only": board.config.read_only,
        "firmware": (
            {"name": hello.firmware_name, "version": hello.version_string} if hello else None
        ),
        "mcu_id": hello.mcu_id_hex if hello else None,
        "pin_count": hello.pin_count if hello else 0,
        "modules": [m.name for m in hello.modules] if hello else [],
        "datastreams": datastreams,
        "counters": counters or {},
        # Newest first: that is what someone looking at a problem wants to see.
        "errors": list(reversed(board.errors)),
    }


def status_document(bridge: AdapterHost, topics: BridgeTopics) -> dict[str, Any]:
    """The document behind `/api/status`.

    `Bridge.health()` (uptime, broker link, per-board counters) plus, per board, its
    identity, datastreams with their live values and its recent error reports.
    """
    health = bridge.health()
    counters: dict[str, Any] = health.pop("boards")
    boards = [
        board_status(board, topics.device(dev), counters.get(dev))
        for dev, board in bridge.boards.items()
    ]
    offline = [b["id"] for b in boards if b["state"] != "online"]
    return {
        **health,
        "base_topic": topics.base,
        "ready": not offline,
        "offline": offline,
        "boards": boards,
        "generated_at": time.time(),
    }


def iso_time(epoch_s: float | None) -> str | None:
    """RFC 3339 UTC text of a wall-clock time (s since the epoch), None for None."""
    if epoch_s is None:
        return None
    return utc_timestamp(datetime.fromtimestamp(epoch_s, UTC))


__all__ = ["board_status", "iso_time", "status_document"]
