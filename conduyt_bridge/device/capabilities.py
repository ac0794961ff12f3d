"""Validation of commands against a board's HELLO_RESP: pure functions, no I/O.

The firmware checks almost nothing (`docs/protocol.md` §7 Q12: no pin range or capability
checks; Q2: silent drops; §10 #15, #16), so the bridge refuses every command the board
cannot carry out *before* anything is sent (`docs/architecture.md` §5, "Validation at the
source"). Each function raises a typed error whose message says what the board can do:

- `ConduytCapabilityError` (report `"capability"`): the board cannot do it, e.g.
  `pin 4 supports input, output, input_pullup; not pwm (pwm pins: 3, 5, 6, 9, 10, 11)` or
  `pin 42 does not exist: this board has 20 pins`;
- `ConduytPayloadError` (report `"payload"`): the bytes/values do not have the command's shape;
- `ConduytForbiddenError` (report `"forbidden"`): configuration forbids it (`allow_ota`).

Typed MQTT topics (pins, modules) and raw packets (`cmd/{tt}`) run through the same
checks; `check_command` validates one raw command packet as a whole.

Board limits that HELLO_RESP does not advertise are inferred from `max_payload`
(§6.5): see `infer_max_subscriptions`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping

from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytForbiddenError,
    ConduytPayloadError,
    ErrorName,
)
from conduyt_bridge.protocol.constants import (
    OTA_TYPES,
    PIN_MODE_CAPABILITY,
    Capability,
    DatastreamType,
    PacketType,
    PinMode,
    SubscribeMode,
    type_name,
)
from conduyt_bridge.protocol.hello import DatastreamDescriptor, HelloResp, PinCapability
from conduyt_bridge.protocol.modules import (
    CATALOG,
    ArgSpec,
    CommandSpec,
    ModuleArgumentError,
    WireType,
    encode_args,
)

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

I2C_ADDRESS_MIN = 0x08
I2C_ADDRESS_MAX = 0x77
"""7-bit addresses the firmware accepts (§4.2); the rest are reserved by the I2C spec."""

_ARG_SIZE = {WireType.U8: 1, WireType.U16: 2, WireType.I32: 4, WireType.F32: 4}
_ARG_STRUCT = {WireType.U8: "<B", WireType.U16: "<H", WireType.I32: "<i", WireType.F32: "<f"}

_NO_PAYLOAD = frozenset(
    {
        PacketType.PING,
        PacketType.HELLO,
        PacketType.STREAM_STOP,
        PacketType.OTA_FINALIZE,
        PacketType.RESET,
    }
)


# ------------------------------------------------------------------------------ pins


def mode_name(mode: PinMode) -> str:
    """`"input_pullup"` for PinMode.INPUT_PULLUP."""
    return MODE_NAMES[mode]


def parse_mode_name(text: str) -> PinMode | None:
    """The PinMode for a topic payload (`"PWM"`, `" input_pullup "`), None if unknown."""
    wanted = text.strip().lower()
    return next((m for m, name in MODE_NAMES.items() if name == wanted), None)


def _pins_with(hello: HelloResp, cap: Capability) -> str:
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
            ErrorName.INVALID_PIN
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
        holders = _pins_with(hello, PIN_MODE_CAPABILITY[mode])
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
                f"{_pins_with(hello, Capability.ANALOG_IN)})",
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
                f"{_pins_with(hello, Capability.ANALOG_IN)})",
                ErrorName.PIN_MODE_UNSUPPORTED,
            )
        low = 1
    else:
        if not p.capabilities & Capability.DIGITAL_IN:
            raise ConduytCapabilityError(
                f"pin {pin} has no digital input: {name} needs DIGITAL_IN (digital input "
                f"pins: {_pins_with(hello, Capability.DIGITAL_IN)})",
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
            ErrorName.OUT_OF_RANGE
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


# ------------------------------------------------------------------------------ sizes


def check_payload_size(what: str, size: int, limit: int) -> None:
    """Refuse a command payload larger than the board can receive (§1.5).

    Raises ConduytCapabilityError `PAYLOAD_TOO_LARGE`.
    """
    if size > limit:
        raise ConduytCapabilityError(
            f"{what} payload of {size} bytes exceeds this board's limit of {limit} bytes",
            ErrorName.PAYLOAD_TOO_LARGE,
        )


def reply_payload_limit(hello: HelloResp) -> int:
    """Largest reply payload the board can send over a COBS link, bytes (§1.5 table).

    The encoded frame must fit the board's M + ⌊M/254⌋ + 2 byte COBS buffer: 121 for
    M = 128, 249 for 256, 505 for 512. Replies over it are never transmitted (the host
    would only see a timeout), so reads asking for more are refused.
    """
    m = hello.max_payload or 0xFFFF
    room = m + m // 254 + 2
    p = max(0, m - 7)
    while p > 0 and (8 + p) + (8 + p) // 254 + 1 > room:
        p -= 1
    return p


# ------------------------------------------------------------------------------ buses


def check_i2c_address(hello: HelloResp, address: int) -> None:
    """The board has an I2C bus and `address` is a usable 7-bit address (0x08..0x77).

    Raises ConduytCapabilityError `I2C_NOT_AVAILABLE`.
    """
    if hello.i2c_buses < 1:
        raise ConduytCapabilityError("this board has no I2C bus", ErrorName.I2C_NOT_AVAILABLE)
    if not I2C_ADDRESS_MIN <= address <= I2C_ADDRESS_MAX:
        raise ConduytCapabilityError(
            f"I2C address 0x{address:02x} is outside 0x08..0x77", ErrorName.I2C_NOT_AVAILABLE
        )


def check_read_count(hello: HelloResp, count: int) -> None:
    """A read of `count` bytes whose reply fits what the board can send (§1.5).

    Raises ConduytCapabilityError `PAYLOAD_TOO_LARGE` (count 0 → `OUT_OF_RANGE`).
    """
    limit = reply_payload_limit(hello)
    if count < 1:
        raise ConduytCapabilityError(
            "a read needs a count of at least 1 byte", ErrorName.OUT_OF_RANGE
        )
    if count > limit:
        raise ConduytCapabilityError(
            f"a read of {count} bytes does not fit this board's reply limit of {limit} bytes",
            ErrorName.PAYLOAD_TOO_LARGE,
        )


# ------------------------------------------------------------------------------ modules


def decode_module_args(spec: CommandSpec, data: bytes) -> dict[str, object]:
    """The argument values of raw MOD_CMD args bytes for `spec` (§8), checked by the
    catalog exactly like named arguments are (`encode_args`), so a raw packet and a typed
    `module/{mod}/{command}` topic pass the same checks.

    The firmware reads missing argument bytes as 0 (§4.2), so the bytes must be complete:
    every argument present (an `optional` trailing one may be left out), nothing after
    the last argument.

    Raises ConduytPayloadError `BAD_ARGUMENT`.
    """
    where = spec.qualified_name
    values: dict[str, object] = {}
    pos = 0
    for arg in spec.args:
        if arg.type in (WireType.TEXT, WireType.BYTES):
            rest = data[pos:]
            if arg.type is WireType.TEXT:
                try:
                    values[arg.name] = rest.decode("utf-8")
                except UnicodeDecodeError:
                    raise ConduytPayloadError(
                        f"{where}: {arg.name} is not UTF-8 text", ErrorName.BAD_ARGUMENT
                    ) from None
            else:
                values[arg.name] = rest
            pos = len(data)
            break
        size = _ARG_SIZE[arg.type]
        if pos + size > len(data):
            if arg.optional and pos == len(data):
                break
            raise ConduytPayloadError(
                f"{where}: arguments end after {len(data)} bytes; {arg.name} "
                f"({arg.type.value}) needs bytes {pos}..{pos + size - 1}",
                ErrorName.BAD_ARGUMENT,
            )
        (value,) = struct.unpack_from(_ARG_STRUCT[arg.type], data, pos)
        values[arg.name] = value
        pos += size
    if pos < len(data):
        raise ConduytPayloadError(
            f"{where}: {len(data) - pos} bytes after the last argument", ErrorName.BAD_ARGUMENT
        )
    try:
        encode_args(spec, values)
    except ModuleArgumentError as exc:
        raise ConduytPayloadError(str(exc), ErrorName.BAD_ARGUMENT) from None
    return values


_CAPABILITY_MODE: Mapping[Capability, PinMode] = {
    Capability.DIGITAL_IN: PinMode.INPUT,
    Capability.DIGITAL_OUT: PinMode.OUTPUT,
    Capability.PWM_OUT: PinMode.PWM,
    Capability.ANALOG_IN: PinMode.ANALOG,
}
"""The pin mode whose capability check stands for each bit a module pin argument needs."""


def _require_capability(hello: HelloResp, pin: int, needs: Capability) -> None:
    """Pin `pin` exists and has every bit of `needs`; messages as `require_mode`'s."""
    p = require_pin(hello, pin)
    for bit in Capability:
        if not bit or not bit & needs:
            continue
        mode = _CAPABILITY_MODE.get(bit)
        if mode is not None:
            require_mode(hello, pin, mode)
        elif not p.capabilities & bit:
            name = str(bit.name)
            have = ", ".join(p.capability_names) or "no capability"
            raise ConduytCapabilityError(
                f"pin {pin} has {have}; not {name.lower()} ({name.lower()} pins: "
                f"{_pins_with(hello, bit)})",
                ErrorName.PIN_MODE_UNSUPPORTED,
            )


def check_module_pins(hello: HelloResp, spec: CommandSpec, values: Mapping[str, object]) -> None:
    """Every pin argument of module command `spec` (`ArgSpec.pin`, §8) names a pin of the
    board with the capability the module needs (§5.2): the firmware checks none (Q12),
    and e.g. `pid.set_input` on a pin without ANALOG_IN makes it `analogRead` there every
    100 ms, which can hang an Uno R4 (§4.2). A `no_pin` value (stepper en_pin 255) and
    arguments missing from `values` are not checked.

    Raises ConduytCapabilityError `INVALID_PIN` (`servo.attach: pin 200 does not exist: this
    board has 10 pins`) or `PIN_MODE_UNSUPPORTED` (`pid.set_input: pin 4 supports input,
    output, pwm, input_pullup; not analog (analog pins: 12, 13, 14)`); the argument is
    named when it is not called `pin` (`stepper.config: dir_pin: pin 20 …`).
    """
    for arg in spec.pin_args:
        value = values.get(arg.name)
        if isinstance(value, bool) or not isinstance(value, int) or value == arg.no_pin:
            continue
        assert arg.pin is not None
        try:
            _require_capability(hello, value, arg.pin)
        except ConduytCapabilityError as exc:
            raise ConduytCapabilityError(f"{_pin_label(spec, arg)}{exc}", exc.name) from None


def _pin_label(spec: CommandSpec, arg: ArgSpec) -> str:
    where = spec.qualified_name
    return f"{where}: " if arg.name == "pin" else f"{where}: {arg.name}: "


def check_module_args(hello: HelloResp, spec: CommandSpec, data: bytes) -> dict[str, object]:
    """The argument values of MOD_CMD args bytes for `spec`, checked as a whole: the
    catalog's checks (`decode_module_args`) and the board's pins (`check_module_pins`).
    Raw MOD_CMD packets and typed `module/{mod}/{command}` topics both go through it.

    Raises ConduytPayloadError `BAD_ARGUMENT`, ConduytCapabilityError `INVALID_PIN` or
    `PIN_MODE_UNSUPPORTED`.
    """
    values = decode_module_args(spec, data)
    check_module_pins(hello, spec, values)
    return values


def module_command_spec(hello: HelloResp, module_id: int, code: int) -> CommandSpec | None:
    """The catalog spec of command `code` of module `module_id`; None for a module that is
    not a built-in (its commands are unknown to the bridge, so only its presence is
    checked).

    Raises ConduytCapabilityError `MODULE_NOT_LOADED` (no such module) or `UNKNOWN_MODULE_CMD`
    (a built-in without that command; `i2c_pass` has none, §8.8).
    """
    module = hello.module(module_id)
    if module is None:
        loaded = ", ".join(f"{m.module_id} {m.name}" for m in hello.modules) or "none"
        raise ConduytCapabilityError(
            f"no module with id {module_id} on this board (modules: {loaded})",
            ErrorName.MODULE_NOT_LOADED,
        )
    spec = CATALOG.get(module.name)
    if spec is None:
        return None
    command = spec.command_by_code(code)
    if command is None:
        known = ", ".join(f"0x{c.code:02x} {c.name}" for c in spec.commands.values()) or "none"
        raise ConduytCapabilityError(
            f"module {module_id} ({module.name}) has no command 0x{code:02x} (commands: {known})",
            ErrorName.UNKNOWN_MODULE_CMD,
        )
    return command


# ------------------------------------------------------------------------------ datastreams


def check_ds_write_value(ds: DatastreamDescriptor, value: bytes) -> None:
    """Raw DS_WRITE value bytes for `ds` (§5.5): writable, the declared type's natural size
    (BOOL 0/1, FLOAT32 finite), at least one byte for STRING/BYTES.

    Raises ConduytCapabilityError `DATASTREAM_READONLY` or `OUT_OF_RANGE`, ConduytPayloadError
    `BAD_VALUE` for a value of the wrong size.
    """
    if not ds.writable:
        raise ConduytCapabilityError(
            f"datastream '{ds.name}' is read-only", ErrorName.DATASTREAM_READONLY
        )
    ds_type = ds.known_type
    label = f"datastream '{ds.name}' ({ds_type.name if ds_type else int(ds.type)})"
    if ds_type is None:
        raise ConduytCapabilityError(
            f"{label}: unknown type, cannot be written", ErrorName.UNKNOWN_DATASTREAM
        )
    size = ds_type.nominal_size
    if size is None:
        if not value:
            raise ConduytPayloadError(
                f"{label} needs a value of at least 1 byte", ErrorName.BAD_VALUE
            )
        return
    if len(value) != size:
        raise ConduytPayloadError(
            f"{label} takes a {size}-byte value, got {len(value)} bytes", ErrorName.BAD_VALUE
        )
    if ds_type is DatastreamType.BOOL and value[0] > 1:
        raise ConduytCapabilityError(
            f"{label} takes 0x00 or 0x01, got 0x{value[0]:02x}", ErrorName.OUT_OF_RANGE
        )
    if ds_type is DatastreamType.FLOAT32 and not math.isfinite(struct.unpack("<f", value)[0]):
        raise ConduytCapabilityError(f"{label} takes a finite float32", ErrorName.OUT_OF_RANGE)


# ------------------------------------------------------------------------------ raw packets


def _need(name: str, payload: bytes, sizes: Iterable[int], layout: str) -> None:
    allowed = tuple(sizes)
    if len(payload) not in allowed:
        want = " or ".join(str(s) for s in allowed)
        raise ConduytPayloadError(
            f"{name} payload must be {want} bytes {layout}, got {len(payload)}",
            ErrorName.BAD_LENGTH
        )


def _at_least(name: str, payload: bytes, size: int, layout: str) -> None:
    if len(payload) < size:
        raise ConduytPayloadError(
            f"{name} payload needs at least {size} bytes {layout}, got {len(payload)}",
            ErrorName.BAD_LENGTH,
        )


def check_command(
    hello: HelloResp,
    type_: int,
    payload: bytes,
    *,
    max_command_payload: int,
    allow_ota: bool = False,
    pin_modes: Mapping[int, PinMode] | None = None,
) -> None:
    """Validate one command packet (TYPE and payload) for this board, as the typed topics
    are validated (`docs/protocol.md` §4.2 layouts, §5 enumerations, §6 capabilities).

    Exact layouts are required, because the firmware reads missing bytes as 0 and, on
    non-COBS links, is poisoned by malformed packets (Q3): PING, HELLO, STREAM_STOP,
    OTA_FINALIZE and RESET carry nothing; PIN_SUBSCRIBE is the 7-byte form (Q7);
    STREAM_START the 5-byte form. `pin_modes` are the modes set through the bridge (for
    PIN_WRITE range checks); without them only capability bits are checked.

    Stateful limits (subscription slots, an active subscription for PIN_UNSUBSCRIBE) are
    the caller's job. DS_READ is refused: the firmware NAKs every DS_READ (§10 #11).

    Raises ConduytCapabilityError (event or unknown type → `UNKNOWN_TYPE`, and everything the
    board cannot do), ConduytPayloadError (wrong layout), ConduytForbiddenError (`OTA_DISABLED`
    unless
    `allow_ota`).
    """
    name = type_name(type_)
    if type_ >= 0x80 and type_ != PacketType.RESET:
        label = name if name.startswith("0x") else f"{name} (0x{type_:02x})"
        raise ConduytCapabilityError(
            f"{label} is an event type (0x80..0xFF), not a command: the board would NAK it "
            "UNKNOWN_TYPE",
            ErrorName.UNKNOWN_TYPE,
        )
    try:
        kind = PacketType(type_)
    except ValueError:
        raise ConduytCapabilityError(
            f"0x{type_:02x} is not a Conduyt command type: the board would NAK it UNKNOWN_TYPE",
            ErrorName.UNKNOWN_TYPE,
        ) from None
    check_payload_size(name, len(payload), max_command_payload)
    modes = pin_modes or {}
    if kind in OTA_TYPES:
        # First: OTA_FINALIZE is also a no-payload type, and must never slip through there.
        if not allow_ota:
            raise ConduytForbiddenError(
                f"{name} refused: OTA packets are disabled for this board (allow_ota = false)",
                ErrorName.OTA_DISABLED,
            )
        if not hello.ota_capable:
            raise ConduytCapabilityError(
                "this board's firmware was built without OTA support (ota_capable = 0)",
                ErrorName.OTA_INVALID,
            )
    if kind in _NO_PAYLOAD:
        _need(name, payload, (0,), "(it takes no payload)")
    elif kind is PacketType.OTA_BEGIN:
        _need(name, payload, (36,), "[total_bytes u32le, sha256 x 32]")
    elif kind is PacketType.OTA_CHUNK:
        _at_least(name, payload, 5, "[offset u32le, data…]")
    elif kind is PacketType.PIN_MODE:
        _need(name, payload, (2,), "[pin, mode]")
        if payload[1] > PinMode.INPUT_PULLUP:
            raise ConduytPayloadError(
                f"PIN_MODE mode {payload[1]} is not a pin mode (0..4)", ErrorName.BAD_MODE
            )
        require_mode(hello, payload[0], PinMode(payload[1]))
    elif kind is PacketType.PIN_WRITE:
        _need(name, payload, (2, 3), "[pin, value, mode?]")
        pin, value = payload[0], payload[1]
        if len(payload) == 3:
            if payload[2] not in (PinMode.OUTPUT, PinMode.PWM):
                raise ConduytPayloadError(
                    f"PIN_WRITE mode byte must be 1 (output) or 2 (pwm), got {payload[2]}",
                    ErrorName.BAD_MODE,
                )
            pwm = payload[2] == PinMode.PWM
        else:
            pwm = value > 1  # the firmware's rule without a mode byte (§4.2)
        check_pin_write(hello, pin, value, pwm, modes.get(pin))
    elif kind is PacketType.PIN_READ:
        _need(name, payload, (1, 2), "[pin, mode?]")
        if len(payload) == 2:
            if payload[1] > PinMode.INPUT_PULLUP:
                raise ConduytPayloadError(
                    f"PIN_READ mode {payload[1]} is not a pin mode (0..4)", ErrorName.BAD_MODE
                )
            analog = payload[1] == PinMode.ANALOG
        else:
            analog = modes.get(payload[0]) is PinMode.ANALOG
        check_pin_read(hello, payload[0], analog)
    elif kind is PacketType.PIN_SUBSCRIBE:
        _need(name, payload, (7,), "[pin, mode, interval u16le, threshold u16le, 0x00]")
        if payload[1] not in SUBSCRIBE_MODE_NAMES:
            raise ConduytPayloadError(
                f"PIN_SUBSCRIBE mode {payload[1]} is not a subscribe mode (1..4)",
                ErrorName.BAD_MODE
            )
        interval, threshold = struct.unpack_from("<HH", payload, 2)
        check_subscribe(hello, payload[0], SubscribeMode(payload[1]), interval, threshold)
    elif kind is PacketType.PIN_UNSUBSCRIBE:
        _need(name, payload, (1,), "[pin]")
        require_pin(hello, payload[0])
    elif kind is PacketType.I2C_WRITE:
        _at_least(name, payload, 2, "[address, data…]")
        check_i2c_address(hello, payload[0])
    elif kind is PacketType.I2C_READ:
        _need(name, payload, (2,), "[address, count]")
        check_i2c_address(hello, payload[0])
        check_read_count(hello, payload[1])
    elif kind is PacketType.I2C_READ_REG:
        _need(name, payload, (3,), "[address, register, count]")
        check_i2c_address(hello, payload[0])
        check_read_count(hello, payload[2])
    elif kind is PacketType.SPI_XFER:
        _at_least(name, payload, 2, "[cs_pin, data…]")
        if hello.spi_buses < 1:
            raise ConduytCapabilityError("this board has no SPI bus", ErrorName.SPI_NOT_AVAILABLE)
        require_mode(hello, payload[0], PinMode.OUTPUT)  # the firmware drives CS as output
        check_read_count(hello, len(payload) - 1)  # one MISO byte per data byte comes back
    elif kind is PacketType.MOD_CMD:
        _at_least(name, payload, 2, "[module_id, command, args…]")
        spec = module_command_spec(hello, payload[0], payload[1])
        if spec is not None:
            check_module_args(hello, spec, payload[2:])
    elif kind is PacketType.STREAM_START:
        _need(name, payload, (5,), "[pin_mask u16le, rate_hz u16le, 0x00]")
        check_stream_mask(hello, payload[0] | payload[1] << 8)
    elif kind is PacketType.DS_WRITE:
        _at_least(name, payload, 2, "[ds_index, value…]")
        ds = require_datastream(hello, payload[0])
        check_ds_write_value(ds, payload[1:])
    elif kind is PacketType.DS_READ:
        raise ConduytCapabilityError(
            "DS_READ is not supported by the firmware (it NAKs every DS_READ "
            "UNKNOWN_DATASTREAM): read the retained state topic ds/{slug}",
            ErrorName.UNKNOWN_DATASTREAM,
        )
    elif kind is PacketType.DS_SUBSCRIBE:
        _need(name, payload, (1, 3), "[ds_index, interval_ms u16le?]")
        require_datastream(hello, payload[0])


def require_datastream(hello: HelloResp, index: int) -> DatastreamDescriptor:
    """Datastream `index` (§6.1). Raises ConduytCapabilityError `UNKNOWN_DATASTREAM`."""
    ds = hello.datastream(index)
    if ds is None:
        raise ConduytCapabilityError(
            f"datastream index {index} does not exist: this board has "
            f"{len(hello.datastreams)} datastreams",
            ErrorName.UNKNOWN_DATASTREAM,
        )
    return ds


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
                f"{_pins_with(hello, Capability.ANALOG_IN)})",
                ErrorName.PIN_MODE_UNSUPPORTED,
            )


__all__ = [
    "INPUT_MODES",
    "MIN_EDGE_INTERVAL_MS",
    "MODE_NAMES",
    "SUBSCRIBE_MODE_NAMES",
    "check_command",
    "check_ds_write_value",
    "check_i2c_address",
    "check_module_args",
    "check_module_pins",
    "check_payload_size",
    "check_pin_read",
    "check_pin_write",
    "check_read_count",
    "check_stream_mask",
    "check_subscribe",
    "check_subscription_slot",
    "decode_module_args",
    "infer_max_subscriptions",
    "mode_name",
    "module_command_spec",
    "parse_mode_name",
    "parse_pin_ref",
    "read_is_analog",
    "reply_payload_limit",
    "require_datastream",
    "require_mode",
    "require_pin",
    "stream_pins",
]
