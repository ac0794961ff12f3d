"""`ConduytDevice`: the asyncio library API for one board (`docs/library.md` §1).

Source compatible with the documented surface of conduyt-py 1.0 (`connect`, `disconnect`,
`ping`, `reset`, `pin`, the OTA primitives, `connected`, `capabilities`), built on the
daemon's own `DeviceSession`: the same handshake (HELLO retried, then RESET and
STREAM_STOP, `docs/protocol.md` §3.5, Q6, Q16), sequence numbers, CRC-NAK resend,
keepalive and capped reconnect backoff (`docs/architecture.md` §4). On top: URLs,
datastreams, typed events, connection callbacks with reasons, automatic reconnection,
and every command checked against the board's HELLO_RESP before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

from conduyt_bridge.device.board_context import BoardContext
from conduyt_bridge.device.callbacks import CallbackRunner
from conduyt_bridge.device.capabilities import check_command
from conduyt_bridge.device.connection_parts import (
    Detached,
    connect_error,
    fail_first,
    not_a_transport,
    replay_settings,
    u32_field,
)
from conduyt_bridge.device.datastream import Datastream
from conduyt_bridge.device.event_stream import DEFAULT_EVENT_BUFFER, EventHub, EventStream
from conduyt_bridge.device.events import (
    DatastreamEvent,
    LogEvent,
    LogSource,
    event_from_packet,
    event_from_text,
)
from conduyt_bridge.device.library_log import library_logger
from conduyt_bridge.device.link_loss import LinkLoss
from conduyt_bridge.device.pin import Pin, PinRef
from conduyt_bridge.device.reasons import ConnectReason, DisconnectReason, disconnect_reason
from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.device.session_config import SessionOptions
from conduyt_bridge.device.session_stats import SessionStats
from conduyt_bridge.device.transports import Transport, transport_for_url
from conduyt_bridge.errors import ConduytDisconnectedError, ConduytError
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.framing import TextLine
from conduyt_bridge.protocol.hello import HelloResp
from conduyt_bridge.protocol.packet import Packet

LOGGER = "conduyt_bridge.device"
"""Name of the library's logger (`logging` unless the program configured structlog)."""

ConnectCallback = Callable[[ConnectReason], object]
"""`on_connected(reason)`; may be a coroutine function."""

DisconnectCallback = Callable[[DisconnectReason], object]
"""`on_disconnected(reason)`; may be a coroutine function."""


class ConduytDevice:
    """One board, driven with `await` (`docs/library.md` §1).

    `transport` is a transport object (`SerialTransport`, `TcpTransport`,
    `SimTransport`) or a port URL (`/dev/ttyUSB0`, `socket://`, `rfc2217://`, `tcp://`,
    `sim://thermostat`; `baudrate` in bit/s applies to serial URLs). `timeout_ms` bounds
    each command's wait for its reply. `hello_timeout_ms` bounds one HELLO of the
    handshake (six are tried, `docs/protocol.md` §3.5). After `keepalive_s` seconds
    without traffic a PING is sent (`keepalive_s` 0: never), and `keepalive_misses`
    unanswered in a row end the link. While the board streams, reading its link pauses
    `read_coalesce_ms` ms after each small read (0 to 250; 0 reads as soon as bytes
    arrive), so one read carries many frames; a reply is never held back
    (`docs/library.md` §1). With
    `auto_reconnect`, a lost link is reopened with a backoff from `reconnect_min_s`
    doubling to `reconnect_max_s` seconds, until `auto_reconnect` is set to False, and the
    pin modes and subscriptions set through the device are set again.

    `on_connected(reason)` and `on_disconnected(reason)` are called on the event loop
    with a `ConnectReason` / `DisconnectReason` (`docs/library.md` §5); a coroutine
    function is run as a task, which `disconnect()` waits for (at most 5 s); exceptions
    are logged, never raised.

    Raises ValueError for out-of-range settings (`timeout_ms` <= 0, ...) or an
    unsupported URL scheme, KeyError for an unknown `sim://` profile, TypeError for an
    object that is not a conduyt-bridge transport (a conduyt-py transport, say).
    """

    def __init__(
        self,
        transport: Transport | str,
        timeout_ms: int = 5000,
        *,
        auto_reconnect: bool = False,
        on_connected: ConnectCallback | None = None,
        on_disconnected: DisconnectCallback | None = None,
        hello_timeout_ms: int = 1000,
        keepalive_s: float = 5.0,
        keepalive_misses: int = 3,
        read_coalesce_ms: float = 1.0,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        baudrate: int = 115200,
        name: str | None = None,
    ) -> None:
        if isinstance(transport, str):
            transport = transport_for_url(transport, baudrate=baudrate)
        elif not callable(getattr(transport, "open", None)):
            raise TypeError(not_a_transport(transport))
        for label, value in (("timeout_ms", timeout_ms), ("hello_timeout_ms", hello_timeout_ms)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{label} must be an integer > 0 (ms), got {value!r}")
        self._transport = transport
        self._options = SessionOptions(
            device_id=name or transport.description,
            command_timeout_ms=timeout_ms,
            hello_timeout_ms=hello_timeout_ms,
            keepalive_s=keepalive_s,
            keepalive_misses=keepalive_misses,
            read_coalesce_ms=read_coalesce_ms,
            reconnect_min_s=reconnect_min_s,
            reconnect_max_s=reconnect_max_s,
        )
        self.auto_reconnect = auto_reconnect
        """Reopen a lost link by itself (may be changed at any time; read each time a
        link ends)."""
        self.on_connected: ConnectCallback | None = on_connected
        self.on_disconnected: DisconnectCallback | None = on_disconnected
        self._context = BoardContext(self._options.device_id)
        self._hub = EventHub()
        self._lock = asyncio.Lock()
        """Held by `connect()` until its first result and by `disconnect()`'s teardown:
        a connection is opened only once the previous one is closed."""
        self._runner: asyncio.Task[None] | None = None
        self._first: asyncio.Future[HelloResp] | None = None
        self._online = asyncio.Event()
        self._callbacks = CallbackRunner(self._options.device_id, LOGGER)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<ConduytDevice {self._transport.description} {state}>"

    # ---- state ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The board's name in logs and errors (the port description unless given)."""
        return self._options.device_id

    @property
    def transport(self) -> Transport:
        """The transport this device opens."""
        return self._transport

    @property
    def timeout_ms(self) -> int:
        """Each command's reply timeout, ms."""
        return self._options.command_timeout_ms

    @property
    def connected(self) -> bool:
        """True between a completed handshake and the loss of the link or the start of
        `disconnect()`."""
        session = self._context.session
        return session is not None and session.online

    @property
    def capabilities(self) -> HelloResp | None:
        """The board's HELLO_RESP (`docs/protocol.md` §6): firmware_name,
        firmware_version, mcu_id, ota_capable, pins, i2c_buses, spi_buses, uart_count,
        max_payload (bytes), modules, datastreams. Kept while a lost link is reopened;
        None before `connect()` and after `disconnect()`."""
        return self._context.hello

    @property
    def hello(self) -> HelloResp | None:
        """Same as `capabilities`."""
        return self._context.hello

    @property
    def stats(self) -> SessionStats | None:
        """Counters of the current connection (packets, NAKs, timeouts, latencies in s),
        None before `connect()`."""
        session = self._context.session
        return session.stats if session is not None else None

    # ---- connection ----------------------------------------------------------------------

    async def connect(self) -> HelloResp:
        """Open the port and perform the handshake: HELLO (up to six tries,
        `hello_timeout_ms` each), then RESET and STREAM_STOP to clear what a previous host
        left running (Q6, Q16). Returns the HELLO_RESP; calls `on_connected(REQUEST)`.

        Already connected: returns the current HELLO_RESP. While an automatic reconnect
        is under way: waits for it, at most the handshake budget plus `reconnect_max_s`.
        While `disconnect()` runs: waits for it, then connects. Cancelled: tears down as
        `disconnect()` does (`docs/library.md` §1).

        Raises ConduytDisconnectedError when the port cannot be opened (the OS error is
        its `__cause__`), the board completes no handshake, an automatic reconnect did
        not succeed in time, or `disconnect()` was called meanwhile.
        """
        while True:
            async with self._lock:
                runner = self._runner
                if runner is None or runner.done():
                    return await self._open()
                if self.connected:
                    return self._context.require_hello()
            await self._wait_for_reconnect(runner)

    async def disconnect(self) -> None:
        """Close the link and stop reconnecting; `connected` is False and `capabilities`
        None from the call on, event iterators end. Calls `on_disconnected(REQUEST)` once
        if the board was connected, then waits (at most 5 s) for the coroutine callbacks
        still running. Never raises for a link that is already gone."""
        detached = self._detach()  # before any await: a concurrent call sees it done
        async with self._lock:
            await self._teardown(detached)
        await self._callbacks.drain()

    async def close(self) -> None:
        """Same as `disconnect()`: the device can `connect()` again (unlike
        `ConduytDeviceSync.close()`, which is final)."""
        await self.disconnect()

    async def __aenter__(self) -> ConduytDevice:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    # ---- commands ------------------------------------------------------------------------

    async def ping(self) -> None:
        """PING the board and wait for its PONG.

        Raises ConduytDisconnectedError, ConduytTimeoutError.
        """
        await self._context.request(PacketType.PING)

    async def reset(self) -> None:
        """RESET the board's host-visible state (`docs/protocol.md` §4.2): its pin
        subscriptions stop and their slots are freed (Q6); streams keep running (Q16).

        Raises ConduytDisconnectedError, ConduytTimeoutError, ConduytNAKError.
        """
        await self._context.request(PacketType.RESET)
        self._context.subscriptions.clear()
        self._context.slots_used = 0

    def pin(self, num: PinRef) -> Pin:
        """Pin `num`: its HELLO_RESP index (`13`) or an analog name (`"A0"`, the first pin
        with ANALOG_IN). Nothing is checked or sent until a method of the pin is called."""
        return Pin(self._context, num)

    def datastream(self, name: str) -> Datastream:
        """The datastream called `name` (checked when used: `write`, `descriptor`)."""
        return Datastream(self._context, name)

    def events(self, maxsize: int = DEFAULT_EVENT_BUFFER) -> EventStream:
        """An async iterator over the board's events from now on (`DatastreamEvent`,
        `PinEvent`, `ModuleEvent`, `LogEvent`), buffering at most `maxsize`; the oldest
        are dropped and counted (`dropped`) when the consumer falls behind.

        Raises ValueError for `maxsize` < 1.
        """
        return self._hub.open(maxsize)

    async def ota_begin(self, total_bytes: int, sha256: bytes) -> None:
        """Start an OTA update of `total_bytes` bytes with its 32-byte SHA-256
        (`docs/protocol.md` §4.2, Q15).

        Raises ConduytCapabilityError (a firmware built without OTA), ConduytPayloadError
        `BAD_LENGTH` (sha256 not 32 bytes) or `OUT_OF_RANGE` (a size outside
        0..2^32-1 bytes), before anything is sent; then ConduytNAKError,
        ConduytTimeoutError, ConduytDisconnectedError.
        """
        await self._ota(PacketType.OTA_BEGIN, u32_field("OTA size", total_bytes) + sha256)

    async def ota_chunk(self, offset: int, data: bytes) -> None:
        """Send image bytes `data` at byte `offset` (chunks in order; keep data <=
        max_payload - 8 on serial links, Q15). Raises as `ota_begin` (`OUT_OF_RANGE`
        for an offset outside 0..2^32-1), and ConduytCapabilityError `PAYLOAD_TOO_LARGE`
        for a chunk over the board's limit."""
        await self._ota(PacketType.OTA_CHUNK, u32_field("OTA offset", offset) + data)

    async def ota_finalize(self) -> None:
        """Finish the update; the board then reboots into the new image. Raises as
        `ota_begin`."""
        await self._ota(PacketType.OTA_FINALIZE, b"")

    async def _ota(self, type_: PacketType, payload: bytes) -> None:
        hello = self._context.require_hello()
        limit = self._context.max_command_payload
        check_command(hello, type_, payload, max_command_payload=limit, allow_ota=True)
        await self._context.request(type_, payload)

    # ---- internals -----------------------------------------------------------------------

    async def _open(self) -> HelloResp:
        """Start a connection and wait for its first handshake (called holding `_lock`)."""
        self._context.forget()
        loop = asyncio.get_running_loop()
        first: asyncio.Future[HelloResp] = loop.create_future()
        observer = _Observer(self, first)
        session = DeviceSession(self._options, self._transport, observer, [self._on_handshake])
        session.log = library_logger(LOGGER).bind(device=self.name)
        observer.session = session
        self._context.session = session
        self._first = first
        runner = loop.create_task(self._supervise(observer), name=f"conduyt-{self.name}")
        self._runner = runner
        try:
            return await asyncio.shield(first)
        except asyncio.CancelledError:
            if self._runner is runner:  # else `disconnect()` took it over
                await self._teardown(self._detach())
            raise
        except ConduytError:
            if self._runner is runner:
                await asyncio.wait([runner])  # the port is closed before the lock is free
                self._runner = None
                self._context.session = None
            raise

    async def _wait_for_reconnect(self, runner: asyncio.Task[None]) -> None:
        """Wait until the board is online again or `runner` ended (auto-reconnect
        switched off, link lost for good), at most the handshake budget plus the longest
        backoff. Raises ConduytDisconnectedError after that."""
        session = self._context.session
        budget = self._options.reconnect_max_s
        if session is not None:
            budget += session.handshake_budget_s
        online = asyncio.ensure_future(self._online.wait())
        try:
            done, _ = await asyncio.wait(
                {online, runner}, timeout=budget, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            online.cancel()
        if not done:
            loss = session.last_loss if session is not None else None
            why = f": {loss.reason}" if loss is not None else ""
            raise ConduytDisconnectedError(f"{self.name}: not reconnected within {budget:g} s{why}")
        if online in done and not self.connected:
            await asyncio.sleep(0)  # lost again at once: let the session catch up

    def _detach(self) -> Detached:
        """Take the current connection away from the device, without awaiting anything:
        `connected` is False, a pending `connect()` fails, the runner is cancelled."""
        detached = Detached(self.connected, self._runner)
        first = self._first
        self._context.session = None
        self._context.hello = None
        self._runner = None
        self._first = None
        self._online.clear()
        if detached.runner is not None:
            detached.runner.cancel()
        fail_first(first, ConduytDisconnectedError(f"{self.name}: disconnected"))
        return detached

    async def _teardown(self, detached: Detached) -> None:
        """Finish what `_detach` started (called holding `_lock`)."""
        if detached.runner is not None:
            await asyncio.wait([detached.runner])
        self._hub.finish_all()
        if detached.was_connected:
            self._callbacks.fire(self.on_disconnected, DisconnectReason.REQUEST)

    async def _supervise(self, observer: _Observer) -> None:
        """Run the session: the first attempt reports to `connect()`; after a success,
        reconnect while `auto_reconnect` is True (read each time a link ends), else end
        (event iterators end with it)."""
        session = observer.session
        assert session is not None
        try:
            await session.run(reconnect=lambda: observer.ever_online and self.auto_reconnect)
            if not observer.ever_online:
                fail_first(observer.first, connect_error(session.last_loss, self.name))
            elif observer.current:
                self._hub.finish_all()
        finally:
            if observer.current:
                self._online.clear()
            # Whatever ended this task (a bug included), `connect()` must not wait forever.
            fail_first(observer.first, ConduytDisconnectedError(f"{self.name}: disconnected"))

    async def _on_handshake(self, session: DeviceSession) -> None:
        """Handshake hook, after RESET: set again what was set through the library
        (`replay_settings`); an item that fails is logged and reported as a `LogEvent`."""
        await replay_settings(self._context, session, self._report)

    def _report(self, text: str) -> None:
        library_logger(LOGGER).warning(text, device=self.name)
        self._hub.publish(LogEvent(text, LogSource.LIBRARY))

    def _went_online(self, observer: _Observer, hello: HelloResp) -> None:
        reason = ConnectReason.AUTO_RECONNECT if observer.ever_online else ConnectReason.REQUEST
        observer.ever_online = True
        self._context.hello = hello
        self._online.set()
        if not observer.first.done():
            observer.first.set_result(hello)
        self._callbacks.fire(self.on_connected, reason)

    def _went_offline(self, loss: LinkLoss | None) -> None:
        self._online.clear()
        self._callbacks.fire(self.on_disconnected, disconnect_reason(loss))

    def _on_packet(self, packet: Packet) -> None:
        event = event_from_packet(self._context.hello, packet)
        if event is None:
            return
        if isinstance(event, DatastreamEvent):
            self._context.values[event.name] = event.value
        self._hub.publish(event)

    def _on_text(self, line: TextLine) -> None:
        self._hub.publish(event_from_text(line))


class _Observer:
    """The session's observer for one connection of a `ConduytDevice`
    (`SessionObserver`); a connection the device let go of reports nothing more."""

    def __init__(self, device: ConduytDevice, first: asyncio.Future[HelloResp]) -> None:
        self._device = device
        self.first = first
        """The result of the `connect()` that started this connection."""
        self.session: DeviceSession | None = None
        self.ever_online = False

    @property
    def current(self) -> bool:
        """True while this is the device's connection."""
        return self.session is not None and self._device._context.session is self.session

    async def on_online(self, session: DeviceSession, hello: HelloResp, changed: bool) -> None:
        if self.current:
            self._device._went_online(self, hello)

    async def on_offline(self, session: DeviceSession, reason: str) -> None:
        if self.current:
            self._device._went_offline(session.last_loss)

    def on_event(self, session: DeviceSession, packet: Packet) -> None:
        if self.current:
            self._device._on_packet(packet)

    def on_text(self, session: DeviceSession, line: TextLine) -> None:
        if self.current:
            self._device._on_text(line)


@contextlib.asynccontextmanager
async def open_device(
    port: Transport | str, timeout_ms: int = 5000, **options: Any
) -> AsyncIterator[ConduytDevice]:
    """`async with open_device("sim://thermostat") as device:` — a connected
    `ConduytDevice`, disconnected on exit. `options` are `ConduytDevice`'s keyword
    arguments.

    Raises what `ConduytDevice()` and `connect()` raise.
    """
    device = ConduytDevice(port, timeout_ms, **options)
    await device.connect()
    try:
        yield device
    finally:
        await device.disconnect()
