"""`ConduytDeviceSync`: the `ConduytDevice` surface without `await` (`docs/library.md` §6).

A private event loop runs in a daemon thread per device; every call submits a coroutine
to it and blocks until it is done. That works the same from a plain script and from a
Jupyter cell, where an event loop is already running in the main thread: the device never
touches that loop. Callbacks (`on_connected`, `on_disconnected`) run on the device's
thread, where the blocking methods must not be called (that would wait for itself: it
raises RuntimeError instead).

`close()` is final: it disconnects and stops the thread, and the device cannot connect
again (`ConduytDevice.close()`, by contrast, is `disconnect()`). A device the program
drops without closing it (a re-run Jupyter cell) is disconnected and its thread stopped
when it is garbage-collected, and at interpreter exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from conduyt_bridge.device.conduyt_device import (
    ConduytDevice,
    ConnectCallback,
    DisconnectCallback,
)
from conduyt_bridge.device.datastream import Datastream
from conduyt_bridge.device.event_stream import DEFAULT_EVENT_BUFFER, EventStream
from conduyt_bridge.device.events import DeviceEvent
from conduyt_bridge.device.pin import Pin, PinRef
from conduyt_bridge.device.session_stats import SessionStats
from conduyt_bridge.device.transports import Transport
from conduyt_bridge.errors import ConduytDisconnectedError
from conduyt_bridge.protocol.constants import PinMode
from conduyt_bridge.protocol.hello import DatastreamDescriptor, HelloResp
from conduyt_bridge.protocol.values import DatastreamValue

T = TypeVar("T")

STOP_TIMEOUT_S = 5.0
"""Longest `close()` waits for the device's thread to finish, seconds."""


class LoopThread:
    """An event loop running forever in a daemon thread, fed coroutines from other threads."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._closed = False
        self._thread.start()

    @property
    def closed(self) -> bool:
        """True once `stop()` ran."""
        return self._closed

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            leftovers = asyncio.all_tasks(self.loop)
            for task in leftovers:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    @property
    def on_own_thread(self) -> bool:
        """True when called on the loop's thread (from a callback)."""
        return threading.current_thread() is self._thread

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run `coro` on the loop and return its result (or raise its exception), waiting
        at most `timeout_s` seconds (None: no limit).

        Raises ConduytDisconnectedError after `stop()`, RuntimeError when called on the
        loop's own thread (from a callback), TimeoutError (`coro` is then cancelled).
        """
        if self._closed:
            coro.close()
            raise ConduytDisconnectedError("the device was closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "a blocking ConduytDeviceSync method was called on the device's own thread "
                "(from a callback); schedule the work elsewhere"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s)
        except BaseException:
            future.cancel()  # Ctrl-C in the caller: do not leave the command running
            raise

    def stop(self) -> None:
        """Stop the loop (cancelling what still runs on it) and wait for the thread."""
        if self._closed:
            return
        self._closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(STOP_TIMEOUT_S)


def _finalize(device: ConduytDevice, loop: LoopThread) -> None:
    """Disconnect `device` and stop its thread: `ConduytDeviceSync.close()` for a device
    that was garbage-collected (or at interpreter exit) without it. Never raises."""
    if loop.closed:
        return
    if loop.on_own_thread:  # collected on the device's own thread: cannot block there
        task = asyncio.ensure_future(device.disconnect(), loop=loop.loop)
        task.add_done_callback(lambda _: loop.stop())
        return
    try:
        with contextlib.suppress(Exception):  # a finalizer must not raise
            loop.run(device.disconnect(), STOP_TIMEOUT_S)
    finally:
        loop.stop()


class ConduytDeviceSync:
    """One board, driven without `await`: `ConduytDevice`'s methods and properties, each
    call blocking until done (`docs/library.md` §6). Use `close()` (or `with`) when done:
    **`close()` is final** (it stops the device's thread; `disconnect()` allows a
    `connect()` again). A device dropped without `close()` is closed when it is
    garbage-collected or the interpreter exits.

    Arguments are `ConduytDevice`'s. Module wrappers take a `ConduytDeviceSync` too
    (`ConduytServo(device, module_id=0).write(90)` blocks). The errors raised are those
    of the `ConduytDevice` method of the same name.
    """

    def __init__(self, transport: Transport | str, timeout_ms: int = 5000, **options: Any):
        self._device = ConduytDevice(transport, timeout_ms, **options)
        self._loop = LoopThread(f"conduyt-{self._device.name}")
        # Holds the device and the thread, not `self`: runs when `self` is collected.
        self._finalizer = weakref.finalize(self, _finalize, self._device, self._loop)

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<ConduytDeviceSync {self._device.transport.description} {state}>"

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coro)

    @property
    def closed(self) -> bool:
        """True once `close()` ran: the device cannot be used any more."""
        return self._loop.closed

    # ---- state ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The board's name in logs and errors."""
        return self._device.name

    @property
    def connected(self) -> bool:
        """True while the board is connected (see `ConduytDevice.connected`)."""
        return self._device.connected

    @property
    def capabilities(self) -> HelloResp | None:
        """The board's HELLO_RESP, None before `connect()` and after `disconnect()`."""
        return self._device.capabilities

    @property
    def hello(self) -> HelloResp | None:
        """Same as `capabilities`."""
        return self._device.hello

    @property
    def stats(self) -> SessionStats | None:
        """Counters of the current connection (see `ConduytDevice.stats`)."""
        return self._device.stats

    @property
    def auto_reconnect(self) -> bool:
        """Reopen a lost link by itself."""
        return self._device.auto_reconnect

    @auto_reconnect.setter
    def auto_reconnect(self, value: bool) -> None:
        self._device.auto_reconnect = value

    @property
    def on_connected(self) -> ConnectCallback | None:
        """`on_connected(reason)`, called on the device's thread."""
        return self._device.on_connected

    @on_connected.setter
    def on_connected(self, callback: ConnectCallback | None) -> None:
        self._device.on_connected = callback

    @property
    def on_disconnected(self) -> DisconnectCallback | None:
        """`on_disconnected(reason)`, called on the device's thread."""
        return self._device.on_disconnected

    @on_disconnected.setter
    def on_disconnected(self, callback: DisconnectCallback | None) -> None:
        self._device.on_disconnected = callback

    # ---- connection ----------------------------------------------------------------------

    def connect(self) -> HelloResp:
        """Open the port and perform the handshake; returns the HELLO_RESP."""
        return self._run(self._device.connect())

    def disconnect(self) -> None:
        """Close the link (the device can `connect()` again)."""
        if not self._loop.closed:
            self._run(self._device.disconnect())

    def close(self) -> None:
        """Disconnect and stop the device's thread (idempotent). Final: the device is
        unusable afterwards (every method raises ConduytDisconnectedError); use
        `disconnect()` to connect again later."""
        if self._loop.closed:
            return
        try:
            self.disconnect()
        finally:
            self._loop.stop()
            self._finalizer.detach()

    def __enter__(self) -> ConduytDeviceSync:
        if not self.connected:
            self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- commands ------------------------------------------------------------------------

    def ping(self) -> None:
        """PING the board and wait for its PONG."""
        self._run(self._device.ping())

    def reset(self) -> None:
        """RESET the board's host-visible state (see `ConduytDevice.reset`)."""
        self._run(self._device.reset())

    def pin(self, num: PinRef) -> SyncPin:
        """Pin `num` (an index or `"A<n>"`)."""
        return SyncPin(self._device.pin(num), self._loop.run)

    def datastream(self, name: str) -> SyncDatastream:
        """The datastream called `name`."""
        return SyncDatastream(self._device.datastream(name), self._loop.run)

    def events(self, maxsize: int = DEFAULT_EVENT_BUFFER) -> SyncEventStream:
        """A blocking iterator over the board's events from now on (see
        `ConduytDevice.events`)."""
        return SyncEventStream(self._run(_open_events(self._device, maxsize)), self._loop)

    def ota_begin(self, total_bytes: int, sha256: bytes) -> None:
        """Start an OTA update (see `ConduytDevice.ota_begin`)."""
        self._run(self._device.ota_begin(total_bytes, sha256))

    def ota_chunk(self, offset: int, data: bytes) -> None:
        """Send one OTA chunk (see `ConduytDevice.ota_chunk`)."""
        self._run(self._device.ota_chunk(offset, data))

    def ota_finalize(self) -> None:
        """Finish the OTA update (see `ConduytDevice.ota_finalize`)."""
        self._run(self._device.ota_finalize())

    def blocking(self, target: object) -> Any:
        """A proxy of `target` (an object bound to this device's async side, such as a
        module wrapper) whose coroutine methods block and return their results."""
        return BlockingProxy(target, self._loop.run)


async def _open_events(device: ConduytDevice, maxsize: int) -> EventStream:
    # On the device's loop: the stream's buffer and wake-up belong to it.
    return device.events(maxsize)


class SyncPin:
    """`Pin` without `await` (same methods, same errors)."""

    def __init__(self, pin: Pin, run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self._pin = pin
        self._run = run

    def __repr__(self) -> str:
        return f"Sync{self._pin!r}"

    @property
    def number(self) -> int:
        """The HELLO_RESP pin index."""
        return self._pin.number

    @property
    def current_mode(self) -> str | None:
        """The mode set through this device, None if none was set."""
        return self._pin.current_mode

    def mode(self, mode: str | PinMode) -> SyncPin:
        """Set the pin's mode; returns the pin."""
        self._run(self._pin.mode(mode))
        return self

    def write(self, value: int) -> None:
        """Write a digital level 0/1 or a PWM duty cycle 0..255."""
        self._run(self._pin.write(value))

    def read(self, mode: str | PinMode | None = None) -> int:
        """Read the pin: 0/1, or ADC counts for an analog read."""
        result: int = self._run(self._pin.read(mode))
        return result

    def analog_read(self) -> int:
        """Read the pin's ADC, counts."""
        result: int = self._run(self._pin.analog_read())
        return result

    def digital_read(self) -> int:
        """Read the pin's digital level, 0 or 1."""
        result: int = self._run(self._pin.digital_read())
        return result

    def subscribe(self, interval_ms: int = 100, threshold: int = 0) -> None:
        """Have the board push the pin's ADC reading every `interval_ms` ms."""
        self._run(self._pin.subscribe(interval_ms, threshold))

    def unsubscribe(self) -> None:
        """Stop the pin's subscription."""
        self._run(self._pin.unsubscribe())


class SyncDatastream:
    """`Datastream` without `await` (same methods, same errors)."""

    def __init__(
        self, datastream: Datastream, run: Callable[[Coroutine[Any, Any, Any]], Any]
    ) -> None:
        self._datastream = datastream
        self._run = run
        self.name = datastream.name

    def __repr__(self) -> str:
        return f"Sync{self._datastream!r}"

    @property
    def descriptor(self) -> DatastreamDescriptor:
        """The datastream's HELLO_RESP descriptor."""
        return self._datastream.descriptor

    @property
    def value(self) -> DatastreamValue | None:
        """The last value pushed by the board or written through this device, or None."""
        return self._datastream.value

    def write(self, value: DatastreamValue) -> None:
        """Write `value` (type- and range-checked first)."""
        self._run(self._datastream.write(value))


class SyncEventStream:
    """`for event in device.events(): ...` — a blocking `EventStream`. After the device's
    `close()` it is ended: iteration stops, `close()` does nothing."""

    def __init__(self, stream: EventStream, loop: LoopThread) -> None:
        self._stream = stream
        self._loop = loop

    def __iter__(self) -> Iterator[DeviceEvent]:
        return self

    def __next__(self) -> DeviceEvent:
        event = self._next(None)
        if event is None:
            raise StopIteration
        return event

    def __enter__(self) -> SyncEventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        """Events lost because the buffer was full."""
        return self._stream.dropped

    def get(self, timeout_s: float | None = None) -> DeviceEvent:
        """The next event, waiting at most `timeout_s` seconds.

        Raises TimeoutError when none came in time, ConduytDisconnectedError once the
        stream ended (closed, or the device disconnected or was closed).
        """
        event = self._next(timeout_s)
        if event is None:
            raise ConduytDisconnectedError("the event stream ended (closed, or disconnected)")
        return event

    def close(self) -> None:
        """Stop receiving events (idempotent; nothing to do once the device is closed)."""
        if not self._loop.closed:
            self._loop.run(_close_stream(self._stream))

    def _next(self, timeout_s: float | None) -> DeviceEvent | None:
        # StopAsyncIteration cannot cross the thread boundary as a result: None marks the end.
        if self._loop.closed:
            return None
        event: DeviceEvent | None = self._loop.run(self._stream.next_or_none(timeout_s))
        return event


async def _close_stream(stream: EventStream) -> None:
    stream.close()


class BlockingProxy:
    """Forwards attribute access to `target`; its coroutine methods run through `run` and
    block. A method returning `target` itself returns the proxy instead. The proxy passes
    for an instance of `target`'s class (`isinstance(ConduytServo(sync_device),
    ConduytServo)` is True), as `unittest.mock` objects do."""

    def __init__(self, target: object, run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self._target = target
        self._run = run

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        # isinstance() consults `__class__` when `type(proxy)` does not match.
        return type(self._target)

    def __repr__(self) -> str:
        return f"Blocking({self._target!r})"

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        @functools.wraps(attribute)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            result = self._run(attribute(*args, **kwargs))
            return self if result is self._target else result

        return blocking
