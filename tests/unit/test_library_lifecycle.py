"""The library's connection lifecycle under concurrency and in unusual orders (review
findings 1-5, 10-14, 16): `connect()` racing `disconnect()`, a cancelled `connect()`,
`auto_reconnect` switched off later, coroutine callbacks, abandoned event iterators,
bounded waits, and the checks and messages of a few commands. Against simulated boards
served in-process (`sim://`)."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest
import structlog

from conduyt_bridge import (
    ConduytCapabilityError,
    ConduytDevice,
    ConduytDisconnectedError,
    ConduytNAKError,
    ConduytPayloadError,
    ConnectReason,
    DatastreamEvent,
    DisconnectReason,
    LogEvent,
    LogSource,
)
from conduyt_bridge.device.board_context import BoardContext
from conduyt_bridge.device.session import DeviceSession, SessionState
from conduyt_bridge.protocol.constants import PacketType, PinMode
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.transports import SimTransport


@pytest.fixture
def plain_logging() -> Any:
    """structlog as a script finds it (not configured), whatever earlier tests in the
    session configured: the library then logs through stdlib `logging`, which `caplog`
    reads."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)


async def wait_until(condition: Any, timeout_s: float = 3.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def hang_up(device: ConduytDevice) -> None:
    """The simulated board closes its end of the stream (the host reads EOF)."""
    session = device._context.session
    assert session is not None and session._link is not None
    on_close = session._link.on_close
    assert on_close is not None
    on_close.__self__.disconnect()  # type: ignore[attr-defined]


def recorder(log: list[str]) -> dict[str, Any]:
    return {
        "on_connected": lambda r: log.append(f"conn:{r}"),
        "on_disconnected": lambda r: log.append(f"disc:{r}"),
    }


# ------------------------------------------------------------------ finding 1


async def test_connect_during_disconnect_waits_for_it_and_owns_its_session() -> None:
    log: list[str] = []
    device = ConduytDevice("sim://thermostat", keepalive_s=0, **recorder(log))
    await device.connect()
    stopping = asyncio.create_task(device.disconnect())
    await asyncio.sleep(0)
    assert not device.connected  # from the start of disconnect()
    reconnecting = asyncio.create_task(device.connect())
    await stopping
    hello = await reconnecting
    await asyncio.sleep(0.05)
    assert log == ["conn:request", "disc:request", "conn:request"]
    session = device._context.session
    assert session is not None and session.online and device.connected
    assert device.capabilities is hello
    await device.ping()
    await device.disconnect()
    assert log[-1] == "disc:request" and len(log) == 4
    assert session.state is SessionState.OFFLINE and device._runner is None


async def test_concurrent_disconnects_report_once() -> None:
    log: list[str] = []
    device = ConduytDevice("sim://thermostat", keepalive_s=0, **recorder(log))
    await device.connect()
    session = device._context.session
    assert session is not None
    await asyncio.gather(device.disconnect(), device.disconnect())
    assert log == ["conn:request", "disc:request"]
    assert session.state is SessionState.OFFLINE


# ------------------------------------------------------------------ finding 2


async def test_connect_cancelled_as_the_handshake_succeeds_tears_down() -> None:
    log: list[str] = []
    sessions: list[DeviceSession] = []
    task: asyncio.Task[Any]

    def on_connected(reason: ConnectReason) -> None:
        log.append(f"conn:{reason}")
        assert device._context.session is not None
        sessions.append(device._context.session)
        task.cancel()  # an outer asyncio.timeout expiring right now

    device = ConduytDevice(
        "sim://thermostat",
        keepalive_s=0,
        on_connected=on_connected,
        on_disconnected=lambda r: log.append(f"disc:{r}"),
    )
    task = asyncio.create_task(device.connect())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["conn:request", "disc:request"]
    assert not device.connected and device.capabilities is None
    assert sessions[0].state is SessionState.OFFLINE
    with pytest.raises(ConduytDisconnectedError):
        await device.ping()
    await device.connect()  # usable again
    assert device.connected
    await device.disconnect()


# ------------------------------------------------------------------ finding 3


async def test_auto_reconnect_switched_off_after_a_reconnect_stops_reconnecting() -> None:
    log: list[str] = []
    device = ConduytDevice(
        "sim://thermostat",
        keepalive_s=0,
        auto_reconnect=True,
        reconnect_min_s=0.05,
        **recorder(log),
    )
    await device.connect()
    hang_up(device)
    await wait_until(lambda: "conn:auto_reconnect" in log)
    events = device.events()
    device.auto_reconnect = False
    hang_up(device)
    await wait_until(lambda: log.count("disc:shutdown") == 2)
    await asyncio.sleep(0.3)  # several backoffs: no reconnect may follow
    assert log == ["conn:request", "disc:shutdown", "conn:auto_reconnect", "disc:shutdown"]
    assert not device.connected
    assert [e async for e in events if not isinstance(e, DatastreamEvent)] == []  # ended
    await device.disconnect()


# ------------------------------------------------------------------ finding 4


async def test_disconnect_waits_for_coroutine_callbacks_and_cancelled_ones_are_logged(
    caplog: pytest.LogCaptureFixture, plain_logging: None
) -> None:
    log: list[str] = []

    async def on_disconnected(reason: DisconnectReason) -> None:
        log.append("disc-start")
        await asyncio.sleep(0.05)
        log.append("disc-end")

    device = ConduytDevice("sim://thermostat", keepalive_s=0, on_disconnected=on_disconnected)
    await device.connect()
    await device.disconnect()
    assert log == ["disc-start", "disc-end"]  # done when disconnect() returns
    assert len(device._callbacks) == 0

    async def forever(reason: ConnectReason) -> None:
        await asyncio.sleep(3600)

    device.on_connected = forever
    await device.connect()
    (task,) = device._callbacks.tasks
    task.cancel()
    with caplog.at_level(logging.WARNING, logger="conduyt_bridge.device"):
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert "connection callback was cancelled" in caplog.text
    await device.disconnect()


# ------------------------------------------------------------------ finding 5


async def test_an_abandoned_event_iterator_is_released() -> None:
    transport = SimTransport("thermostat", push_interval_s=0.02)
    device = ConduytDevice(transport, keepalive_s=0)
    await device.connect()

    async def next_temperature() -> object:
        async for event in device.events():
            if isinstance(event, DatastreamEvent) and event.name == "temperature":
                return event.value
        return None

    for _ in range(3):
        assert await next_temperature() is not None
    gc.collect()
    assert len(device._hub._streams) == 0
    async with device.events() as events:
        assert isinstance(await events.get(2), DatastreamEvent)
        assert len(device._hub._streams) == 1
    assert len(device._hub._streams) == 0
    stream = device.events()
    await stream.aclose()
    assert [e async for e in stream] == []
    await device.disconnect()


# ------------------------------------------------------------------ finding 11


async def test_connect_during_an_endless_outage_gives_up_after_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(DeviceSession, "handshake_budget_s", property(lambda self: 0.2))
    transport = SimTransport("thermostat")
    device = ConduytDevice(
        transport,
        timeout_ms=100,
        hello_timeout_ms=50,
        keepalive_s=0.05,
        keepalive_misses=1,
        auto_reconnect=True,
        reconnect_min_s=0.05,
        reconnect_max_s=0.1,
    )
    await device.connect()
    board = transport.board
    assert isinstance(board, SimulatedBoard)
    board.faults.silent = True
    await wait_until(lambda: not device.connected)
    async with asyncio.timeout(3):  # the old code waited forever
        with pytest.raises(ConduytDisconnectedError, match=r"not reconnected within 0.3 s"):
            await device.connect()
    await device.disconnect()


# ------------------------------------------------------------------ finding 12


async def test_get_on_an_ended_stream_raises_disconnected() -> None:
    device = ConduytDevice("sim://thermostat", keepalive_s=0)
    await device.connect()
    events = device.events()
    await device.disconnect()
    with pytest.raises(ConduytDisconnectedError, match="event stream ended"):
        await events.get(1)
    assert [e async for e in events] == []  # the iterator protocol still just ends


# ------------------------------------------------------------------ finding 14


async def test_commands_are_refused_while_a_reconnect_handshakes() -> None:
    device = ConduytDevice("sim://thermostat", keepalive_s=0)
    await device.connect()
    session = device._context.session
    assert session is not None
    session.state = SessionState.CONNECTING  # as during a reconnect's handshake
    try:
        with pytest.raises(ConduytDisconnectedError, match="offline"):
            await device.pin(1).mode("output")
        assert device._context.pin_modes == {}
    finally:
        session.state = SessionState.ONLINE
    await device.disconnect()


class _FakeSession:
    """Answers every replayed command, NAKs pin 2's."""

    board_changed = False

    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes]] = []

    async def request(self, type_: int, payload: bytes = b"") -> None:
        self.sent.append((type_, payload))
        if payload[0] == 2:
            raise ConduytNAKError(0x05, "PIN_MODE_UNSUPPORTED", "PIN_MODE")


async def test_replay_sends_each_item_and_reports_the_failures() -> None:
    from conduyt_bridge.device.connection_parts import replay_settings

    context = BoardContext("b")
    context.pin_modes.update({2: PinMode.OUTPUT, 1: PinMode.OUTPUT})
    session = _FakeSession()
    reports: list[str] = []
    await replay_settings(context, session, reports.append)  # type: ignore[arg-type]
    assert [p[0] for _, p in session.sent] == [2, 1]  # the failure stopped nothing
    assert len(reports) == 1
    assert reports[0].startswith("could not set pin 2 mode output again after reconnecting")


async def test_a_failed_replay_is_an_event_of_the_library() -> None:
    device = ConduytDevice("sim://thermostat", keepalive_s=0)
    await device.connect()
    events = device.events()
    device._report("could not set pin 2 mode output again after reconnecting: NAK")
    event = await events.get(1)
    assert event == LogEvent(
        "could not set pin 2 mode output again after reconnecting: NAK", LogSource.LIBRARY
    )
    await device.disconnect()


# ------------------------------------------------------------------ finding 10


async def test_a_failing_callback_logs_its_traceback_once(
    caplog: pytest.LogCaptureFixture, plain_logging: None
) -> None:
    def broken(reason: ConnectReason) -> None:
        raise RuntimeError("broken callback")

    async def broken_async(reason: DisconnectReason) -> None:
        raise RuntimeError("broken async callback")

    device = ConduytDevice(
        "sim://thermostat", keepalive_s=0, on_connected=broken, on_disconnected=broken_async
    )
    with caplog.at_level(logging.ERROR, logger="conduyt_bridge.device"):
        await device.connect()
        await device.disconnect()
    assert caplog.text.count("Traceback (most recent call last)") == 2  # one per failure
    for record in caplog.records:
        assert "Traceback" not in record.getMessage()
        assert record.exc_info is not None


# ------------------------------------------------------------------ finding 16


async def test_checks_raise_what_the_docstrings_say() -> None:
    device = ConduytDevice("sim://thermostat", keepalive_s=0)
    await device.connect()
    board = device.transport.board  # type: ignore[attr-defined]
    before = len(board.received)
    for size in (-1, 2**32):
        with pytest.raises(ConduytPayloadError, match=r"OTA size must be an integer 0\.\.4294"):
            await device.ota_begin(size, bytes(32))
    with pytest.raises(ValueError, match="OTA offset"):  # a ConduytPayloadError is a ValueError
        await device.ota_chunk(-1, b"x")
    assert len(board.received) == before
    assert isinstance(await device.pin(4).read(PinMode.ANALOG), int)
    assert board.received[-1].type == PacketType.PIN_READ
    await device.disconnect()
    kitchen = ConduytDevice("sim://kitchen", keepalive_s=0)
    await kitchen.connect()
    message = r"^datastream 'light' \(UINT8, unit %\) takes an integer from 0 to 100, not 50\.7$"
    with pytest.raises(ConduytCapabilityError, match=message):
        await kitchen.datastream("light").write(50.7)
    await kitchen.disconnect()
