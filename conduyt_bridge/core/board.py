"""One board as the bridge knows it, free of any northbound format.

`Board` observes its `DeviceSession` (`SessionObserver`): it keeps the board's HELLO_RESP,
the last value of every datastream, the pins' state (`conduyt_bridge.core.pins`) and the
writable retained values to write again after a reboot (the replay,
`docs/architecture.md` §4), and emits a typed event on the bridge's `EventBus` for
everything that happens. Commands from any adapter run one at a time, in arrival order,
on the board's own worker (`submit`), so a slow board never holds up another board or an
adapter's reader (`docs/architecture.md` §5).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import structlog

from conduyt_bridge.core.config import BoardConfig
from conduyt_bridge.core.events import (
    BoardOffline,
    BoardOnline,
    CommandFailed,
    DatastreamUpdated,
    EventBus,
    PacketReceived,
    PinValue,
    ReceivedRun,
    TextPrinted,
)
from conduyt_bridge.core.naming import datastream_slugs
from conduyt_bridge.core.pins import PinState, TaskSet
from conduyt_bridge.device.serial_text import LineRateLimiter
from conduyt_bridge.device.session import DeviceSession, SessionState
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytCommandError,
    ConduytDisconnectedError,
    ConduytError,
    ConduytForbiddenError,
    ConduytInternalError,
    ErrorName,
    describe_exception,
)
from conduyt_bridge.protocol.commands import ds_write, parse_pin_value
from conduyt_bridge.protocol.constants import DatastreamType, PacketType, type_name
from conduyt_bridge.protocol.errors import PayloadDecodeError, ValueDecodeError, ValueEncodeError
from conduyt_bridge.protocol.framing import TextLine
from conduyt_bridge.protocol.hello import DatastreamDescriptor, HelloResp
from conduyt_bridge.protocol.packet import Packet
from conduyt_bridge.protocol.values import (
    DatastreamValue,
    StringEncoding,
    ValueDecoder,
    encode_value,
    shortest_float32,
    value_decoder,
)

_DS_EVENT = int(PacketType.DS_EVENT)  # a plain int compares faster than the IntEnum member
_make = tuple.__new__  # an event tuple without its class's Python-level `__new__`: half the cost

COMMAND_QUEUE_LIMIT = 256
"""Commands waiting per board; more are refused at once with `BUSY`."""

RECENT_ERRORS = 20
"""Refused commands kept per board for the status page and health."""

SeedParser = Callable[[DatastreamDescriptor], DatastreamValue]
"""Turns a value found on the northbound side at start-up (a retained state) into a
datastream value, given the datastream; raises `ConduytError` if it cannot."""


class Job(Protocol):
    """A command for one board, as an adapter hands it to `Board.submit`.

    The adapter parses its own protocol into a call of the board's typed operations in
    `run`, and maps the outcome back onto its protocol in `succeeded`/`failed`.
    """

    @property
    def label(self) -> str:
        """What the command is, for logs (an MQTT topic, a Homie property…)."""
        ...

    @property
    def retained(self) -> bool:
        """True when the command arrived as a retained message (refused: a stale command
        would re-run on every restart)."""
        ...

    async def run(self, board: Board) -> dict[str, Any]:
        """Carry the command out; returns the success document. Raises ConduytError."""
        ...

    def succeeded(self, board: Board, result: dict[str, Any]) -> None:
        """Report success (must not block)."""
        ...

    def failed(self, board: Board, error: ConduytError) -> None:
        """Report a refusal or failure (must not block)."""
        ...


class Board:
    """One board: its state, its events and its command worker."""

    def __init__(self, config: BoardConfig, bus: EventBus, tasks: TaskSet) -> None:
        self.config = config
        self.dev = config.device_id
        self.bus = bus
        self.session: DeviceSession | None = None
        self.hello: HelloResp | None = None
        self.ds_by_slug: dict[str, DatastreamDescriptor] = {}
        self.slug_by_index: dict[int, str] = {}
        self.values: dict[str, DatastreamValue] = {}
        self.value_times: dict[str, float] = {}
        """Wall-clock time (s since the epoch) of each datastream's last value."""
        self.replay: dict[str, DatastreamValue] = {}
        """Writable retained datastreams' last written values, written again after every
        handshake."""
        self.seeds: dict[str, SeedParser] = {}
        """Replay values found at start-up (`seed_replay`), adopted at the next handshake."""
        self.errors: deque[dict[str, Any]] = deque(maxlen=RECENT_ERRORS)
        """The last refused commands, newest last (adapters append their reports)."""
        self._type_counts: dict[int, int] = {}
        """Event packets received by TYPE byte (`event_counts` names them)."""
        self._ds_by_index: dict[int, tuple[str, DatastreamDescriptor, ValueDecoder]] = {}
        """DS_EVENT index → slug, datastream and its value decoder, per HELLO_RESP."""
        self.text_limiter = LineRateLimiter()
        """Bounds the sketch's text lines; `text_limiter.dropped` counts refused lines."""
        self.pins = PinState(self.dev, config.pins, self.require_online, bus.emit, tasks)
        self._queue: asyncio.Queue[Job] = asyncio.Queue(COMMAND_QUEUE_LIMIT)
        self._online = asyncio.Event()
        self.log = structlog.stdlib.get_logger(__name__).bind(device=self.dev)

    # ---- state ----------------------------------------------------------------------------

    @property
    def event_counts(self) -> dict[str, int]:
        """Event packets received by type name (`DS_EVENT`, or `0x5a` for an undefined
        type), counted since the bridge started."""
        counts: dict[str, int] = {}
        for type_, n in self._type_counts.items():
            name = type_name(type_)
            counts[name] = counts.get(name, 0) + n
        return counts

    @property
    def online(self) -> bool:
        """True while the board's session is online."""
        return self.session is not None and self.session.online

    @property
    def state(self) -> str:
        """`online`, `connecting` or `offline`."""
        return str(self.session.state) if self.session is not None else "offline"

    @property
    def max_payload(self) -> int | None:
        """The board's `max_payload` from its HELLO_RESP (bytes), None before the first
        handshake or when the board says 0."""
        hello = self.session.hello if self.session is not None else None
        hello = hello or self.hello
        return hello.max_payload if hello is not None and hello.max_payload else None

    def require_session(self) -> DeviceSession:
        """The session, if online. Raises ConduytDisconnectedError."""
        if self.session is None or not self.session.online:
            raise ConduytDisconnectedError(f"board '{self.dev}' is offline")
        return self.session

    def require_hello(self) -> HelloResp:
        """The board's HELLO_RESP, if known. Raises ConduytDisconnectedError."""
        if self.hello is None:
            raise ConduytDisconnectedError(f"board '{self.dev}' has not completed a handshake yet")
        return self.hello

    def require_online(self) -> tuple[DeviceSession, HelloResp]:
        """The session and its HELLO_RESP while online. Raises ConduytDisconnectedError."""
        self.require_hello()
        session = self.require_session()
        assert session.hello is not None
        return session, session.hello

    # ---- SessionObserver ------------------------------------------------------------------

    async def on_online(self, session: DeviceSession, hello: HelloResp, changed: bool) -> None:
        """Adopt the HELLO_RESP and deliver `BoardOnline` (awaiting its listeners)."""
        self._online.set()
        self._adopt_hello(hello)
        if changed:
            self.log.warning("a different board or firmware is now on this port")
            self.values.clear()
            self.value_times.clear()
            self.replay.clear()
        await self.bus.deliver(BoardOnline(self.dev, hello, changed))

    async def on_offline(self, session: DeviceSession, reason: str) -> None:
        """Deliver `BoardOffline` (each listener isolated: the link is already gone, so a
        failing adapter must not keep the others from hearing it), then stop the bridge's
        pin polls."""
        self._online.clear()
        await self.bus.deliver(BoardOffline(self.dev, reason), isolate=True)
        await self.pins.on_offline()

    def on_event(self, session: DeviceSession, packet: Packet) -> None:
        """Decode a board event into typed events, then emit `PacketReceived` (not built
        when nobody listens to it)."""
        counts = self._type_counts
        counts[packet.type] = counts.get(packet.type, 0) + 1
        try:
            if packet.type == PacketType.DS_EVENT:
                self._on_ds_event(packet)
            elif packet.type == PacketType.PIN_EVENT:
                pv = parse_pin_value(packet.payload)
                self.bus.emit(PinValue(self.dev, pv.pin, pv.value))
            elif packet.type == PacketType.FATAL:
                text = packet.payload.decode("utf-8", errors="replace")
                self.log.warning("board reported FATAL", text=text)
            elif packet.type == PacketType.LOG:
                text = packet.payload.decode("utf-8", errors="replace")
                self.log.info("board log", text=text)
        except (PayloadDecodeError, ValueDecodeError) as exc:
            self.log.debug("malformed event", packet=repr(packet), error=describe_exception(exc))
        if self.bus.wants(PacketReceived):
            self.bus.emit(PacketReceived(self.dev, packet))

    def on_events(self, session: DeviceSession, packets: Sequence[Packet]) -> None:
        """`on_event` for a run of event packets from one serial read (the batch path,
        `docs/architecture.md` §6.1): the values of a run of DS_EVENTs are recorded with
        one wall-clock time, then its `DatastreamUpdated` events, each followed by its
        `PacketReceived` (a `ReceivedRun`), go out in one `EventBus.emit_batch`. Any other
        packet, and a DS_EVENT that does not decode, ends the run and takes `on_event`."""
        if session.hello is not None and session.hello is not self.hello:
            self._adopt_hello(session.hello)  # events can arrive before on_online
        bus, dev, table = self.bus, self.dev, self._ds_by_index
        values, times, now = self.values, self.value_times, time.time()
        updates: list[DatastreamUpdated] = []
        raw, start = bus.wants(PacketReceived), 0  # the run is packets[start:i]
        for i, packet in enumerate(packets):
            payload = packet.payload
            known = table.get(payload[0]) if packet.type == _DS_EVENT and payload else None
            if known is not None:
                slug, ds, decode = known
                try:
                    value = decode(payload[1:])
                except ValueDecodeError:
                    known = None
            if known is None:  # not a DS_EVENT, or one on_event reports as malformed
                self._emit_run(updates, packets[start:i] if raw else ())
                updates, start = [], i + 1
                self.on_event(session, packet)
                continue
            values[slug] = value
            times[slug] = now
            updates.append(_make(DatastreamUpdated, (dev, slug, ds, value, now)))
        self._emit_run(updates, (packets[start:] if start else packets) if raw else ())

    def _emit_run(self, updates: list[DatastreamUpdated], packets: Sequence[Packet]) -> None:
        counts = self._type_counts
        counts[_DS_EVENT] = counts.get(_DS_EVENT, 0) + len(updates)
        self.bus.emit_batch(updates, ReceivedRun(self.dev, packets) if packets else ())

    def on_text(self, session: DeviceSession, line: TextLine) -> None:
        """Emit a line the sketch printed, at most `LOG_LINES_PER_S` per second after a
        burst of `LOG_BURST` (`docs/serial-text.md`)."""
        if not self.text_limiter.allow():
            if self.text_limiter.dropped == 1 or self.text_limiter.dropped % 1000 == 0:
                self.log.info(
                    "board prints faster than its text lines are carried: lines dropped",
                    dropped=self.text_limiter.dropped,
                )
            return
        self.log.debug("board printed", text=line.text)
        self.bus.emit(TextPrinted(self.dev, line.text))

    def _adopt_hello(self, hello: HelloResp) -> None:
        self.hello = hello
        self.ds_by_slug = datastream_slugs(hello.datastreams)
        self.slug_by_index = {ds.index: slug for slug, ds in self.ds_by_slug.items()}
        self._ds_by_index = {
            ds.index: (slug, ds, value_decoder(ds)) for slug, ds in self.ds_by_slug.items()
        }

    def _on_ds_event(self, packet: Packet) -> None:
        session = self.session
        if session is not None and session.hello is not None and session.hello is not self.hello:
            # Events can arrive during the handshake, before on_online.
            self._adopt_hello(session.hello)
        # `parse_ds_event` inlined (`[ds_index u8][value…]`): this runs once per DS_EVENT.
        payload = packet.payload
        if not payload:
            raise PayloadDecodeError("DS_EVENT payload is empty")
        known = self._ds_by_index.get(payload[0])
        if known is None:
            self.log.debug("DS_EVENT for an undeclared datastream", index=payload[0])
            return
        slug, ds, decode = known
        self.set_value(slug, ds, decode(payload[1:]))

    def set_value(self, slug: str, ds: DatastreamDescriptor, value: DatastreamValue) -> None:
        """Record a datastream's value and emit `DatastreamUpdated`."""
        now = time.time()
        self.values[slug] = value
        self.value_times[slug] = now
        self.bus.emit(DatastreamUpdated(self.dev, slug, ds, value, now))

    # ---- datastream operations ------------------------------------------------------------

    def datastream(self, slug: str) -> DatastreamDescriptor:
        """The datastream of that slug. Raises ConduytCapabilityError `UNKNOWN_DATASTREAM`
        (ConduytDisconnectedError before the first handshake)."""
        self.require_hello()
        ds = self.ds_by_slug.get(slug)
        if ds is None:
            known = ", ".join(sorted(self.ds_by_slug)) or "none"
            raise ConduytCapabilityError(
                f"datastream '{slug}' does not exist on board '{self.dev}' (datastreams: {known})",
                ErrorName.UNKNOWN_DATASTREAM,
            )
        return ds

    def encode(self, ds: DatastreamDescriptor, value: DatastreamValue) -> bytes:
        """`value` encoded for `ds` (`docs/protocol.md` §5.4) with the board's string
        encoding. Raises ConduytCapabilityError `OUT_OF_RANGE`."""
        try:
            return encode_value(ds, value, StringEncoding(self.config.string_encoding))
        except ValueEncodeError as exc:
            raise ConduytCapabilityError(str(exc), ErrorName.OUT_OF_RANGE) from None

    async def write_datastream(self, slug: str, value: DatastreamValue) -> DatastreamValue:
        """DS_WRITE `value` to a writable datastream; on ACK record it (and keep it for
        the replay when the datastream is retained) and emit `DatastreamUpdated`. Returns
        the value as the board holds it (float32 rounding, integers as `int`).

        Raises ConduytCapabilityError (UNKNOWN_DATASTREAM, DATASTREAM_READONLY,
        OUT_OF_RANGE, PAYLOAD_TOO_LARGE), ConduytNAKError, ConduytTimeoutError,
        ConduytDisconnectedError.
        """
        ds = self.datastream(slug)
        if not ds.writable:
            raise ConduytCapabilityError(
                f"datastream '{ds.name}' is read-only", ErrorName.DATASTREAM_READONLY
            )
        raw = self.encode(ds, value)
        session = self.require_session()
        # session.request refuses a payload over the board's limit (PAYLOAD_TOO_LARGE).
        await session.request(PacketType.DS_WRITE, ds_write(ds.index, raw))
        if ds.known_type is DatastreamType.FLOAT32:
            value = shortest_float32(float(value))
        elif isinstance(value, float) and ds.known_type is not None and ds.known_type.is_integer:
            value = int(value)
        self.written(slug, ds, value)
        return value

    def written(self, slug: str, ds: DatastreamDescriptor, value: DatastreamValue) -> None:
        """A DS_WRITE of `value` was ACKed (typed or raw): record, emit, keep for replay."""
        self.set_value(slug, ds, value)
        if ds.retain:
            self.replay[slug] = value

    # ---- commands ---------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue a command for this board's worker; refused at once with `BUSY` while
        `COMMAND_QUEUE_LIMIT` commands wait."""
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            job.failed(
                self,
                ConduytCapabilityError(
                    f"board '{self.dev}' has {COMMAND_QUEUE_LIMIT} commands waiting; try later",
                    ErrorName.BUSY,
                ),
            )

    async def run_commands(self) -> None:
        """The board's command worker: executes queued commands in order, forever."""
        while True:
            job = await self._queue.get()
            await self.execute(job)

    async def execute(self, job: Job) -> None:
        """Execute one command and report its outcome through the job."""
        started = time.monotonic()
        try:
            if job.retained:
                raise ConduytForbiddenError(
                    "retained command ignored: commands must not be published with the "
                    "retain flag (a stale retained command would re-run on every restart)",
                    ErrorName.RETAINED_COMMAND,
                )
            if self.config.read_only:
                raise ConduytForbiddenError(
                    f"board '{self.dev}' is configured read_only: commands are refused",
                    ErrorName.READ_ONLY,
                )
            await self._wait_for_handshake()
            result = await job.run(self)
        except ConduytCommandError as exc:
            job.failed(self, exc)
            return
        except Exception as exc:  # a handler bug must not kill the board's worker
            self.log.exception("command handler failed", command=job.label)
            job.failed(self, ConduytInternalError(f"internal error: {exc}"))
            return
        self.log.debug(
            "command done", command=job.label, ms=round((time.monotonic() - started) * 1000, 1)
        )
        job.succeeded(self, result)

    async def _wait_for_handshake(self) -> None:
        """Hold a command while the board's handshake is under way (after a broker
        reconnect, commands queued by the broker arrive at once; an Uno resets when its
        port opens and answers HELLO a second or two later). Bounded by the time the
        handshake may take; a board that is offline (not connecting) is not waited for."""
        session = self.session
        if session is None or session.online:
            return
        deadline = time.monotonic() + session.handshake_budget_s
        while session.state is SessionState.CONNECTING and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await self._online.wait()

    def report_failure(self, label: str, error: ConduytError, transaction: Any = None) -> None:
        """A command that came in by some convention (a Homie `/set`, a Sparkplug DCMD)
        was refused or failed: emit `CommandFailed`, which the Conduyt layout reports on
        `{base}/{dev}/error` and records in `errors`."""
        self.bus.emit(CommandFailed(self.dev, label, error, transaction))

    # ---- replay -------------------------------------------------------------------------------

    def seed_replay(self, slug: str, parse: SeedParser) -> None:
        """A value for a writable retained datastream found at start-up (the bridge keeps
        nothing on disk: the broker is its store), adopted at the next handshake unless
        the bridge writes that datastream itself before."""
        self.seeds[slug] = parse

    async def replay_retained(self, session: DeviceSession) -> None:
        """Handshake hook: write the last value written through the bridge to each writable
        retained datastream again (the firmware stores nothing, `docs/protocol.md` §6.2)."""
        hello = session.hello
        if hello is None:
            return
        if session.board_changed:
            # Another board or firmware: the old values mean nothing to it.
            self.replay.clear()
            self.seeds.clear()
            return
        if self.config.read_only:
            return  # a read_only board receives no command, replays included
        slugs = datastream_slugs(hello.datastreams)
        self._adopt_seeds(slugs)
        for slug in list(self.replay):
            value = self.replay.get(slug)
            if value is None:
                continue
            ds = slugs.get(slug)
            if ds is None or not ds.writable or not ds.retain:
                self.replay.pop(slug, None)
                continue
            try:
                raw = self.encode(ds, value)
                await session.request(PacketType.DS_WRITE, ds_write(ds.index, raw))
            except ConduytCommandError as exc:
                self.log.warning("replay failed", datastream=ds.name, error=describe_exception(exc))
                continue
            self.values[slug] = value
            self.log.info("replayed retained value", datastream=ds.name, value=value)

    def _adopt_seeds(self, slugs: dict[str, DatastreamDescriptor]) -> None:
        seeds, self.seeds = self.seeds, {}
        for slug, parse in seeds.items():
            ds = slugs.get(slug)
            if ds is None or not ds.writable or not ds.retain or slug in self.replay:
                continue
            try:
                value = parse(ds)
                self.encode(ds, value)
            except ConduytCommandError:
                continue
            self.replay[slug] = value


__all__ = ["COMMAND_QUEUE_LIMIT", "Board", "Job", "SeedParser"]
