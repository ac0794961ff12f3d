"""`ConduytDeviceSync`: the `ConduytDevice` surface without `await` (`docs/library.md` §6).

A private event loop runs in a daemon thread per device; every call submits a coroutine
to it and blocks until it is done. That works the same from a plain script and from a
Jupyter cell, where an event loop is already running in the main thread: the device never
touches that loop. Callbacks (`on_connected`, `on_disconnected`) run on the device's
thread, where the blocking methods must not be called (that would wait for itself: it
raises RuntimeError instead).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
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

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and return its result (or raise its exception).

        Raises ConduytDisconnectedError after `stop()`, RuntimeError when called on the
        loop's own thread (from a callback).
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
            return future.result()
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


class ConduytDeviceSync:
    """One board, driven without `await`: `ConduytDevice`'s methods and properties, each
    call blocking until done (`docs/library.md` §6). Use `close()` (or `with`) when done.

    Arguments are `ConduytDevice`'s. Module wrappers take a `ConduytDeviceSync` too
    (`ConduytServo(device, module_id=0).write(90)` blocks). The errors raised are those
    of the `ConduytDevice` method of the same name.
    """

    def __init__(self, transport: Transport | str, timeout_ms: int = 5000, **options: Any):
        self._device = ConduytDevice(transport, timeout_ms, **options)
        self._loop = LoopThread(f"conduyt-{self._device.name}")

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<ConduytDeviceSync {self._device.transport.description} {state}>"

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coro)

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
        """Disconnect and stop the device's thread (idempotent); the device is unusable
        afterwards."""
        if self._loop.closed:
            return
        try:
            self.disconnect()
        finally:
            self._loop.stop()

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
        return SyncPin(self._device.pin(num), self._run)

    def datastream(self, name: str) -> SyncDatastream:
        """The datastream called `name`."""
        return SyncDatastream(self._device.datastream(name), self._run)

    def events(self, maxsize: int = DEFAULT_EVENT_BUFFER) -> SyncEventStream:
        """A blocking iterator over the board's events from now on (see
        `ConduytDevice.events`)."""
        return SyncEventStream(self._run(_open_events(self._device, maxsize)), self._run)

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
        return BlockingProxy(target, self._run)


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

    def read(self, mode: str | None = None) -> int:
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
    """`for event in device.events(): ...` — a blocking `EventStream`."""

    def __init__(self, stream: EventStream, run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self._stream = stream
        self._run = run

    def __iter__(self) -> Iterator[DeviceEvent]:
        return self

    def __next__(self) -> DeviceEvent:
        event: DeviceEvent | None = self._run(_next_or_none(self._stream, None))
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

        Raises TimeoutError when none came in time, StopIteration once the stream ended.
        """
        event: DeviceEvent | None = self._run(_next_or_none(self._stream, timeout_s))
        if event is None:
            raise StopIteration
        return event

    def close(self) -> None:
        """Stop receiving events."""
        self._run(_close_stream(self._stream))


async def _next_or_none(stream: EventStream, timeout_s: float | None) -> DeviceEvent | None:
    # StopAsyncIteration cannot cross the thread boundary as a result: None marks the end.
    try:
        return await stream.get(timeout_s)
    except StopAsyncIteration:
        return None


async def _close_stream(stream: EventStream) -> None:
    stream.close()


class BlockingProxy:
    """Forwards attribute access to `target`; its coroutine methods run through `run` and
    block. A method returning `target` itself returns the proxy instead."""

    def __init__(self, target: object, run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self._target = target
        self._run = run

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
