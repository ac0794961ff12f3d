"""Pin checks against a board's HELLO_RESP: existence, modes, reads, writes, subscriptions.

The firmware checks no pin range or capability (`docs/protocol.md` §7 Q12), so the
bridge refuses before anything is sent (`docs/architecture.md` §5); every message says
what the board can do, e.g. `pin 4 supports input, output, input_pullup; not pwm (pwm
pins: 3, 5, 6, 9, 10, 11)`. Also the topic spellings of pin and subscribe modes, and the
pins a STREAM_START mask samples. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from conduyt_bridge.errors import ConduytCapabilityError, ErrorName
from conduyt_bridge.protocol.constants import (
    PIN_MODE_CAPABILITY,
    Capability,
    PinMode,
    SubscribeMode,
)
from conduyt_bridge.protocol.hello import HelloResp, PinCapability

__all__ = [
    "INPUT_MODES",
    "MIN_EDGE_INTERVAL_MS",
    "MODE_NAMES",
    "SUBSCRIBE_MODE_NAMES",
    "check_pin_read",
    "check_pin_write",
    "check_stream_mask",
    "check_subscribe",
    "check_subscription_slot",
    "infer_max_subscriptions",
    "mode_name",
    "parse_mode_name",
    "parse_pin_ref",
    "pins_with",
    "read_is_analog",
    "require_mode",
    "require_pin",
    "stream_pins",
]

MODE_NAMES: Mapping[PinMode, str] = {
    PinMode.INPUT: "input",
    PinMode.OUTPUT: "output",
    PinMode.PWM: "pwm",
    PinMode.ANALOG: "analog",
    PinMode.INPUT_PULLUP: "input_pullup",
}
"""Topic spelling of each pin mode (`pin/{n}/mode/set` payloads), §5.3."""

SUBSCRIBE_MODE_NAMES: Mapping[SubscribeMode, str] = {
    SubscribeMode.CHANGE: "change",
    SubscribeMode.RISING: "rising",
    SubscribeMode.FALLING: "falling",
    SubscribeMode.ANALOG_POLL: "analog_poll",
}
"""Topic spelling of each subscribe mode (`pin/{n}/subscribe/set`), §5.4."""

INPUT_MODES = frozenset({PinMode.INPUT, PinMode.INPUT_PULLUP, PinMode.ANALOG})
"""Modes in which a pin must not be written."""

MIN_EDGE_INTERVAL_MS = 20
"""Fastest bridge-side poll of a pin for change/rising/falling, ms (one PIN_READ each)."""


def mode_name(mode: PinMode) -> str:
    """`"input_pullup"` for PinMode.INPUT_PULLUP."""
    return MODE_NAMES[mode]


def parse_mode_name(text: str) -> PinMode | None:
    """The PinMode for a topic payload (`"PWM"`, `" input_pullup "`), None if unknown."""
    wanted = text.strip().lower()
    return next((m for m, name in MODE_NAMES.items() if name == wanted), None)


def pins_with(hello: HelloResp, cap: Capability) -> str:
    """The pins of the board with capability `cap`, as `3, 5, 6`, or `none`."""
    pins = [str(p.pin) for p in hello.pins if p.capabilities & cap]
    return ", ".join(pins) if pins else "none"


def require_pin(hello: HelloResp, pin: int) -> PinCapability:
    """Pin `pin` of the board (HELLO_RESP index, §6.1; Uno A0 = 14, §10 #24).

    Raises ConduytCapabilityError `INVALID_PIN`: `pin 42 does not exist: this board has 20 pins`.
    """
    found = hello.pin(pin)
    if found is None:
        raise ConduytCapabilityError(
            f"pin {pin} does not exist: this board has {hello.pin_count} pins",
            ErrorName.INVALID_PIN,
        )
    return found


def parse_pin_ref(hello: HelloResp, text: str) -> int:
    """The pin number in a topic level (`pin/{n}/...`): decimal digits only.

    Raises ConduytCapabilityError `INVALID_PIN` for anything else (`A0`, `-1`, `x`) or a pin the
    board does not have.
    """
    if not text.isdigit() or not text.isascii():
        raise ConduytCapabilityError(
            f"pin '{text}' does not exist: this board has {hello.pin_count} pins, numbered "
            f"0..{max(hello.pin_count - 1, 0)} (the HELLO_RESP index, e.g. A0 = 14 on an Uno)",
            ErrorName.INVALID_PIN,
        )
    pin = int(text)
    require_pin(hello, pin)
    return pin


def require_mode(hello: HelloResp, pin: int, mode: PinMode) -> PinCapability:
    """Pin `pin`, which must have the capability bit that `mode` needs (§5.2, §5.3):
    DIGITAL_IN for input/input_pullup, DIGITAL_OUT for output, PWM_OUT for pwm, ANALOG_IN
    for analog.

    Raises ConduytCapabilityError `INVALID_PIN` (no such pin) or `PIN_MODE_UNSUPPORTED`:
    `pin 4 supports input, output, input_pullup; not pwm (pwm pins: 3, 5, 6, 9, 10, 11)`.
    """
    p = require_pin(hello, pin)
    if not p.supports(mode):
        modes = ", ".join(mode_name(m) for m in p.modes) or "no pin mode"
        holders = pins_with(hello, PIN_MODE_CAPABILITY[mode])
        raise ConduytCapabilityError(
            f"pin {pin} supports {modes}; not {mode_name(mode)} "
            f"({mode_name(mode)} pins: {holders})",
            ErrorName.PIN_MODE_UNSUPPORTED,
        )
    return p


def check_pin_write(
    hello: HelloResp, pin: int, value: int, pwm: bool, current: PinMode | None
) -> PinMode:
    """Check a PIN_WRITE (§4.2) and return the mode byte to send with it.

    `pwm` True: a duty cycle 0..255 (`analogWrite`, needs PWM_OUT); False: a digital level
    0/1 (`digitalWrite`, needs DIGITAL_OUT). `current` is the pin's mode as set through the
    bridge, None if unknown: then only the capability bits are checked. A pin in an input
    mode (input, input_pullup, analog) is never written; a pin in output mode takes 0/1
    only. Sending the mode byte (PWM or OUTPUT) makes duty 1 a real PWM duty: without it
    the firmware treats 0/1 as digital and 2..255 as PWM.

    Raises ConduytCapabilityError `INVALID_PIN`, `PIN_MODE_UNSUPPORTED`, `WRONG_PIN_MODE`
    (`pin 13 is in input mode: set mode output first`) or `OUT_OF_RANGE`.
    """
    p = require_pin(hello, pin)
    if current in INPUT_MODES:
        writable = [m for m in (PinMode.OUTPUT, PinMode.PWM) if p.supports(m)]
        assert current is not None
        if not writable:
            modes = ", ".join(mode_name(m) for m in p.modes) or "no pin mode"
            raise ConduytCapabilityError(
                f"pin {pin} is in {mode_name(current)} mode and cannot be written: it "
                f"supports {modes}",
                ErrorName.WRONG_PIN_MODE,
            )
        options = " or ".join(mode_name(m) for m in writable)
        raise ConduytCapabilityError(
            f"pin {pin} is in {mode_name(current)} mode: set mode {options} first",
            ErrorName.WRONG_PIN_MODE,
        )
    if pwm:
        if current is PinMode.OUTPUT:
            raise ConduytCapabilityError(
                f"pin {pin} is in output mode and takes 0 or 1, got {value}"
                + ("; set mode pwm for a duty cycle 0..255" if p.supports(PinMode.PWM) else ""),
                ErrorName.OUT_OF_RANGE,
            )
        require_mode(hello, pin, PinMode.PWM)
        if not 0 <= value <= 255:
            where = "is in pwm mode and takes" if current is PinMode.PWM else "takes"
            raise ConduytCapabilityError(
                f"pin {pin} {where} a PWM duty cycle 0..255, got {value}", ErrorName.OUT_OF_RANGE
            )
        return PinMode.PWM
    require_mode(hello, pin, PinMode.OUTPUT)
    if value not in (0, 1):
        raise ConduytCapabilityError(
            f"pin {pin} takes 0 or 1 as a digital level, got {value}", ErrorName.OUT_OF_RANGE
        )
    return PinMode.OUTPUT


def read_is_analog(p: PinCapability, current: PinMode | None, *, analog_poll: bool = False) -> bool:
    """Whether a one-shot read of pin `p` is analog: while an analog_poll subscription runs
    on it (its `pin/{n}` topic carries ADC counts then, so a digital 0/1 would break the
    series), in analog mode, or when the mode is unknown and the pin has an ADC but no
    digital function. `analog_poll` only counts on an ANALOG_IN pin."""
    if analog_poll and p.capabilities & Capability.ANALOG_IN:
        return True
    if current is PinMode.ANALOG:
        return True
    digital = Capability.DIGITAL_IN | Capability.DIGITAL_OUT
    return (
        current is None
        and not p.capabilities & digital
        and bool(p.capabilities & Capability.ANALOG_IN)
    )


def check_pin_read(hello: HelloResp, pin: int, analog: bool) -> None:
    """Check a PIN_READ (§4.2): analog reads only on ANALOG_IN pins (an unguarded
    `analogRead` can hang an Uno R4), digital reads only on pins with a digital function.

    Raises ConduytCapabilityError `INVALID_PIN` or `PIN_MODE_UNSUPPORTED`.
    """
    p = require_pin(hello, pin)
    if analog:
        if not p.capabilities & Capability.ANALOG_IN:
            raise ConduytCapabilityError(
                f"pin {pin} has no analog input (analog pins: "
                f"{pins_with(hello, Capability.ANALOG_IN)})",
                ErrorName.PIN_MODE_UNSUPPORTED,
            )
        return
    if not p.capabilities & (Capability.DIGITAL_IN | Capability.DIGITAL_OUT):
        raise ConduytCapabilityError(
            f"pin {pin} cannot be read digitally", ErrorName.PIN_MODE_UNSUPPORTED
        )


def check_subscribe(
    hello: HelloResp, pin: int, mode: SubscribeMode, interval_ms: int, threshold: int
) -> None:
    """Check a pin subscription (§4.2 PIN_SUBSCRIBE, §5.4).

    analog_poll runs on the board and needs ANALOG_IN (the board's `analogRead` there is
    unguarded, Q12); interval 1..65535 ms, threshold 0..65535 ADC counts. change, rising
    and falling never fire on the firmware (Q11): the bridge polls the pin digitally
    instead, so they need DIGITAL_IN and an interval of 20..65535 ms.

    Raises ConduytCapabilityError `INVALID_PIN`, `PIN_MODE_UNSUPPORTED` or `OUT_OF_RANGE`.
    """
    p = require_pin(hello, pin)
    name = SUBSCRIBE_MODE_NAMES[mode]
    if mode is SubscribeMode.ANALOG_POLL:
        if not p.capabilities & Capability.ANALOG_IN:
            raise ConduytCapabilityError(
                f"pin {pin} has no analog input: analog_poll needs ANALOG_IN (analog pins: "
                f"{pins_with(hello, Capability.ANALOG_IN)})",
                ErrorName.PIN_MODE_UNSUPPORTED,
            )
        low = 1
    else:
        if not p.capabilities & Capability.DIGITAL_IN:
            raise ConduytCapabilityError(
                f"pin {pin} has no digital input: {name} needs DIGITAL_IN (digital input "
                f"pins: {pins_with(hello, Capability.DIGITAL_IN)})",
                ErrorName.PIN_MODE_UNSUPPORTED,
            )
        low = MIN_EDGE_INTERVAL_MS
    if not low <= interval_ms <= 0xFFFF:
        raise ConduytCapabilityError(
            f"{name} on pin {pin}: interval_ms must be {low}..65535, got {interval_ms}",
            ErrorName.OUT_OF_RANGE,
        )
    if not 0 <= threshold <= 0xFFFF:
        raise ConduytCapabilityError(
            f"{name} on pin {pin}: threshold must be 0..65535, got {threshold}",
            ErrorName.OUT_OF_RANGE,
        )


def infer_max_subscriptions(hello: HelloResp) -> int:
    """The board's CONDUYT_MAX_SUBSCRIPTIONS, which HELLO_RESP does not advertise.

    Inferred from max_payload (= CONDUYT_PACKET_BUF_SIZE) per the platform table of §6.5:
    128 → AVR → 8; 256 → SAMD (12) or "anything else" such as the Uno R4 (16): the smaller,
    12, so the bridge never promises a slot the board lacks; 512 → ESP32/RP2040/… → 16.
    Other values (custom `-D` builds): ≤ 128 → 8, ≤ 256 → 12, else 16.
    """
    m = hello.max_payload
    if m <= 128:
        return 8
    if m <= 256:
        return 12
    return 16


def check_subscription_slot(used: int, limit: int, max_payload: int) -> None:
    """Refuse a subscription that needs a new board slot when all are taken.

    The firmware frees slots only on RESET (quirk Q6), so `used` counts every slot taken
    since the last RESET. Raises ConduytCapabilityError `SUB_LIMIT_REACHED` before the board
    would NAK 0x0B.
    """
    if used >= limit:
        raise ConduytCapabilityError(
            f"all {limit} pin subscription slots of this board are used since its last "
            f"reset (the firmware frees them only on RESET, quirk Q6; {limit} slots "
            f"inferred from max_payload {max_payload})",
            ErrorName.SUB_LIMIT_REACHED,
        )


def stream_pins(hello: HelloResp, pin_mask: int) -> list[int]:
    """The pins a STREAM_START `pin_mask` samples (§4.2): bit p is `analogRead(p)`.

    On AVR (max_payload 128) p is the analog channel, i.e. the p-th ANALOG_IN pin (A0 = 14
    on an Uno); elsewhere p is the pin number itself. Bits with no ADC pin behind them
    map to -1.
    """
    bits = [p for p in range(16) if pin_mask >> p & 1]
    analog = [p.pin for p in hello.pins if p.capabilities & Capability.ANALOG_IN]
    if hello.max_payload and hello.max_payload <= 128:
        return [analog[b] if b < len(analog) else -1 for b in bits]
    return [b if hello.supports(b, PinMode.ANALOG) else -1 for b in bits]


def check_stream_mask(hello: HelloResp, pin_mask: int) -> None:
    """Every bit of a STREAM_START mask must land on an ADC pin: the firmware's
    `analogRead` there is unguarded and can hang a Renesas board (§4.2, Q12).

    Raises ConduytCapabilityError `PIN_MODE_UNSUPPORTED`.
    """
    bits = [p for p in range(16) if pin_mask >> p & 1]
    for bit, pin in zip(bits, stream_pins(hello, pin_mask), strict=True):
        if pin < 0:
            raise ConduytCapabilityError(
                f"STREAM_START bit {bit} has no analog input behind it (analog pins: "
                f"{pins_with(hello, Capability.ANALOG_IN)})",
                ErrorName.PIN_MODE_UNSUPPORTED,
            )
