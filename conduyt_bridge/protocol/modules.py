"""Built-in module command catalog: MOD_CMD arguments, MOD_RESP and MOD_EVENT layouts (§8).

Source: `docs/protocol.md` §8 (module tables), §4.2 (MOD_CMD / MOD_RESP / MOD_EVENT wire
form, "missing argument bytes read as 0"), §7 quirk Q9 (module_id 0 in events) and §10 #20-23.
A MOD_CMD payload is `[module_id][cmd][args…]`; this module builds the `args…` part and
parses the data of MOD_RESP (after the module_id byte) and MOD_EVENT (after the event code).

| module (§)      | commands: code name(args) → reply                          | MOD_EVENT        |
|-----------------|------------------------------------------------------------|------------------|
| `servo` 8.1     | 01 attach(pin, min_us, max_us) 02 write(angle)             | —                |
|                 | 03 write_us(pulse_us) 04 detach(); all → ACK               |                  |
| `neopixel` 8.2  | 01 begin(pin, count, type) 02 set_pixel(index, r, g, b, [w]) | —            |
|                 | 03 set_range(start, count, r, g, b) 04 fill(r, g, b, [w])  |                  |
|                 | 05 show() 06 brightness(level); all → ACK                  |                  |
| `dht` 8.3       | 01 begin(pin, sensor_type) → ACK                           | —                |
|                 | 02 read() → MOD_RESP temperature f32, humidity f32         |                  |
| `encoder` 8.4   | 01 attach(pin_a, pin_b) → ACK 03 reset() → ACK             | 01 tick: count   |
|                 | 02 read() → MOD_RESP count i32                             | i32, delta i16   |
| `stepper` 8.5   | 01 config(step_pin, dir_pin, en_pin, steps_per_rev)        | 01 done:         |
|                 | 02 move(steps, speed_hz) 03 move_to(position, speed_hz)    | position i32     |
|                 | 04 stop(); all → ACK                                       |                  |
| `oled1306` 8.6  | 01 begin(width, height, i2c_addr) 02 clear()               | —                |
|                 | 03 text(x, y, size, text) 04 rect(x, y, w, h, fill)        |                  |
|                 | 05 bitmap(x, y, w, h, data) 06 show(); all → ACK           |                  |
| `pid` 8.7       | 01 config(kp, ki, kd) 02 set_target(value) 03 set_input(pin) | — (§10 #23)    |
|                 | 04 set_output(pin) 05 enable(flag); all → ACK              |                  |
| `i2c_pass` 8.8  | none: every MOD_CMD is NAKed 0x09                          | —                |

Arguments are always encoded completely (defaults filled in), because the firmware reads
missing bytes as 0 (§4.2): e.g. a stepper `config` without en_pin would drive pin 0 LOW.

Pin arguments carry the capability bits (§5.2) the pin must have (`ArgSpec.pin`), because
the firmware checks none (Q12) and `pid.set_input` on a non-ADC pin makes it call an
unguarded `analogRead` every 100 ms, which can hang an Uno R4 (§4.2). The bridge checks
them against HELLO_RESP (`conduyt_bridge.device.capabilities.check_module_pins`):

| argument                          | needs                      | why                          |
|-----------------------------------|----------------------------|------------------------------|
| servo.attach pin                  | DIGITAL_OUT                | see below                    |
| neopixel.begin pin                | DIGITAL_OUT                | bit-banged data line         |
| dht.begin pin                     | DIGITAL_IN and DIGITAL_OUT | one bidirectional data wire  |
| encoder.attach pin_a, pin_b       | DIGITAL_IN                 | INPUT_PULLUP, polled         |
| stepper.config step_pin, dir_pin  | DIGITAL_OUT                | driven outputs               |
| stepper.config en_pin             | DIGITAL_OUT, unless 255    | 255 = no enable pin          |
| pid.set_input pin                 | ANALOG_IN                  | `analogRead` every 100 ms    |
| pid.set_output pin                | PWM_OUT                    | `analogWrite`                |

servo.attach asks for DIGITAL_OUT, not PWM_OUT: the Arduino Servo library does not use the
hardware PWM of the pin. On AVR, megaAVR, SAMD and Renesas it toggles the pin with
`digitalWrite` from a timer interrupt (so any digital output works, and it even disables
PWM on pins 9/10 of an Uno), and ESP32 servo libraries route an LEDC channel to any output
GPIO. Requiring PWM_OUT would refuse pins that work. oled1306 takes an I2C address, not a
pin.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Mapping, Sequence

from conduyt_bridge.protocol.constants import FLOAT32_MAX
from conduyt_bridge.protocol.errors import PayloadDecodeError
from conduyt_bridge.protocol.module_catalog import (
    CATALOG,
    DHT,
    ENCODER,
    I2C_PASS,
    NEOPIXEL,
    OLED1306,
    PID,
    SERVO,
    STEPPER,
)
from conduyt_bridge.protocol.module_specs import (
    OLED_TEXT_MAX_BYTES,
    STRUCT_FORMATS,
    ArgSpec,
    CommandSpec,
    DhtCommand,
    EncoderCommand,
    EncoderEvent,
    EventSpec,
    Fields,
    ModuleArgumentError,
    ModuleSpec,
    NeoPixelCommand,
    OledCommand,
    PidCommand,
    ReplyKind,
    ServoCommand,
    StepperCommand,
    StepperEvent,
    WireType,
)

# --------------------------------------------------------------------------- API


def module_spec(module: str) -> ModuleSpec:
    """The catalog entry for HELLO module name `module`.

    Raises ModuleArgumentError (`unknown module 'x' (known: servo, …)`).
    """
    try:
        return CATALOG[module]
    except KeyError:
        raise ModuleArgumentError(
            f"unknown module {module!r} (known: {', '.join(CATALOG)})"
        ) from None


def command_spec(module: str, command: str) -> CommandSpec:
    """The CommandSpec of `module.command`. Raises ModuleArgumentError if either is unknown."""
    return module_spec(module).command(command)


ArgsInput = Mapping[str, object] | Sequence[object] | int | float | str | bytes | None
"""Arguments as a caller gives them: by name, by position, a bare scalar, or None (none)."""


def encode_args(spec: CommandSpec, args: ArgsInput = None) -> bytes:
    """The `args…` bytes of a MOD_CMD for `spec` (the part after `[module_id][cmd]`, §4.2).

    `args` may be a mapping by argument name, a sequence by position (list/tuple), a bare
    scalar bound to the first argument (for a one-argument command, or one whose other
    arguments have defaults), or None/empty for "no arguments". Missing arguments with a
    default are sent with the default; an `optional` trailing argument is sent only when
    given. Integers are accepted as integral floats too (`90.0`), never as bools (except
    flag arguments); BYTES accept bytes, base64 text or a list of 0..255 ints.

    Raises ModuleArgumentError with a message such as
    `servo.write: angle must be an integer 0..180, got 200`,
    `neopixel.set_pixel: unknown argument 'x' (expected index, r, g, b, w)` or
    `servo.attach: missing argument 'pin'`.
    """
    where = spec.qualified_name
    given = _bind(spec, args)
    values: dict[str, object] = {}
    out = bytearray()
    for arg in spec.args:
        if arg.name in given:
            value = _coerce(where, arg, given[arg.name])
        elif arg.optional:
            continue
        elif arg.default is None:
            raise ModuleArgumentError(f"{where}: missing argument {arg.name!r}")
        else:
            value = arg.default
        values[arg.name] = value
        out += _pack(arg, value)
    if spec.validate is not None:
        problem = spec.validate(values)
        if problem:
            raise ModuleArgumentError(f"{where}: {problem}")
    return bytes(out)


def mod_cmd_payload(module_id: int, module: str, command: str, args: ArgsInput = None) -> bytes:
    """A whole MOD_CMD payload `[module_id][cmd][args…]` (§4.2) for `module.command`.

    `module_id` is the HELLO registration index (0..255). Raises ModuleArgumentError for an
    unknown module/command, a bad argument or a module_id that is not a byte.
    """
    spec = command_spec(module, command)
    if isinstance(module_id, bool) or not isinstance(module_id, int) or not 0 <= module_id <= 255:
        raise ModuleArgumentError(
            f"{spec.qualified_name}: module_id must be an integer 0..255, got {module_id!r}"
        )
    return bytes((module_id, spec.code)) + encode_args(spec, args)


def decode_resp(module: str, command: str, data: bytes) -> Fields:
    """Fields of a MOD_RESP answering `module.command`; `data` = bytes after module_id (#20).

    DHT read → `{"temperature_c": float, "humidity_percent": float}` (shortest float32
    text); encoder read → `{"count": int}`. Extra trailing bytes are ignored.

    Raises PayloadDecodeError for an unknown module or command, a command that replies
    with ACK rather than MOD_RESP, or data shorter than the layout.
    """
    spec = CATALOG.get(module)
    if spec is None:
        raise PayloadDecodeError(f"unknown module {module!r}")
    cmd = spec.commands.get(command)
    if cmd is None:
        raise PayloadDecodeError(f"{module}: unknown command {command!r}")
    if cmd.decode_resp is None:
        raise PayloadDecodeError(f"{cmd.qualified_name} replies with ACK, not MOD_RESP")
    if len(data) < cmd.resp_size:
        raise PayloadDecodeError(
            f"{cmd.qualified_name}: MOD_RESP data needs {cmd.resp_size} bytes after the "
            f"module_id, got {len(data)}"
        )
    return cmd.decode_resp(bytes(data))


def decode_event(module: str, event_code: int, data: bytes) -> tuple[str, Fields]:
    """(event name, fields) of a MOD_EVENT from `module`; `data` = bytes after the event code.

    Encoder tick → `("tick", {"count": int, "delta": int})`; stepper done →
    `("done", {"position": int})`. Extra trailing bytes are ignored.

    Raises PayloadDecodeError for an unknown module, an event the module does not emit, or
    data shorter than the layout (§8.4, §8.5).
    """
    spec = CATALOG.get(module)
    if spec is None:
        raise PayloadDecodeError(f"unknown module {module!r}")
    event = spec.events.get(event_code)
    if event is None:
        raise PayloadDecodeError(f"{module} emits no event 0x{event_code:02x}")
    if len(data) < event.data_size:
        raise PayloadDecodeError(
            f"{module}.{event.name} event needs {event.data_size} data bytes, got {len(data)}"
        )
    return event.name, event.decode(bytes(data))


def attribute_event(modules: Sequence[str], event_code: int, data: bytes) -> str | None:
    """Which loaded module sent a MOD_EVENT whose module_id can't be trusted (quirk Q9).

    `modules` = the HELLO module names in module_id order; `data` = bytes after the event
    code. Built-ins send module_id 0, so attribute by shape: event 0x01 with exactly 6 data
    bytes is an encoder tick, with exactly 4 a stepper done (§7 Q9, §8.4, §8.5).

    Returns the module name when exactly one loaded module (counting instances: two
    encoders are ambiguous) can emit that code with that data size, else None.
    """
    size = len(data)
    matches = [
        name
        for name in modules
        if (spec := CATALOG.get(name)) is not None
        and (event := spec.events.get(event_code)) is not None
        and event.data_size == size
    ]
    return matches[0] if len(matches) == 1 else None


# --------------------------------------------------------------------------- helpers


def _bind(spec: CommandSpec, args: ArgsInput) -> dict[str, object]:
    """Map the caller's arguments to names; raises ModuleArgumentError."""
    where = spec.qualified_name
    names = spec.arg_names
    expected = ", ".join(names) if names else "no arguments"
    if args is None:
        return {}
    if isinstance(args, Mapping):
        given: dict[str, object] = {}
        for key, value in args.items():
            if key not in names:
                raise ModuleArgumentError(
                    f"{where}: unknown argument {key!r} (expected {expected})"
                )
            given[key] = value
        return given
    if isinstance(args, list | tuple):
        if len(args) > len(names):
            raise ModuleArgumentError(
                f"{where}: takes at most {len(names)} argument"
                f"{'' if len(names) == 1 else 's'} ({expected}), got {len(args)}"
            )
        return dict(zip(names, args, strict=False))
    if not names:
        raise ModuleArgumentError(f"{where}: takes no arguments, got {args!r}")
    return {names[0]: args}


def _coerce(where: str, arg: ArgSpec, value: object) -> object:
    """Validate one argument value; returns what `_pack` encodes. Raises ModuleArgumentError."""
    if arg.type is WireType.F32:
        return _coerce_float(where, arg, value)
    if arg.type is WireType.TEXT:
        return _coerce_text(where, arg, value)
    if arg.type is WireType.BYTES:
        return _coerce_bytes(where, arg, value)
    return _coerce_int(where, arg, value)


def _coerce_int(where: str, arg: ArgSpec, value: object) -> int:
    bounds = arg.bounds
    assert bounds is not None
    lo, hi = bounds
    if arg.choices is not None:
        allowed = "one of " + ", ".join(str(c) for c in arg.choices)
    else:
        allowed = f"an integer {lo}..{hi}"
    if isinstance(value, bool) and arg.accepts_bool:
        return int(value)
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if (
        number is None
        or not lo <= number <= hi
        or (arg.choices is not None and number not in arg.choices)
    ):
        raise ModuleArgumentError(f"{where}: {arg.name} must be {allowed}, got {value!r}")
    return number


def _coerce_float(where: str, arg: ArgSpec, value: object) -> float:
    lo = -FLOAT32_MAX if arg.min is None else float(arg.min)
    hi = FLOAT32_MAX if arg.max is None else float(arg.max)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(float(value))
        or not lo <= float(value) <= hi
    ):
        if arg.min is None and arg.max is None:
            allowed = "a finite number (float32)"
        else:
            allowed = f"a number {lo:g}..{hi:g}"
        raise ModuleArgumentError(f"{where}: {arg.name} must be {allowed}, got {value!r}")
    return float(value)


def _coerce_text(where: str, arg: ArgSpec, value: object) -> bytes:
    if not isinstance(value, str):
        raise ModuleArgumentError(f"{where}: {arg.name} must be a string, got {value!r}")
    raw = value.encode("utf-8")
    if arg.max is not None and len(raw) > arg.max:
        raise ModuleArgumentError(
            f"{where}: {arg.name} must be at most {int(arg.max)} bytes of UTF-8, got {len(raw)}"
        )
    return raw


def _coerce_bytes(where: str, arg: ArgSpec, value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ModuleArgumentError(
                f"{where}: {arg.name} is not valid base64 text: {_short(value)}"
            ) from None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 255:
                raise ModuleArgumentError(
                    f"{where}: {arg.name}[{i}] must be an integer 0..255, got {item!r}"
                )
        return bytes(value)
    raise ModuleArgumentError(
        f"{where}: {arg.name} must be bytes, base64 text or a list of integers 0..255, "
        f"got {_short(value)}"
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _pack(arg: ArgSpec, value: object) -> bytes:
    if arg.type is WireType.TEXT or arg.type is WireType.BYTES:
        assert isinstance(value, bytes)
        return value
    return struct.pack(STRUCT_FORMATS[arg.type], value)


__all__ = [
    "CATALOG",
    "DHT",
    "ENCODER",
    "I2C_PASS",
    "NEOPIXEL",
    "OLED1306",
    "OLED_TEXT_MAX_BYTES",
    "PID",
    "SERVO",
    "STEPPER",
    "ArgSpec",
    "ArgsInput",
    "CommandSpec",
    "DhtCommand",
    "EncoderCommand",
    "EncoderEvent",
    "EventSpec",
    "Fields",
    "ModuleArgumentError",
    "ModuleSpec",
    "NeoPixelCommand",
    "OledCommand",
    "PidCommand",
    "ReplyKind",
    "ServoCommand",
    "StepperCommand",
    "StepperEvent",
    "WireType",
    "attribute_event",
    "command_spec",
    "decode_event",
    "decode_resp",
    "encode_args",
    "mod_cmd_payload",
]
