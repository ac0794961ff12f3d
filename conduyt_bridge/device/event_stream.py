"""Delivery of a device's events to its `events()` iterators (`docs/library.md` §4).

Each iterator has its own bounded buffer: a consumer that falls behind loses the oldest
events, never blocks the board's read loop or the other consumers, and can see how many
it lost (`EventStream.dropped`). The hub holds its streams weakly: an iterator the
program dropped (left with `break` and not referenced any more) stops receiving events.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from types import TracebackType

from conduyt_bridge.device.events import DeviceEvent
from conduyt_bridge.errors import ConduytDisconnectedError

DEFAULT_EVENT_BUFFER = 256
"""Events an iterator holds before it drops the oldest."""


class EventStream:
    """`async for event in device.events(): ...` — the board's events from now on.

    Ends (StopAsyncIteration) after `close()` / `aclose()`, and once the device is
    disconnected for good (`disconnect()`, or a lost link without `auto_reconnect`) and
    the buffered events were read. `async with device.events() as events:` closes it on
    exit. Must be used on the device's event loop.
    """

    def __init__(self, hub: EventHub, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._hub = hub
        self._items: deque[DeviceEvent] = deque()
        self.maxsize = maxsize
        self.dropped = 0
        """Events lost because the buffer was full (the oldest go first)."""
        self._wakeup = asyncio.Event()
        self._ended = False

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> DeviceEvent:
        event = await self._next()
        if event is None:
            raise StopAsyncIteration
        return event

    async def _next(self) -> DeviceEvent | None:
        """The next event, None once the stream ended."""
        while not self._items:
            if self._ended:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._items.popleft()

    async def next_or_none(self, timeout_s: float | None = None) -> DeviceEvent | None:
        """The next event, waiting at most `timeout_s` seconds (None: no limit); None once
        the stream ended. Raises TimeoutError when none came in time."""
        async with asyncio.timeout(timeout_s):
            return await self._next()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def get(self, timeout_s: float | None = None) -> DeviceEvent:
        """The next event, waiting at most `timeout_s` seconds (None: no limit).

        Raises TimeoutError when none came in time, ConduytDisconnectedError once the
        stream ended (`close()`, or the device disconnected for good).
        """
        event = await self.next_or_none(timeout_s)
        if event is None:
            raise ConduytDisconnectedError("the event stream ended (closed, or disconnected)")
        return event

    @property
    def pending(self) -> int:
        """Events buffered and not read yet."""
        return len(self._items)

    def close(self) -> None:
        """Stop receiving events and drop the buffered ones (idempotent)."""
        self._items.clear()
        self._end()
        self._hub.remove(self)

    async def aclose(self) -> None:
        """Same as `close()`, for `contextlib.aclosing` and async generator habits."""
        self.close()

    def put(self, event: DeviceEvent) -> None:
        """Buffer an event (the hub's side), dropping the oldest when full."""
        if self._ended:
            return
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(event)
        self._wakeup.set()

    def _end(self) -> None:
        self._ended = True
        self._wakeup.set()

    def finish(self) -> None:
        """End after the buffered events were read (the device disconnected)."""
        self._end()


class EventHub:
    """The open `EventStream`s of one device, held weakly (a dropped stream goes away)."""

    def __init__(self) -> None:
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()

    def open(self, maxsize: int = DEFAULT_EVENT_BUFFER) -> EventStream:
        """A new stream receiving every event published from now on."""
        stream = EventStream(self, maxsize)
        self._streams.add(stream)
        return stream

    def remove(self, stream: EventStream) -> None:
        """Stop delivering to `stream`."""
        self._streams.discard(stream)

    def publish(self, event: DeviceEvent) -> None:
        """Deliver `event` to every open stream; never blocks."""
        for stream in list(self._streams):
            stream.put(event)

    def finish_all(self) -> None:
        """End every open stream (after its buffered events) and forget them."""
        streams = list(self._streams)
        self._streams.clear()
        for stream in streams:
            stream.finish()
