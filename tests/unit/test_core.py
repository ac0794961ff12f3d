"""The board core without any northbound adapter (`conduyt_bridge/core/`): the event bus,
and a `Board` driving an in-process simulated thermostat through a real `DeviceSession`
(`sim://`, a socket pair: no broker, no pty). Adapters see only these events and
operations, so what is asserted here is what every northbound format gets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.harness import wait_until

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.events import (
    BoardEvent,
    BoardOffline,
    BoardOnline,
    DatastreamUpdated,
    EventBus,
    PacketReceived,
    PinValue,
)
from conduyt_bridge.core.pins import TaskSet
from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.device.transports import SimTransport
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytDisconnectedError,
    ConduytError,
    ConduytForbiddenError,
    ConduytInternalError,
    ErrorName,
)
from conduyt_bridge.protocol.constants import PinMode
from conduyt_bridge.simulator.profiles import get_profile


@dataclass
class Config:
    """A `BoardConfig` (the daemon passes its pydantic `DeviceConfig`)."""

    device_id: str = "th"
    port: str = "sim://thermostat"
    read_only: bool = False
    allow_raw: bool = True
    raw_mirror: bool = False
    allow_ota: bool = False
    string_encoding: str = "u16_prefix"
    pins: Sequence[Any] = ()
    datastreams: Mapping[str, Any] = field(default_factory=dict)
    command_timeout_ms: int = 500
    hello_timeout_ms: int = 300
    keepalive_s: float = 0.0
    keepalive_misses: int = 3
    read_coalesce_ms: float = 1.0
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 0.5


# ---- the bus -----------------------------------------------------------------------------


def online(dev: str = "x") -> BoardOnline:
    return BoardOnline(dev, get_profile("thermostat").hello, False)


def test_emit_isolates_a_failing_listener_and_filters_by_kind() -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(event: BoardEvent) -> None:
        raise RuntimeError("adapter bug")

    bus.subscribe(broken)
    bus.subscribe(lambda e: seen.append(f"all:{type(e).__name__}"))
    bus.subscribe(lambda e: seen.append(f"online:{e.dev}"), kinds=(BoardOnline,))
    bus.subscribe(lambda e: seen.append("first"), first=True)
    bus.emit(BoardOffline("x", "lost"))
    bus.emit(online("y"))
    assert seen == ["first", "all:BoardOffline", "first", "all:BoardOnline", "online:y"]


async def test_deliver_awaits_async_listeners_in_order_and_propagates() -> None:
    bus = EventBus()
    order: list[str] = []

    async def slow(event: BoardEvent) -> None:
        await asyncio.sleep(0.01)
        order.append("slow")

    bus.subscribe(slow)
    unsubscribe = bus.subscribe(lambda e: order.append("sync"))
    await bus.deliver(online())
    assert order == ["slow", "sync"]
    unsubscribe()

    async def failing(event: BoardEvent) -> None:
        raise ValueError("hook bug")

    bus.subscribe(failing)
    with pytest.raises(ValueError, match="hook bug"):
        await bus.deliver(online())


# ---- a board -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_board(config: Config | None = None) -> AsyncIterator[tuple[Board, list[Any]]]:
    config = config or Config()
    bus = EventBus()
    events: list[Any] = []
    bus.subscribe(events.append)
    tasks = TaskSet()
    board = Board(config, bus, tasks)
    transport = SimTransport("thermostat", push_interval_s=0.05, device_id=config.device_id)
    session = DeviceSession(
        config, transport, board, handshake_hooks=[board.pins.on_handshake, board.replay_retained]
    )
    board.session = session
    runs = [asyncio.create_task(session.run()), asyncio.create_task(board.run_commands())]
    try:
        await wait_until(lambda: board.online, 5)
        yield board, events
    finally:
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)


async def test_board_emits_online_then_typed_datastream_events() -> None:
    async with running_board() as (board, events):
        await wait_until(lambda: any(isinstance(e, DatastreamUpdated) for e in events), 3)
        # DS_EVENTs before the HELLO_RESP are offered raw only (no datastream to name).
        came_online = next(i for i, e in enumerate(events) if isinstance(e, BoardOnline))
        assert events[came_online].dev == "th"
        update = next(e for e in events if isinstance(e, DatastreamUpdated))
        assert events.index(update) > came_online
        assert update.slug in {"temperature_celsius", "humidity_percent"}
        assert isinstance(update.value, float)
        assert board.values[update.slug] == update.value
        # Every DS_EVENT is also offered raw, after its typed event.
        typed_at = events.index(update)
        assert isinstance(events[typed_at + 1], PacketReceived)


async def test_write_datastream_is_checked_then_recorded_for_replay() -> None:
    async with running_board() as (board, events):
        assert await board.write_datastream("setpoint_celsius", 22.3) == pytest.approx(22.3)
        assert board.replay == {"setpoint_celsius": board.values["setpoint_celsius"]}
        assert any(
            isinstance(e, DatastreamUpdated) and e.slug == "setpoint_celsius" for e in events
        )
        session = board.require_session()
        sent = session.stats.packets_out
        with pytest.raises(ConduytCapabilityError) as read_only:
            await board.write_datastream("temperature_celsius", 1.0)
        assert (read_only.value.name, str(read_only.value)) == (
            ErrorName.DATASTREAM_READONLY,
            "datastream 'temperature' is read-only",
        )
        with pytest.raises(ConduytCapabilityError) as unknown:
            await board.write_datastream("nope", 1)
        assert unknown.value.name == ErrorName.UNKNOWN_DATASTREAM
        assert str(unknown.value).startswith("datastream 'nope' does not exist on board 'th'")
        with pytest.raises(ConduytCapabilityError) as huge:
            await board.write_datastream("setpoint_celsius", 1e12)
        assert huge.value.name == ErrorName.OUT_OF_RANGE
        assert session.stats.packets_out == sent  # refusals send nothing


async def test_pin_operations_validate_before_sending() -> None:
    async with running_board() as (board, events):
        session = board.require_session()
        sent = session.stats.packets_out
        with pytest.raises(ConduytCapabilityError) as no_pwm:
            await board.pins.set_mode(3, PinMode.PWM)
        assert no_pwm.value.name == ErrorName.PIN_MODE_UNSUPPORTED
        with pytest.raises(ConduytCapabilityError) as no_pin:
            await board.pins.write(42, 1)
        assert no_pin.value.name == ErrorName.INVALID_PIN
        assert session.stats.packets_out == sent
        await board.pins.set_mode(1, PinMode.PWM)
        assert await board.pins.write(1, 128) == (128, PinMode.PWM)
        assert board.pins.modes == {1: PinMode.PWM}
        value = await board.pins.read(4)
        assert any(isinstance(e, PinValue) and e.pin == 4 and e.value == value for e in events)


@dataclass
class Job:
    """A job as an adapter would hand it to `Board.submit`."""

    run_result: dict[str, Any] | Exception
    retained: bool = False
    label: str = "test job"
    outcome: list[Any] = field(default_factory=list)

    async def run(self, board: Board) -> dict[str, Any]:
        if isinstance(self.run_result, Exception):
            raise self.run_result
        return self.run_result

    def succeeded(self, board: Board, result: dict[str, Any]) -> None:
        self.outcome.append(result)

    def failed(self, board: Board, error: ConduytError) -> None:
        self.outcome.append(error)


async def test_worker_guards_and_reports_every_outcome() -> None:
    async with running_board() as (board, _):
        ok = Job({"done": True})
        retained = Job({"done": True}, retained=True)
        bug = Job(KeyError("oops"))
        for job in (ok, retained, bug):
            await board.execute(job)
        assert ok.outcome == [{"done": True}]
        assert isinstance(retained.outcome[0], ConduytForbiddenError)
        assert retained.outcome[0].name == ErrorName.RETAINED_COMMAND
        assert isinstance(bug.outcome[0], ConduytInternalError)
        assert str(bug.outcome[0]) == "internal error: 'oops'"
    async with running_board(Config(read_only=True)) as (board, _):
        job = Job({"done": True})
        await board.execute(job)
        assert isinstance(job.outcome[0], ConduytForbiddenError)
        assert str(job.outcome[0]) == "board 'th' is configured read_only: commands are refused"


async def test_offline_board_refuses_with_disconnected() -> None:
    board = Board(Config(), EventBus(), TaskSet())
    with pytest.raises(ConduytDisconnectedError, match="has not completed a handshake yet"):
        await board.write_datastream("setpoint_celsius", 20.0)
    assert board.state == "offline" and board.max_payload is None
