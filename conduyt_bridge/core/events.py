"""The board core's typed events and the bus that carries them to the northbound adapters.

A `Board` (`conduyt_bridge.core.board`) emits one event for each thing that happened to
its board; adapters (the Conduyt topic layout, Home Assistant discovery, a test adapter…)
subscribe and turn them into their own protocol. Events carry no topic strings and no
payload formats: values are decoded Python values with their `DatastreamDescriptor`, and
the board is named by its id (`dev`; adapters find the `Board` in their host's `boards`). Events
are immutable named tuples: two are made per DS_EVENT, and a tuple is the cheapest
immutable record Python builds (compare them by type first: two kinds with equal fields
are equal tuples).

Delivery (`docs/architecture.md` §3):

- `EventBus.emit(event)` calls every listener in subscription order, synchronously, on
  the event loop: listeners must not block (publishing to an outbox is fine). This is the
  hot path (one call per DS_EVENT).
- `EventBus.emit_batch(events, after)` does what `emit` does for each of several events
  (a board's DS_EVENTs of one serial read, each followed by its `PacketReceived`),
  calling a listener that subscribed with a `batch` handler once with all those of its
  class (`docs/architecture.md` §6.1).
- `await EventBus.deliver(event)` does the same and also awaits the listeners that return
  an awaitable, in order: used for the lifecycle events (`BoardOnline`, `BoardOffline`)
  whose listeners do I/O that must finish before the board's state is announced.

A listener that raises is logged by the caller's supervisor rules: `emit` isolates each
listener (one adapter's bug never silences another), see `EventBus.emit`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, NamedTuple, overload

import structlog

from conduyt_bridge.errors import ConduytError
from conduyt_bridge.protocol.hello import DatastreamDescriptor, HelloResp
from conduyt_bridge.protocol.packet import Packet
from conduyt_bridge.protocol.values import DatastreamValue

log = structlog.stdlib.get_logger(__name__)


class BoardOnline(NamedTuple):
    """The handshake completed: `hello` is the board's HELLO_RESP; `changed` is True when
    another board or firmware now sits on the port (what was known of the old one is
    void)."""

    dev: str
    hello: HelloResp
    changed: bool


class BoardOffline(NamedTuple):
    """The link was lost (it is being reopened); `reason` in words."""

    dev: str
    reason: str


class DatastreamUpdated(NamedTuple):
    """A datastream has a new value: pushed by the board (DS_EVENT) or written through
    the bridge and ACKed. `slug` is its stable name (`conduyt_bridge.core.naming`), `at`
    the wall-clock time in s since the epoch."""

    dev: str
    slug: str
    datastream: DatastreamDescriptor
    value: DatastreamValue
    at: float


class PinValue(NamedTuple):
    """A pin's value: 0/1 for digital, raw ADC counts for analog (PIN_EVENT, a read, or an
    edge found by the bridge's own polling). `edge` is True for a polled edge (never
    merged with another message)."""

    dev: str
    pin: int
    value: int
    edge: bool = False


class PacketReceived(NamedTuple):
    """Any event packet from the board (DS_EVENT, PIN_EVENT, MOD_EVENT, STREAM_DATA, LOG,
    FATAL, or a reply nobody waited for), after the typed events above were emitted:
    for adapters that mirror raw packets or decode module events."""

    dev: str
    packet: Packet


class ReceivedRun(Sequence[PacketReceived]):
    """The `PacketReceived` events of a run of packets of one board, each built when it
    is read: `EventBus.emit_batch` takes one as `after`, so a run nobody reads packet by
    packet (the Conduyt layout reads `packets` at once) builds no event record at all
    (`docs/architecture.md` §6.1)."""

    __slots__ = ("dev", "packets")

    def __init__(self, dev: str, packets: Sequence[Packet]) -> None:
        self.dev = dev
        self.packets = packets

    def __len__(self) -> int:
        return len(self.packets)

    @overload
    def __getitem__(self, index: int) -> PacketReceived: ...

    @overload
    def __getitem__(self, index: slice) -> ReceivedRun: ...

    def __getitem__(self, index: int | slice) -> PacketReceived | ReceivedRun:
        if isinstance(index, slice):
            return ReceivedRun(self.dev, self.packets[index])
        return PacketReceived(self.dev, self.packets[index])

    def __iter__(self) -> Iterator[PacketReceived]:
        dev = self.dev
        for packet in self.packets:
            yield PacketReceived(dev, packet)


class TextPrinted(NamedTuple):
    """A line of text the sketch printed between frames (`docs/serial-text.md`), already
    rate-limited by the core."""

    dev: str
    text: str


class CommandFailed(NamedTuple):
    """A command from an adapter was refused or failed (`Board.report_failure`): `label`
    says what was asked (for the Conduyt layout's report, `docs/topics.md` §6), `error`
    whose fault it is, `transaction` the caller's id to echo, if any. The Conduyt layout
    reports it on `{base}/{dev}/error` (the one place refusals are reported, whatever
    convention the command came in by)."""

    dev: str
    label: str
    error: ConduytError
    transaction: Any = None


BoardEvent = (
    BoardOnline
    | BoardOffline
    | DatastreamUpdated
    | PinValue
    | PacketReceived
    | TextPrinted
    | CommandFailed
)
"""Every event a board emits."""

Listener = Callable[[Any], Awaitable[None] | None]
"""A bus listener: called with every `BoardEvent` of the classes it subscribed for (so it
may be typed for those alone); may return an awaitable, which `deliver` awaits (and
`emit` does not)."""

BatchListener = Callable[[Sequence[Any]], None]
"""A listener's batch form: called with a list of events of one class, in order (all of
one board); returns nothing (batches are emitted, never delivered)."""


class EventBus:
    """Fan-out of `BoardEvent`s to any number of listeners (one bus per bridge).

    Listeners run in subscription order; `late` ones run after all the others (an
    adapter that must speak last, e.g. to announce a state once everyone else reacted to
    a board coming online). Delivery walks a snapshot, so a listener may subscribe or
    unsubscribe while an event is being delivered.

    The hot path (`docs/architecture.md` §6.1): which listeners an event class reaches is
    worked out once per class and kept until the subscriptions change, so `emit` makes no
    `isinstance` test per listener, and an event class nobody listens to costs one lookup
    (`wants` tells a producer it need not even build the event).
    """

    def __init__(self) -> None:
        self._early: list[_Subscription] = []
        self._late: list[_Subscription] = []
        self._by_kind: dict[type, tuple[Listener, ...]] = {}
        self._batch_by_kind: dict[
            tuple[type, type | None], tuple[tuple[Listener, BatchListener | None, bool, bool], ...]
        ] = {}

    def subscribe(
        self,
        listener: Listener,
        *,
        kinds: tuple[type[BoardEvent], ...] = (),
        first: bool = False,
        late: bool = False,
        batch: BatchListener | None = None,
    ) -> Callable[[], None]:
        """Add `listener` for every event, or only those of the classes in `kinds` (an
        adapter that needs `BoardOnline` alone costs the DS_EVENT hot path nothing); it
        runs after the listeners already there, before them with `first`, or after every
        non-`late` one with `late`. `batch`: the same listener taking a list of events
        at once, which `emit_batch` calls instead of `listener` for each (it must do what
        those calls would do). Returns a function that removes it again."""
        entry = _Subscription(listener, kinds, batch)
        group = self._late if late else self._early
        if first:
            group.insert(0, entry)
        else:
            group.append(entry)
        self._by_kind = {}
        self._batch_by_kind = {}

        def unsubscribe() -> None:
            if entry in group:
                group.remove(entry)
                self._by_kind = {}
                self._batch_by_kind = {}

        return unsubscribe

    def listeners(self, kind: type) -> tuple[Listener, ...]:
        """The listeners an event of class `kind` reaches, in delivery order (a snapshot)."""
        found = self._by_kind.get(kind)
        if found is None:
            found = tuple(
                entry.listener
                for entry in (*self._early, *self._late)
                if not entry.kinds or issubclass(kind, entry.kinds)
            )
            self._by_kind[kind] = found
        return found

    def wants(self, kind: type) -> bool:
        """True when some listener takes events of class `kind`."""
        return bool(self.listeners(kind))

    def emit(self, event: BoardEvent) -> None:
        """Call every listener with `event`, in order. A listener that raises is logged
        (error level: it is a bug in that adapter) and the others still run; an awaitable
        a listener returns is closed unawaited (use `deliver` for those)."""
        listeners = self._by_kind.get(type(event))
        if listeners is None:
            listeners = self.listeners(type(event))
        for listener in listeners:
            try:
                result = listener(event)
            except Exception:
                log.exception("event listener failed", event_type=type(event).__name__)
                continue
            # Hot path: a plain listener returns None, so the coroutine test is skipped.
            if result is not None and inspect.iscoroutine(result):
                result.close()

    def emit_batch(self, events: Sequence[BoardEvent], after: Sequence[BoardEvent] = ()) -> None:
        """`emit` each of `events` (all of one class, of one board) followed by the one at
        the same place in `after` (all of another class, as many; e.g. a DS_EVENT's
        `DatastreamUpdated`, then its `PacketReceived`), with the same listeners and
        isolation as `emit`; but listener by listener, not event by event. A listener
        taking one of the two classes gets that class's events in one call of its `batch`
        handler if it has one, else one call each; a listener taking both gets them
        interleaved, one call each, so every listener sees what it saw from `emit`."""
        if not events:
            return
        second = type(after[0]) if after else None
        key = (type(events[0]), second)
        entries = self._batch_by_kind.get(key)
        if entries is None:
            entries = self._batch_table(*key)
        for listener, batch, first_too, second_too in entries:
            if first_too and second_too:
                for pair in zip(events, after, strict=True):
                    _call_each(listener, pair)
            elif batch is not None:
                try:
                    batch(events if first_too else after)
                except Exception:
                    log.exception("event listener failed", event_type=key[0].__name__)
            else:
                _call_each(listener, events if first_too else after)

    def _batch_table(
        self, first: type, second: type | None
    ) -> tuple[tuple[Listener, BatchListener | None, bool, bool], ...]:
        found = []
        for entry in (*self._early, *self._late):
            first_too = not entry.kinds or issubclass(first, entry.kinds)
            second_too = second is not None and (not entry.kinds or issubclass(second, entry.kinds))
            if first_too or second_too:
                found.append((entry.listener, entry.batch, first_too, second_too))
        self._batch_by_kind[(first, second)] = table = tuple(found)
        return table

    async def deliver(self, event: BoardEvent, *, isolate: bool = False) -> None:
        """Call every listener with `event`, in order, awaiting those that return an
        awaitable. A listener's exception propagates (the session drops the link and logs
        it, `docs/architecture.md` §7), unless `isolate`: then it is logged and the next
        listener still runs."""
        for listener in self.listeners(type(event)):
            try:
                result: Any = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                if not isolate:
                    raise
                log.exception("event listener failed", event_type=type(event).__name__)


def _call_each(listener: Listener, events: Sequence[BoardEvent]) -> None:
    """`listener(event)` for each, isolated as in `EventBus.emit`."""
    for event in events:
        try:
            result = listener(event)
        except Exception:
            log.exception("event listener failed", event_type=type(event).__name__)
            continue
        if result is not None and inspect.iscoroutine(result):
            result.close()


class _Subscription:
    """One `subscribe` call: the listener, the event classes it takes (all if empty) and
    its batch form, if any. Compared by identity, so the same listener subscribed twice is
    removed once."""

    __slots__ = ("batch", "kinds", "listener")

    def __init__(
        self,
        listener: Listener,
        kinds: tuple[type[BoardEvent], ...],
        batch: BatchListener | None = None,
    ) -> None:
        self.listener = listener
        self.kinds = kinds
        self.batch = batch


__all__ = [
    "BatchListener",
    "BoardEvent",
    "BoardOffline",
    "BoardOnline",
    "CommandFailed",
    "DatastreamUpdated",
    "EventBus",
    "Listener",
    "PacketReceived",
    "PinValue",
    "ReceivedRun",
    "TextPrinted",
]
