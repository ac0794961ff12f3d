"""`device.pin(n)`: one pin of a board, checked against its HELLO_RESP before anything is
sent (`docs/protocol.md` §4.2 PIN_* commands, §5.2 capability bits, §5.3 modes)."""

from __future__ import annotations

import re

from conduyt_bridge.device.board_context import BoardContext, PinSubscription
from conduyt_bridge.device.capabilities import (
    MODE_NAMES,
    check_pin_read,
    check_pin_write,
    check_subscribe,
    check_subscription_slot,
    infer_max_subscriptions,
    mode_name,
    parse_mode_name,
    parse_pin_ref,
    read_is_analog,
    require_mode,
    require_pin,
)
from conduyt_bridge.errors import ConduytCapabilityError, ConduytPayloadError, ErrorName
from conduyt_bridge.protocol.commands import (
    parse_pin_value,
    pin_mode,
    pin_read,
    pin_subscribe,
    pin_unsubscribe,
    pin_write,
)
from conduyt_bridge.protocol.constants import Capability, PacketType, PinMode, SubscribeMode
from conduyt_bridge.protocol.hello import HelloResp

_ANALOG_NAME = re.compile(r"[Aa](\d+)")

PinRef = int | str
"""A pin as the caller names it: the HELLO_RESP index (`13`, `"13"`) or an analog name
(`"A0"` = the first pin with ANALOG_IN, e.g. 14 on an Uno, `docs/protocol.md` §6.1)."""


def resolve_pin(hello: HelloResp, ref: PinRef) -> int:
    """The HELLO_RESP index of pin `ref`.

    Raises ConduytCapabilityError `INVALID_PIN` for a name that is neither a number nor
    `A<n>` of an existing analog input (`pin A3 does not exist: this board has 2 analog
    inputs (A0 = 4, A1 = 5)`).
    """
    if isinstance(ref, bool):
        raise ConduytCapabilityError(f"pin {ref!r} is not a pin number", ErrorName.INVALID_PIN)
    if isinstance(ref, int):
        return ref
    text = ref.strip()
    match = _ANALOG_NAME.fullmatch(text)
    if match is None:
        return parse_pin_ref(hello, text)
    analog = [p.pin for p in hello.pins if p.capabilities & Capability.ANALOG_IN]
    channel = int(match.group(1))
    if channel >= len(analog):
        names = ", ".join(f"A{i} = {p}" for i, p in enumerate(analog)) or "none"
        raise ConduytCapabilityError(
            f"pin {text} does not exist: this board has {len(analog)} analog inputs ({names})",
            ErrorName.INVALID_PIN,
        )
    return analog[channel]


def parse_pin_mode(mode: str | PinMode) -> PinMode:
    """A pin mode from its name (`"output"`, `"PWM"`) or a `PinMode`.

    Raises ConduytPayloadError `BAD_MODE` for an unknown name.
    """
    if isinstance(mode, PinMode):
        return mode
    parsed = parse_mode_name(mode) if isinstance(mode, str) else None
    if parsed is None:
        raise ConduytPayloadError(
            f"unknown pin mode {mode!r}: expected {', '.join(MODE_NAMES.values())}",
            ErrorName.BAD_MODE,
        )
    return parsed


class Pin:
    """One pin of the board behind a `ConduytDevice` (conduyt-py's pin proxy, plus checks).

    Every method checks the pin against the board's HELLO_RESP first and raises
    `ConduytCapabilityError` without sending anything when the board cannot do it; then
    it may raise `ConduytDisconnectedError`, `ConduytTimeoutError` or `ConduytNAKError`.
    Values: digital levels 0/1, PWM duty cycles 0..255, analog readings in ADC counts.
    """

    def __init__(self, context: BoardContext, ref: PinRef) -> None:
        self._context = context
        self._ref = ref

    def __repr__(self) -> str:
        return f"Pin({self._ref!r})"

    @property
    def number(self) -> int:
        """The HELLO_RESP pin index (`"A0"` resolved). Raises ConduytDisconnectedError
        for an analog name before the first handshake, ConduytCapabilityError for a name
        the board does not have."""
        if isinstance(self._ref, int) and not isinstance(self._ref, bool):
            return self._ref
        return resolve_pin(self._context.require_hello(), self._ref)

    @property
    def current_mode(self) -> str | None:
        """The mode set through this device (`"output"`), None if none was set."""
        mode = self._context.pin_modes.get(self.number)
        return mode_name(mode) if mode is not None else None

    def _checked(self) -> tuple[HelloResp, int]:
        hello = self._context.require_hello()
        pin = resolve_pin(hello, self._ref)
        require_pin(hello, pin)
        return hello, pin

    async def mode(self, mode: str | PinMode) -> Pin:
        """Set the pin's mode (PIN_MODE, §4.2): `"input"`, `"output"`, `"pwm"`, `"analog"`
        or `"input_pullup"`; returns the pin, as conduyt-py does.

        Raises ConduytPayloadError `BAD_MODE` (unknown name), ConduytCapabilityError
        `INVALID_PIN` or `PIN_MODE_UNSUPPORTED` (`pin 4 supports input, analog,
        input_pullup; not pwm (pwm pins: 1, 2)`), before anything is sent; then
        ConduytDisconnectedError, ConduytTimeoutError or ConduytNAKError.
        """
        wanted = parse_pin_mode(mode)
        hello, pin = self._checked()
        require_mode(hello, pin, wanted)
        await self._context.request(PacketType.PIN_MODE, pin_mode(pin, wanted))
        self._context.pin_modes[pin] = wanted
        return self

    async def write(self, value: int) -> None:
        """Write a digital level (0/1) or, on a pin in pwm mode or for values 2..255, a PWM
        duty cycle (PIN_WRITE with its mode byte, §4.2).

        Raises ConduytPayloadError `BAD_VALUE` (not an integer), ConduytCapabilityError
        `INVALID_PIN`, `PIN_MODE_UNSUPPORTED`, `WRONG_PIN_MODE` (a pin in an input mode)
        or `OUT_OF_RANGE`, before anything is sent.
        """
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int):
            raise ConduytPayloadError(
                f"pin write takes an integer, got {value!r}", ErrorName.BAD_VALUE
            )
        hello, pin = self._checked()
        current = self._context.pin_modes.get(pin)
        pwm = current is PinMode.PWM or (current is not PinMode.OUTPUT and value > 1)
        mode = check_pin_write(hello, pin, value, pwm, current)
        await self._context.request(PacketType.PIN_WRITE, pin_write(pin, value, mode))

    async def read(self, mode: str | PinMode | None = None) -> int:
        """Read the pin (PIN_READ, §4.2): 0/1, or ADC counts for an analog read.

        `mode` `"analog"` (or `PinMode.ANALOG`) forces an analog read, `"digital"` or any
        other mode name or `PinMode` a digital one; None reads analog for an `"A<n>"` pin,
        a pin set to analog mode or with an active subscription, and otherwise lets the
        board use the pin's stored mode.

        Raises ConduytPayloadError `BAD_MODE`, ConduytCapabilityError `INVALID_PIN` or
        `PIN_MODE_UNSUPPORTED` (analog read of a pin without ANALOG_IN), before anything
        is sent.
        """
        hello, pin = self._checked()
        current = self._context.pin_modes.get(pin)
        if mode is None:
            named_analog = isinstance(self._ref, str) and _ANALOG_NAME.fullmatch(self._ref.strip())
            capability = hello.pins[pin]
            analog = bool(named_analog) or read_is_analog(
                capability, current, analog_poll=pin in self._context.subscriptions
            )
            explicit: PinMode | None = PinMode.ANALOG if analog else None
        else:
            digital = isinstance(mode, str) and mode.strip().lower() == "digital"
            wanted = PinMode.INPUT if digital else parse_pin_mode(mode)
            analog = wanted is PinMode.ANALOG
            explicit = PinMode.ANALOG if analog else PinMode.INPUT
        check_pin_read(hello, pin, analog)
        reply = await self._context.request(PacketType.PIN_READ, pin_read(pin, explicit))
        return parse_pin_value(reply.payload).value

    async def analog_read(self) -> int:
        """Read the pin's ADC, counts (0..1023 on 10 bits). Raises as `read`."""
        return await self.read("analog")

    async def digital_read(self) -> int:
        """Read the pin's digital level, 0 or 1. Raises as `read`."""
        return await self.read("digital")

    async def subscribe(self, interval_ms: int = 100, threshold: int = 0) -> None:
        """Have the board push the pin's ADC reading (PIN_SUBSCRIBE ANALOG_POLL, §4.2)
        every `interval_ms` ms when it moved by at least `threshold` counts; the readings
        arrive as `PinEvent`s in `device.events()`. Only ANALOG_POLL fires on the firmware
        (Q11). Replayed after an automatic reconnect.

        Raises ConduytCapabilityError `INVALID_PIN`, `PIN_MODE_UNSUPPORTED` (no
        ANALOG_IN), `OUT_OF_RANGE` or `SUB_LIMIT_REACHED` (slots leak until RESET, Q6),
        before anything is sent.
        """
        hello, pin = self._checked()
        check_subscribe(hello, pin, SubscribeMode.ANALOG_POLL, interval_ms, threshold)
        context = self._context
        new_slot = pin not in context.subscriptions
        if new_slot:
            limit = infer_max_subscriptions(hello)
            check_subscription_slot(context.slots_used, limit, hello.max_payload)
        payload = pin_subscribe(pin, SubscribeMode.ANALOG_POLL, interval_ms, threshold)
        await context.request(PacketType.PIN_SUBSCRIBE, payload)
        context.slots_used += int(new_slot)
        context.subscriptions[pin] = PinSubscription(interval_ms, threshold)

    async def unsubscribe(self) -> None:
        """Stop the pin's subscription (PIN_UNSUBSCRIBE, §4.2); its slot stays taken until
        the next RESET (Q6).

        Raises ConduytCapabilityError `INVALID_PIN` (also when no subscription set
        through this device runs on the pin: the board would NAK it), before anything is
        sent.
        """
        _, pin = self._checked()
        if pin not in self._context.subscriptions:
            raise ConduytCapabilityError(
                f"pin {pin} has no subscription to stop", ErrorName.INVALID_PIN
            )
        await self._context.request(PacketType.PIN_UNSUBSCRIBE, pin_unsubscribe(pin))
        del self._context.subscriptions[pin]
