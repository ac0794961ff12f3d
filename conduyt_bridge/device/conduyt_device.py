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
import inspect
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, TypeVar

from conduyt_bridge.device.board_context import BoardContext
from conduyt_bridge.device.capabilities import check_command
from conduyt_bridge.device.datastream import Datastream
from conduyt_bridge.device.event_stream import DEFAULT_EVENT_BUFFER, EventHub, EventStream
from conduyt_bridge.device.events import DatastreamEvent, event_from_packet, event_from_text
from conduyt_bridge.device.library_log import library_logger
from conduyt_bridge.device.link_loss import LinkLoss
from conduyt_bridge.device.pin import Pin, PinRef
from conduyt_bridge.device.reasons import ConnectReason, DisconnectReason, disconnect_reason
from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.device.session_config import SessionOptions
from conduyt_bridge.device.session_stats import SessionStats
from conduyt_bridge.device.transports import Transport, transport_for_url
from conduyt_bridge.errors import ConduytDisconnectedError, ConduytError
from conduyt_bridge.protocol.commands import pin_mode, pin_subscribe
from conduyt_bridge.protocol.constants import PacketType, SubscribeMode
from conduyt_bridge.protocol.framing import TextLine
from conduyt_bridge.protocol.hello import HelloResp
from conduyt_bridge.protocol.packet import Packet

LOGGER = "conduyt_bridge.device"
"""Name of the library's logger (`logging` unless the program configured structlog)."""

ConnectCallback = Callable[[ConnectReason], object]
"""`on_connected(reason)`; may be a coroutine function."""

DisconnectCallback = Callable[[DisconnectReason], object]
"""`on_disconnected(reason)`; may be a coroutine function."""

_Reason = TypeVar("_Reason", ConnectReason, DisconnectReason)


class ConduytDevice:
    """One board, driven with `await` (`docs/library.md` §1).

    `transport` is a transport object (`SerialTransport`, `TcpTransport`,
    `SimTransport`) or a port URL (`/dev/ttyUSB0`, `socket://`, `rfc2217://`, `tcp://`,
    `sim://thermostat`; `baudrate` in bit/s applies to serial URLs). `timeout_ms` bounds
    each command's wait for its reply. `hello_timeout_ms` bounds one HELLO of the
    handshake (six are tried, `docs/protocol.md` §3.5). After `keepalive_s` seconds
    without traffic a PING is sent (`keepalive_s` 0: never), and `keepalive_misses`
    unanswered in a row end the link. With `auto_reconnect`, a lost link is reopened with
    a backoff from `reconnect_min_s` doubling to `reconnect_max_s` seconds, forever, and
    the pin modes and subscriptions set through the device are set again.

    `on_connected(reason)` and `on_disconnected(reason)` are called on the event loop
    with a `ConnectReason` / `DisconnectReason` (`docs/library.md` §5); a coroutine
    function is scheduled as a task; exceptions are logged, never raised.

    Raises ValueError for out-of-range settings or an unsupported URL scheme, KeyError
    for an unknown `sim://` profile.
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
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        baudrate: int = 115200,
        name: str | None = None,
    ) -> None:
        if isinstance(transport, str):
            transport = transport_for_url(transport, baudrate=baudrate)
        self._transport = transport
        self._options = SessionOptions(
            device_id=name or transport.description,
            command_timeout_ms=timeout_ms,
            hello_timeout_ms=hello_timeout_ms,
            keepalive_s=keepalive_s,
            keepalive_misses=keepalive_misses,
            reconnect_min_s=reconnect_min_s,
            reconnect_max_s=reconnect_max_s,
        )
        self.auto_reconnect = auto_reconnect
        """Reopen a lost link by itself (may be changed at any time)."""
        self.on_connected: ConnectCallback | None = on_connected
        self.on_disconnected: DisconnectCallback | None = on_disconnected
        self._context = BoardContext(self._options.device_id)
        self._hub = EventHub()
        self._runner: asyncio.Task[None] | None = None
        self._first: asyncio.Future[HelloResp] | None = None
        self._online = asyncio.Event()
        self._ever_online = False
        self._callbacks: set[asyncio.Task[object]] = set()

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
        """True between a completed handshake and the loss of the link or `disconnect()`."""
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
        is under way: waits for it.

        Raises ConduytDisconnectedError when the port cannot be opened (the OS error is
        its `__cause__`) or the board completes no handshake.
        """
        if self._runner is not None and not self._runner.done():
            if self._first is not None and not self._first.done():
                return await asyncio.shield(self._first)
            await self._online.wait()
            return self._context.require_hello()
        self._context.forget()
        self._ever_online = False
        session = DeviceSession(
            self._options, self._transport, _Observer(self), [self._on_handshake]
        )
        session.log = library_logger(LOGGER).bind(device=self.name)
        self._context.session = session
        loop = asyncio.get_running_loop()
        first: asyncio.Future[HelloResp] = loop.create_future()
        self._first = first
        self._runner = loop.create_task(self._supervise(session), name=f"conduyt-{self.name}")
        try:
            return await asyncio.shield(first)
        except asyncio.CancelledError:
            await self._stop()
            raise
        except ConduytError:
            self._context.session = None
            raise

    async def disconnect(self) -> None:
        """Close the link and stop reconnecting; `capabilities` becomes None and event
        iterators end. Calls `on_disconnected(REQUEST)` if the board was connected. Never
        raises for a link that is already gone."""
        was_connected = self.connected
        await self._stop()
        self._context.session = None
        self._context.hello = None
        self._hub.finish_all()
        if was_connected:
            self._fire(self.on_disconnected, DisconnectReason.REQUEST)

    async def close(self) -> None:
        """Same as `disconnect()`."""
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
        `BAD_LENGTH` (sha256 not 32 bytes), before anything is sent; ValueError for a size
        outside 0..2^32-1; then ConduytNAKError, ConduytTimeoutError,
        ConduytDisconnectedError.
        """
        await self._ota(PacketType.OTA_BEGIN, total_bytes.to_bytes(4, "little") + sha256)

    async def ota_chunk(self, offset: int, data: bytes) -> None:
        """Send image bytes `data` at byte `offset` (chunks in order; keep data <=
        max_payload - 8 on serial links, Q15). Raises as `ota_begin`, and
        ConduytCapabilityError `PAYLOAD_TOO_LARGE` for a chunk over the board's limit."""
        await self._ota(PacketType.OTA_CHUNK, offset.to_bytes(4, "little") + data)

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

    async def _supervise(self, session: DeviceSession) -> None:
        """The first attempt reports to `connect()`; after a success, reconnect forever
        if `auto_reconnect`, else end (event iterators end with it)."""
        try:
            await session.run(reconnect=False)
            if not self._ever_online:
                self._fail_first(_connect_error(session.last_loss, self.name))
                return
            if self.auto_reconnect:
                await session.run()
            self._hub.finish_all()
        finally:
            # Whatever ended this task (a bug included), `connect()` must not wait forever.
            self._fail_first(ConduytDisconnectedError(f"{self.name}: disconnected"))

    async def _stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.wait([runner])
        self._online.clear()
        self._fail_first(ConduytDisconnectedError(f"{self.name}: disconnected"))

    def _fail_first(self, error: ConduytError) -> None:
        first = self._first
        if first is not None and not first.done():
            first.set_exception(error)
            first.exception()  # retrieved: `connect()` may no longer be waiting for it

    async def _on_handshake(self, session: DeviceSession) -> None:
        """Handshake hook, after RESET: set again what was set through the library (the
        board forgets it on a reboot; RESET stops subscriptions, Q6)."""
        context = self._context
        context.slots_used = 0
        if session.board_changed:
            context.forget()
            return
        for pin, mode in list(context.pin_modes.items()):
            await session.request(PacketType.PIN_MODE, pin_mode(pin, mode))
        for pin, sub in list(context.subscriptions.items()):
            payload = pin_subscribe(pin, SubscribeMode.ANALOG_POLL, sub.interval_ms, sub.threshold)
            await session.request(PacketType.PIN_SUBSCRIBE, payload)
            context.slots_used += 1

    def _went_online(self, hello: HelloResp) -> None:
        reason = ConnectReason.AUTO_RECONNECT if self._ever_online else ConnectReason.REQUEST
        self._ever_online = True
        self._context.hello = hello
        self._online.set()
        if self._first is not None and not self._first.done():
            self._first.set_result(hello)
        self._fire(self.on_connected, reason)

    def _went_offline(self, loss: LinkLoss | None) -> None:
        self._online.clear()
        self._fire(self.on_disconnected, disconnect_reason(loss))

    def _on_packet(self, packet: Packet) -> None:
        event = event_from_packet(self._context.hello, packet)
        if event is None:
            return
        if isinstance(event, DatastreamEvent):
            self._context.values[event.name] = event.value
        self._hub.publish(event)

    def _on_text(self, line: TextLine) -> None:
        self._hub.publish(event_from_text(line))

    def _fire(self, callback: Callable[[_Reason], object] | None, reason: _Reason) -> None:
        if callback is None:
            return
        try:
            result = callback(reason)
            if inspect.isawaitable(result):
                task: asyncio.Task[object] = asyncio.ensure_future(result)
                self._callbacks.add(task)
                task.add_done_callback(self._callback_done)
        except Exception:
            library_logger(LOGGER).exception(
                "connection callback failed", device=self.name, reason=str(reason)
            )

    def _callback_done(self, task: asyncio.Task[object]) -> None:
        self._callbacks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            library_logger(LOGGER).error(
                "connection callback failed", device=self.name, exc_info=task.exception()
            )


class _Observer:
    """The session's observer for a `ConduytDevice` (`SessionObserver`)."""

    def __init__(self, device: ConduytDevice) -> None:
        self._device = device

    async def on_online(self, session: DeviceSession, hello: HelloResp, changed: bool) -> None:
        self._device._went_online(hello)

    async def on_offline(self, session: DeviceSession, reason: str) -> None:
        self._device._went_offline(session.last_loss)

    def on_event(self, session: DeviceSession, packet: Packet) -> None:
        self._device._on_packet(packet)

    def on_text(self, session: DeviceSession, line: TextLine) -> None:
        self._device._on_text(line)


def _connect_error(loss: LinkLoss | None, name: str) -> ConduytError:
    """The error `connect()` raises for a first attempt that failed."""
    if loss is None:
        return ConduytDisconnectedError(f"{name}: could not connect")
    error = ConduytDisconnectedError(loss.reason)
    error.__cause__ = loss.error
    return error


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
