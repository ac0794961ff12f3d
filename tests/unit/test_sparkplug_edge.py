"""The edge node without a broker: what a new session drops, and refused boards
(`docs/sparkplug.md` §2, §5)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from support import sparkplug_decoder as spd

from conduyt_bridge.app.config import Settings
from conduyt_bridge.northbound.sparkplug.edge import EdgeConfig, EdgeNode


class FakeHost:
    """Just enough of `AdapterHost` for an `EdgeNode` that is not installed."""

    def __init__(self, boards: dict[str, Any], runs: set[str]) -> None:
        self.boards = boards
        self.sessions: dict[str, Any] = {}
        self._runs = runs

    def runs(self, dev: str) -> bool:
        return dev in self._runs


def edge(host: FakeHost, primary: str = "") -> EdgeNode:
    config = EdgeConfig("g", "e", primary, "conduyt", Settings().mqtt)
    return EdgeNode(host, config)  # type: ignore[arg-type]


async def test_a_new_session_drops_what_the_last_one_left_queued() -> None:
    node = edge(FakeHost({}, set()), primary="scada")
    node.host_online = True
    node.conn.publish("spBv1.0/g/NDATA/e", b"old seq", coalesce=False)  # link down: queued
    assert node.conn.queue_depth == 1
    await node.on_connect()
    assert node.conn.queue_depth == 0
    # The primary host's state is forgotten until its STATE arrives again.
    assert node.host_online is None and not node.may_birth()


async def test_a_refused_board_takes_no_dcmd_and_gets_no_dbirth() -> None:
    submitted: list[Any] = []
    board = SimpleNamespace(dev="th", submit=submitted.append, ds_by_slug={})
    node = edge(FakeHost({"th": board}, runs=set()))
    cmd = spd.encode_command([{"name": "setpoint_celsius", "float_value": 1.0}])
    node.on_dcmd("spBv1.0/g/DCMD/e/th", "th", cmd, retained=False)
    assert submitted == [] and node.ignored_total == 1
    node.device_birth(board)  # type: ignore[arg-type]
    assert node.devices_born == set() and node.conn.queue_depth == 0
