"""The Homie adapter's lifecycle without a broker (`docs/homie.md` §2, §5): a fake Homie
link records what is published, the boards are the simulator's profiles."""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace
from typing import Any

from test_homie_model import board_of

from conduyt_bridge.app.config import Settings
from conduyt_bridge.core.board import Board
from conduyt_bridge.core.events import BoardOffline, BoardOnline, CommandFailed, EventBus
from conduyt_bridge.errors import ErrorName
from conduyt_bridge.northbound.homie.adapter import HomieAdapter, HomieOptions
from conduyt_bridge.northbound.homie.commands import not_settable
from conduyt_bridge.northbound.homie.model import Binding, PropertyModel
from conduyt_bridge.northbound.homie.publisher import DevicePublisher
from conduyt_bridge.northbound.homie.values import format_value


class FakeLink:
    """A connected Homie link whose outbox drains only when `drained` is set."""

    def __init__(self) -> None:
        self.connected = True
        self.sent: list[tuple[str, bytes]] = []
        self.drained = asyncio.Event()
        self.fail_on: str | None = None

    @property
    def queue_depth(self) -> int:
        return 0 if self.drained.is_set() else 1

    def publish(self, topic: str, payload: bytes | str, **_: Any) -> None:
        if self.fail_on is not None and topic.endswith(self.fail_on):
            raise RuntimeError("broken link")
        self.sent.append((topic, payload if isinstance(payload, bytes) else payload.encode()))

    def states(self, device: str) -> list[bytes]:
        return [p for t, p in self.sent if t == f"homie/5/{device}/$state"]


class FakeHost:
    def __init__(self, boards: dict[str, Board]) -> None:
        self.boards = boards
        self.bus = EventBus()

        self.refused: dict[str, str] = {}

    def runs(self, dev: str) -> bool:
        return dev not in self.refused


def adapter_for(board: Board) -> tuple[HomieAdapter, FakeLink]:
    options = HomieOptions(mqtt=Settings().mqtt, enabled=True, device_id="root")
    adapter = HomieAdapter(FakeHost({board.dev: board}), options)  # type: ignore[arg-type]
    link = FakeLink()
    adapter.conn = link  # type: ignore[assignment]
    adapter.out = DevicePublisher(link, adapter.topics)  # type: ignore[arg-type]
    adapter.active = [board.dev]
    return adapter, link


def online(board: Board, value: bool) -> None:
    board.session = SimpleNamespace(online=value, hello=board.hello)  # type: ignore[assignment]


async def test_a_board_going_offline_during_an_announcement_ends_lost() -> None:
    board = board_of("thermostat")
    online(board, True)
    adapter, link = adapter_for(board)
    announcing = asyncio.create_task(adapter.announce_locked(board.dev))
    await asyncio.sleep(0.05)  # in `settle`: `init` and the description are out
    online(board, False)
    adapter.on_event(BoardOffline(board.dev, "gone"))
    link.drained.set()
    await announcing
    assert link.states("root-thermostat")[-1] == b"lost"


async def test_the_handshake_does_not_wait_for_homie_and_never_sees_its_errors() -> None:
    board = board_of("thermostat")
    online(board, True)
    adapter, link = adapter_for(board)
    event = BoardOnline(board.dev, board.hello, False)  # type: ignore[arg-type]
    result: Any = adapter.on_online(event)
    if asyncio.iscoroutine(result):  # the old listener: the session awaited it
        await asyncio.wait_for(result, 0.2)
    assert adapter.tasks  # the announcement runs in Homie's own task
    link.drained.set()
    await asyncio.wait(set(adapter.tasks), timeout=2)
    device = "root-thermostat"
    topics = [t.removeprefix(f"homie/5/{device}/") for t, _ in link.sent]
    assert topics[0] == "$state" and topics[1] == "$description" and topics[-1] == "$state"
    assert link.states(device) == [b"init", b"ready"]
    # A broken link inside the announcement stays in the adapter.
    link.fail_on = "$description"
    result = adapter.on_online(event)
    assert result is None
    await asyncio.wait(set(adapter.tasks), timeout=2)
    assert not adapter.tasks


async def test_a_set_to_a_read_only_property_never_reaches_the_board() -> None:
    board = board_of("thermostat")
    online(board, True)
    adapter, _ = adapter_for(board)
    failed: list[CommandFailed] = []
    board.bus.subscribe(failed.append, kinds=(CommandFailed,))
    adapter.models["root-thermostat"] = adapter.child_model(board.dev)
    message = SimpleNamespace(
        topic=SimpleNamespace(value="homie/5/root-thermostat/datastreams/temperature/set"),
        payload=b"1",
        retain=False,
    )
    await adapter.on_message(message)  # type: ignore[arg-type]
    assert board._queue.empty()
    assert [f.error.name for f in failed] == [ErrorName.DATASTREAM_READONLY]
    assert failed[0].label == "homie/5/root-thermostat/datastreams/temperature/set"
    assert "datastreams/temperature" in str(failed[0].error)
    pin = PropertyModel("pin-2", "Pin 2", "boolean", Binding("pin", "2"))
    error = not_settable("pins", pin)
    assert error is not None and error.name == ErrorName.CAPABILITY
    assert "pins/pin-2" in str(error)


def test_json_values_have_no_nan() -> None:
    doc = {"temperature": math.nan, "list": [math.inf, 1.5], "ok": 1}
    assert format_value("json", doc) == b'{"temperature":null,"list":[null,1.5],"ok":1}'


async def test_refused_boards_have_no_child_device_and_lost_ones_are_removed() -> None:
    """`docs/homie.md` §6."""
    board = board_of("thermostat")
    online(board, True)
    adapter, link = adapter_for(board)
    adapter.active = []
    adapter.host.refused["thermostat"] = "owned by gw-x"  # type: ignore[attr-defined]
    link.drained.set()
    await adapter.sync_children()
    assert not link.sent and adapter.root_model().children == ()
    adapter.host.refused.clear()  # type: ignore[attr-defined]
    await adapter.sync_children()  # taken over: the child, then the root
    child = "homie/5/root-thermostat/"
    assert link.states("root-thermostat") == [b"init", b"ready"]
    assert adapter.root_model().children == ("root-thermostat",)
    mark = len(link.sent)
    adapter.host.refused["thermostat"] = "owned by gw-x"  # type: ignore[attr-defined]
    await adapter.sync_children()  # lost: removed, `$state` first
    gone = [(t, p) for t, p in link.sent[mark:] if t.startswith(child)]
    assert gone[0] == (child + "$state", b"") and gone[1] == (child + "$description", b"")
    assert all(p == b"" for _, p in gone) and len(gone) > 2
    message = SimpleNamespace(
        topic=SimpleNamespace(value=child + "datastreams/setpoint/set"), payload=b"1", retain=False
    )
    await adapter.on_message(message)  # type: ignore[arg-type]
    assert board._queue.empty()
