"""A board's pins as the bridge knows them: modes set through it, subscriptions, the
board's subscription slots and the bridge's own edge polling (`docs/topics.md` §4).

What the bridge supplies that the firmware cannot:

- **Validation** before anything is sent (the firmware checks no pin number or capability,
  `docs/protocol.md` Q12): `conduyt_bridge.device.capabilities`.
- **Mode memory.** Each pin's mode, as set through the bridge (typed or raw PIN_MODE), is
  replayed after every handshake, because a board forgets modes when it reboots. A pin
  whose mode was never set through this bridge process may be written according to its
  capability bits alone (0/1 needs DIGITAL_OUT, 2..255 PWM_OUT), the firmware's own rule
  for a PIN_WRITE without a mode byte; a pin known to be an input is never written.
- **Reads say what they are**: analog (mode byte 3) in analog mode, while an analog_poll
  subscription runs on the pin, and on an ADC-only pin of unknown mode; else digital.
- **Writes always carry the mode byte** (OUTPUT for a level, PWM for a duty, §4.2).
- **Edge subscriptions.** The firmware accepts CHANGE/RISING/FALLING but never fires them
  (Q11); the bridge polls such pins itself (PIN_READ every `interval_ms`, at least 20 ms)
  and emits a `PinValue(edge=True)` on the matching edge (`change` also emits the first
  reading). These use no board subscription slot.
- **Slot accounting.** ANALOG_POLL subscriptions run on the board; its slots leak until
  RESET (Q6), so slots taken since the last RESET are counted and `SUB_LIMIT_REACHED` is
  raised before the board would NAK (limit inferred from max_payload, §6.5).
- **Re-application.** After every handshake (which RESETs the board) the config's
  subscriptions are applied, then those set since the bridge started (these win).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from conduyt_bridge.core.config import PinSubscriptionConfig
from conduyt_bridge.core.events import BoardEvent, PinValue
from conduyt_bridge.device.capabilities import (
    SUBSCRIBE_MODE_NAMES,
    check_pin_read,
    check_pin_write,
    check_subscribe,
    check_subscription_slot,
    infer_max_subscriptions,
    read_is_analog,
    require_mode,
    require_pin,
)
from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.errors import (
    ConduytCommandError,
    ConduytDisconnectedError,
    ConduytNAKError,
    ConduytPayloadError,
    ConduytTimeoutError,
    ErrorName,
    describe_exception,
)
from conduyt_bridge.protocol.commands import (
    parse_pin_value,
    pin_mode,
    pin_read,
    pin_subscribe,
    pin_unsubscribe,
    pin_write,
)
from conduyt_bridge.protocol.constants import ErrorCode, PacketType, PinMode, SubscribeMode
from conduyt_bridge.protocol.errors import PayloadDecodeError
from conduyt_bridge.protocol.hello import HelloResp

log = structlog.stdlib.get_logger(__name__)

Origin = Literal["config", "topic", "raw"]
"""Who asked for a subscription: the config file, a command (typed topic or library
call), a raw packet."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One pin subscription: board-side ANALOG_POLL, or bridge-polled change/rising/falling.

    `interval_ms` in ms; `threshold` in raw ADC counts (analog_poll only).
    """

    pin: int
    mode: SubscribeMode
    interval_ms: int = 100
    threshold: int = 0
    origin: Origin = "topic"

    def describe(self) -> dict[str, Any]:
        """JSON form: `{"mode": "analog_poll", "interval_ms": 500, "threshold": 4}`."""
        return {
            "mode": SUBSCRIBE_MODE_NAMES[self.mode],
            "interval_ms": self.interval_ms,
            "threshold": self.threshold,
        }


class TaskSet:
    """Background tasks (edge polls), cancelled when the bridge stops.

    `run` is installed as a background job of the bridge: it lives in the bridge's TaskGroup
    and cancels every task it spawned when that group is torn down, so no poll outlives
    the bridge.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start `coro` as a tracked task."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self) -> None:
        """Wait forever; on cancellation cancel and await every tracked task."""
        try:
            await asyncio.Event().wait()
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class PinState:
    """Pin state of one board as the bridge knows it, and the pin operations.

    State: `modes` (set through the bridge), `active` subscriptions by pin, `board_active`
    (pins with an ANALOG_POLL running on the board), `slots_used` since the last RESET,
    `overrides` (subscriptions set through topics, re-applied after handshakes).
    """

    def __init__(
        self,
        dev: str,
        config_pins: Sequence[PinSubscriptionConfig],
        online: Callable[[], tuple[DeviceSession, HelloResp]],
        emit: Callable[[BoardEvent], None],
        tasks: TaskSet,
    ) -> None:
        self.dev = dev
        self._online = online
        self._emit = emit
        self.tasks = tasks
        self.config_subs: list[Subscription] = [
            Subscription(
                s.pin,
                {v: k for k, v in SUBSCRIBE_MODE_NAMES.items()}[s.mode],
                s.interval_ms,
                s.threshold,
                "config",
            )
            for s in config_pins
        ]
        self.modes: dict[int, PinMode] = {}
        self.overrides: dict[int, Subscription] = {}
        self.active: dict[int, Subscription] = {}
        self.board_active: set[int] = set()
        self.slots_used = 0
        self.max_subscriptions = 8
        self._polls: dict[int, asyncio.Task[None]] = {}
        self._identity: tuple[object, ...] | None = None
        self.log = log.bind(device=dev)

    # ---- hooks -------------------------------------------------------------------------

    async def on_handshake(self, session: DeviceSession) -> None:
        """Handshake hook, run right after the session's RESET + STREAM_STOP
        (`docs/architecture.md` §4): replay the modes set through the bridge, then apply the
        config's subscriptions and those set through topics. Raises ConduytDisconnectedError only
        (other failures are logged per pin and skipped)."""
        hello = session.hello
        if hello is None:
            return
        if self._identity is not None and self._identity != hello.identity():
            # Another board or firmware: what was set for the old one does not apply.
            self.modes.clear()
            self.overrides.clear()
        self._identity = hello.identity()
        self.stop_polls()
        self.active.clear()
        self.board_active.clear()
        self.slots_used = 0  # the handshake just sent RESET, which frees every slot (Q6)
        self.max_subscriptions = infer_max_subscriptions(hello)
        for pin, mode in list(self.modes.items()):
            try:
                require_mode(hello, pin, mode)
                await session.request(PacketType.PIN_MODE, pin_mode(pin, mode))
            except ConduytDisconnectedError:
                raise
            except ConduytCommandError as exc:
                self.log.warning("pin mode not restored", pin=pin, error=describe_exception(exc))
                self.modes.pop(pin, None)
        desired = {s.pin: s for s in self.config_subs} | self.overrides
        for sub in desired.values():
            try:
                await self.activate(session, hello, sub)
            except ConduytDisconnectedError:
                raise
            except ConduytCommandError as exc:
                self.log.warning(
                    "pin subscription not applied",
                    pin=sub.pin,
                    origin=sub.origin,
                    error=describe_exception(exc),
                )

    async def on_offline(self) -> None:
        """Offline hook: stop the bridge's polls (restarted by the next handshake)."""
        self.stop_polls()
        self.board_active.clear()

    # ---- subscriptions -------------------------------------------------------------------

    async def activate(self, session: DeviceSession, hello: HelloResp, sub: Subscription) -> None:
        """Put `sub` in force on its pin, replacing what was there.

        Raises ConduytCapabilityError (checks, SUB_LIMIT_REACHED), ConduytNAKError,
        ConduytTimeoutError,
        ConduytDisconnectedError.
        """
        check_subscribe(hello, sub.pin, sub.mode, sub.interval_ms, sub.threshold)
        pin = sub.pin
        if sub.mode is SubscribeMode.ANALOG_POLL:
            new_slot = pin not in self.board_active  # an active one is updated in place
            if new_slot:
                check_subscription_slot(self.slots_used, self.max_subscriptions, hello.max_payload)
            self.stop_poll(pin)
            payload = pin_subscribe(pin, sub.mode, sub.interval_ms, sub.threshold)
            try:
                await session.request(PacketType.PIN_SUBSCRIBE, payload)
            except ConduytNAKError as exc:
                if exc.code == ErrorCode.SUB_LIMIT_REACHED:
                    # The board has fewer slots than inferred: believe it until RESET.
                    self.slots_used = max(self.slots_used, self.max_subscriptions)
                self.active.pop(pin, None)
                raise
            except ConduytTimeoutError:
                if new_slot:
                    self.slots_used += 1  # the board may have taken it
                self.active.pop(pin, None)
                raise
            if new_slot:
                self.slots_used += 1
            self.board_active.add(pin)
        else:
            if pin in self.board_active:
                await self._board_unsubscribe(session, pin, strict=False)
            self.start_poll(session, sub)
        self.active[pin] = sub

    async def deactivate(self, session: DeviceSession, pin: int, *, strict: bool = False) -> bool:
        """Stop the subscription on `pin`; False if there was none.

        `strict` re-raises a board NAK of the PIN_UNSUBSCRIBE (raw clients see the truth).
        """
        had = self.active.pop(pin, None) is not None
        self.stop_poll(pin)
        if pin in self.board_active:
            had = True
            await self._board_unsubscribe(session, pin, strict=strict)
        return had

    async def _board_unsubscribe(self, session: DeviceSession, pin: int, *, strict: bool) -> None:
        try:
            await session.request(PacketType.PIN_UNSUBSCRIBE, pin_unsubscribe(pin))
        except ConduytNAKError as exc:
            # INVALID_PIN: the board had nothing active there (it rebooted unnoticed);
            # the pin is off either way. The slot stays taken until RESET (Q6).
            self.board_active.discard(pin)
            if strict or exc.code != ErrorCode.INVALID_PIN:
                raise
            return
        self.board_active.discard(pin)

    async def after_reset(self, session: DeviceSession, hello: HelloResp) -> None:
        """A raw RESET was ACKed: the board freed every slot and dropped its ANALOG_POLL
        subscriptions (Q16). Raw clients' subscriptions go with them; the bridge's own
        (config and topic) ANALOG_POLL subscriptions are applied again."""
        self.board_active.clear()
        self.slots_used = 0
        for pin, sub in list(self.active.items()):
            if sub.origin == "raw":
                self.active.pop(pin, None)
                self.stop_poll(pin)
        for sub in [s for s in self.active.values() if s.mode is SubscribeMode.ANALOG_POLL]:
            try:
                await self.activate(session, hello, sub)
            except ConduytDisconnectedError:
                raise
            except ConduytCommandError as exc:
                self.log.warning(
                    "pin subscription not re-applied after RESET", error=describe_exception(exc)
                )

    # ---- bridge-side edge polling -------------------------------------------------------

    def start_poll(self, session: DeviceSession, sub: Subscription) -> None:
        """(Re)start the bridge's poll of `sub.pin` for change/rising/falling."""
        self.stop_poll(sub.pin)
        self._polls[sub.pin] = self.tasks.spawn(
            self._poll(session, sub), name=f"pin-poll-{self.dev}-{sub.pin}"
        )

    def stop_poll(self, pin: int) -> None:
        """Cancel the poll of `pin`, if any."""
        task = self._polls.pop(pin, None)
        if task is not None:
            task.cancel()

    def stop_polls(self) -> None:
        """Cancel every poll of this board."""
        for pin in list(self._polls):
            self.stop_poll(pin)

    @property
    def polled_pins(self) -> list[int]:
        """Pins the bridge is polling now."""
        return sorted(p for p, t in self._polls.items() if not t.done())

    async def _poll(self, session: DeviceSession, sub: Subscription) -> None:
        """PIN_READ (digital, explicit mode byte so the board's remembered mode never makes
        it an analogRead) every interval; publish 0/1 on the edges `sub.mode` asks for."""
        interval = sub.interval_ms / 1000
        last: int | None = None
        request = pin_read(sub.pin, PinMode.INPUT)
        while True:
            try:
                reply = await session.request(PacketType.PIN_READ, request)
                value = 1 if parse_pin_value(reply.payload).value else 0
            except (ConduytCommandError, PayloadDecodeError) as exc:
                self.log.debug("pin poll failed", pin=sub.pin, error=describe_exception(exc))
                await asyncio.sleep(interval)
                continue
            if last is None:
                fire = sub.mode is SubscribeMode.CHANGE
            else:
                fire = value != last and (
                    sub.mode is SubscribeMode.CHANGE
                    or (sub.mode is SubscribeMode.RISING and value == 1)
                    or (sub.mode is SubscribeMode.FALLING and value == 0)
                )
            last = value
            if fire:
                self.publish_edge(sub.pin, value)
            await asyncio.sleep(interval)

    def publish_edge(self, pin: int, value: int) -> None:
        """An edge found by polling: a `PinValue` event with `edge=True`."""
        self._emit(PinValue(self.dev, pin, value, edge=True))

    # ---- operations (each validated against HELLO_RESP before anything is sent) -------

    async def set_mode(self, pin: int, mode: PinMode) -> None:
        """PIN_MODE `[pin][mode]`; the mode is remembered on ACK and replayed after every
        handshake (`docs/topics.md` §4).

        Raises ConduytCapabilityError (INVALID_PIN, PIN_MODE_UNSUPPORTED), ConduytNAKError,
        ConduytTimeoutError, ConduytDisconnectedError.
        """
        session, hello = self._online()
        require_mode(hello, pin, mode)
        await session.request(PacketType.PIN_MODE, pin_mode(pin, mode))
        self.modes[pin] = mode

    async def write(self, pin: int, raw: int | bool) -> tuple[int, PinMode]:
        """PIN_WRITE `[pin][value][OUTPUT|PWM]` after the range check for the pin's mode
        (pwm: 0..255, `True` = 255; output: 0/1; unknown mode: 0/1 digital, 2..255 PWM).
        Returns the value written and the mode byte sent.

        Raises ConduytCapabilityError (INVALID_PIN, PIN_MODE_UNSUPPORTED, WRONG_PIN_MODE,
        OUT_OF_RANGE), ConduytNAKError, ConduytTimeoutError, ConduytDisconnectedError.
        """
        session, hello = self._online()
        current = self.modes.get(pin)
        if isinstance(raw, bool):
            pwm = current is PinMode.PWM
            value = (255 if raw else 0) if pwm else int(raw)
        else:
            value = raw
            pwm = current is PinMode.PWM or value not in (0, 1)
        mode = check_pin_write(hello, pin, value, pwm, current)
        await session.request(PacketType.PIN_WRITE, pin_write(pin, value, mode))
        return value, mode

    async def read(self, pin: int) -> int:
        """PIN_READ `[pin][ANALOG]` in analog mode or while an analog_poll subscription runs
        on the pin (ANALOG_IN pins only: its `PinValue`s carry ADC counts then, and a
        digital 0/1 would break that series), else `[pin][INPUT]` (digitalRead). Emits a
        `PinValue` and returns the value (0/1 or ADC counts).

        Raises ConduytCapabilityError, ConduytNAKError, ConduytTimeoutError,
        ConduytDisconnectedError, ConduytPayloadError (`BAD_REPLY` for a short
        PIN_READ_RESP).
        """
        session, hello = self._online()
        analog = read_is_analog(
            require_pin(hello, pin), self.modes.get(pin), analog_poll=self.analog_polled(pin)
        )
        check_pin_read(hello, pin, analog)
        reply = await session.request(
            PacketType.PIN_READ, pin_read(pin, PinMode.ANALOG if analog else PinMode.INPUT)
        )
        try:
            value = parse_pin_value(reply.payload).value
        except PayloadDecodeError as exc:
            raise ConduytPayloadError(
                f"board sent a malformed PIN_READ_RESP: {exc}", ErrorName.BAD_REPLY
            ) from None
        # The reply's pin field is not trusted (native builds answer pin 0, Q13).
        self._emit(PinValue(self.dev, pin, value))
        return value

    async def subscribe(self, pin: int, sub: Subscription | None) -> None:
        """Put `sub` in force on `pin` (analog_poll → PIN_SUBSCRIBE; change/rising/falling
        → the bridge's own polling), or stop what runs there (`None`: PIN_UNSUBSCRIBE, no
        packet when nothing is active). Kept across handshakes.

        Raises ConduytCapabilityError (checks, SUB_LIMIT_REACHED), ConduytNAKError,
        ConduytTimeoutError, ConduytDisconnectedError.
        """
        session, hello = self._online()
        if sub is None:
            await self.deactivate(session, pin)
            self.overrides.pop(pin, None)
            return
        await self.activate(session, hello, sub)
        self.overrides[pin] = sub

    def analog_polled(self, pin: int) -> bool:
        """Whether an analog_poll subscription is in force on `pin` (its PIN_EVENTs put
        ADC counts on `pin/{n}`)."""
        sub = self.active.get(pin)
        return pin in self.board_active or (
            sub is not None and sub.mode is SubscribeMode.ANALOG_POLL
        )

    # ---- for raw packets ---------------------------------------------------------------

    def note_mode(self, pin: int, mode: PinMode) -> None:
        """A raw PIN_MODE was ACKed: remember the mode like a topic-set one."""
        self.modes[pin] = mode


__all__ = ["Origin", "PinState", "Subscription", "TaskSet"]
