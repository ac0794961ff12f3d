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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Any

from conduyt_bridge.protocol.constants import FLOAT32_MAX, Capability, PacketType
from conduyt_bridge.protocol.errors import PayloadDecodeError, ProtocolError
from conduyt_bridge.protocol.values import shortest_float32


class ModuleArgumentError(ProtocolError):
    """A module command or argument the host refuses to encode (unknown, missing, bad value).

    The message names the command as `module.command`, e.g.
    `servo.write: angle must be an integer 0..180, got 200`.
    """


class WireType(StrEnum):
    """How one MOD_CMD argument is laid out on the wire (§8, little-endian)."""

    U8 = "u8"
    """1 byte, 0..255."""
    U16 = "u16"
    """2 bytes, u16le, 0..65535."""
    I32 = "i32"
    """4 bytes, i32le."""
    F32 = "f32"
    """4 bytes, IEEE-754 binary32 little-endian, finite."""
    BYTES = "bytes"
    """Raw bytes to the end of the payload (last argument only)."""
    TEXT = "text"
    """UTF-8 text to the end of the payload, no length, no NUL (last argument only)."""


class ReplyKind(IntEnum):
    """What a built-in module sends back for a command: the reply's TYPE byte (§8)."""

    ACK = PacketType.ACK
    MOD_RESP = PacketType.MOD_RESP


class ServoCommand(IntEnum):
    """`servo` command codes (§8.1)."""

    ATTACH = 0x01
    WRITE = 0x02
    WRITE_US = 0x03
    DETACH = 0x04


class NeoPixelCommand(IntEnum):
    """`neopixel` command codes (§8.2)."""

    BEGIN = 0x01
    SET_PIXEL = 0x02
    SET_RANGE = 0x03
    FILL = 0x04
    SHOW = 0x05
    BRIGHTNESS = 0x06


class DhtCommand(IntEnum):
    """`dht` command codes (§8.3)."""

    BEGIN = 0x01
    READ = 0x02


class EncoderCommand(IntEnum):
    """`encoder` command codes (§8.4)."""

    ATTACH = 0x01
    READ = 0x02
    RESET = 0x03


class EncoderEvent(IntEnum):
    """`encoder` MOD_EVENT codes (§8.4)."""

    TICK = 0x01


class StepperCommand(IntEnum):
    """`stepper` command codes (§8.5)."""

    CONFIG = 0x01
    MOVE = 0x02
    MOVE_TO = 0x03
    STOP = 0x04


class StepperEvent(IntEnum):
    """`stepper` MOD_EVENT codes (§8.5)."""

    DONE = 0x01


class OledCommand(IntEnum):
    """`oled1306` command codes (§8.6)."""

    BEGIN = 0x01
    CLEAR = 0x02
    TEXT = 0x03
    RECT = 0x04
    BITMAP = 0x05
    SHOW = 0x06


class PidCommand(IntEnum):
    """`pid` command codes (§8.7)."""

    CONFIG = 0x01
    SET_TARGET = 0x02
    SET_INPUT = 0x03
    SET_OUTPUT = 0x04
    ENABLE = 0x05


OLED_TEXT_MAX_BYTES = 63
"""The oled1306 `text` command draws at most this many bytes of its text (§8.6)."""

_TYPE_RANGE: dict[WireType, tuple[int, int]] = {
    WireType.U8: (0, 0xFF),
    WireType.U16: (0, 0xFFFF),
    WireType.I32: (-(2**31), 2**31 - 1),
}
_STRUCT = {WireType.U8: "<B", WireType.U16: "<H", WireType.I32: "<i", WireType.F32: "<f"}

Fields = dict[str, object]
"""Decoded MOD_RESP / MOD_EVENT data: field name → value (units in the name or the doc)."""


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One MOD_CMD argument, in wire order.

    `min`/`max` are inclusive value bounds for numbers (None = the wire type's range; for
    F32 any finite float32); for TEXT, `max` is the limit in UTF-8 bytes. Length rules of
    BYTES that depend on other arguments live in `CommandSpec.validate`.
    `default` is sent when the caller leaves the argument out (None = required, unless
    `optional`, in which case nothing is sent: only for a trailing argument such as
    neopixel's `w`). `choices` restricts an integer to listed values. `accepts_bool`
    lets a flag argument take true/false (sent as 1/0); other numbers refuse bools.
    `pin` marks an argument that is a pin number (HELLO pin index, §6.1) with the
    capability bits (§5.2) the pin must have, all of them (None = not a pin); `no_pin` is
    a value meaning "no pin", which is not checked (stepper en_pin 255).
    """

    name: str
    type: WireType
    min: int | float | None = None
    max: int | float | None = None
    default: int | float | None = None
    doc: str = ""
    optional: bool = False
    choices: tuple[int, ...] | None = None
    accepts_bool: bool = False
    pin: Capability | None = None
    no_pin: int | None = None

    @property
    def required(self) -> bool:
        """True if the caller must supply this argument (no default, not optional)."""
        return self.default is None and not self.optional

    @property
    def bounds(self) -> tuple[int, int] | None:
        """Inclusive integer range for U8/U16/I32 (own bounds or the wire type's), else None."""
        if self.type not in _TYPE_RANGE:
            return None
        lo, hi = _TYPE_RANGE[self.type]
        return (
            lo if self.min is None else int(self.min),
            hi if self.max is None else int(self.max),
        )


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One module command (§8): name, code, arguments in wire order and reply kind.

    `module` is the owning module's HELLO name. For `reply == MOD_RESP`, `resp_size` is the
    number of data bytes after the module_id byte and `decode_resp` turns them into fields.
    `validate` (if any) checks the arguments as a whole and returns an error message.
    """

    name: str
    code: int
    args: tuple[ArgSpec, ...] = ()
    reply: ReplyKind = ReplyKind.ACK
    doc: str = ""
    module: str = ""
    resp_size: int = 0
    decode_resp: Callable[[bytes], Fields] | None = field(default=None, repr=False)
    validate: Callable[[Mapping[str, object]], str | None] | None = field(default=None, repr=False)

    @property
    def qualified_name(self) -> str:
        """`"servo.write"`."""
        return f"{self.module}.{self.name}"

    @property
    def arg_names(self) -> tuple[str, ...]:
        """Argument names in wire order."""
        return tuple(a.name for a in self.args)

    @property
    def pin_args(self) -> tuple[ArgSpec, ...]:
        """The arguments that are pin numbers (`ArgSpec.pin` set), in wire order."""
        return tuple(a for a in self.args if a.pin is not None)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One MOD_EVENT of a module: code, exact data size after the event code, decoder."""

    name: str
    code: int
    data_size: int
    decode: Callable[[bytes], Fields] = field(repr=False)
    doc: str = ""


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """A built-in module as advertised in HELLO_RESP (§6.1, §8): its commands and events."""

    name: str
    commands: Mapping[str, CommandSpec]
    events: Mapping[int, EventSpec]
    doc: str = ""

    def command(self, name: str) -> CommandSpec:
        """The command called `name`. Raises ModuleArgumentError naming the known commands."""
        try:
            return self.commands[name]
        except KeyError:
            known = ", ".join(self.commands) or "none"
            raise ModuleArgumentError(
                f"{self.name}: unknown command {name!r} (expected {known})"
            ) from None

    def command_by_code(self, code: int) -> CommandSpec | None:
        """The command with MOD_CMD code `code`, or None."""
        return next((c for c in self.commands.values() if c.code == code), None)


# --------------------------------------------------------------------------- decoders


def _f32(data: bytes, offset: int) -> float:
    return shortest_float32(struct.unpack_from("<f", data, offset)[0])


def _dht_read(data: bytes) -> Fields:
    return {"temperature_c": _f32(data, 0), "humidity_percent": _f32(data, 4)}


def _encoder_read(data: bytes) -> Fields:
    return {"count": struct.unpack_from("<i", data, 0)[0]}


def _encoder_tick(data: bytes) -> Fields:
    count, delta = struct.unpack_from("<ih", data, 0)
    return {"count": count, "delta": delta}


def _stepper_done(data: bytes) -> Fields:
    return {"position": struct.unpack_from("<i", data, 0)[0]}


def _bitmap_check(args: Mapping[str, object]) -> str | None:
    w, h, data = args["w"], args["h"], args["data"]
    assert isinstance(w, int) and isinstance(h, int) and isinstance(data, bytes)
    need = (w + 7) // 8 * h
    if len(data) < need:
        return (
            f"data must hold at least ceil(w/8)*h = {need} bytes for a {w}x{h} bitmap "
            f"(row-major, MSB first), got {len(data)}"
        )
    return None


# --------------------------------------------------------------------------- catalog


def _arg(
    name: str,
    type_: WireType,
    doc: str,
    *,
    min: int | float | None = None,
    max: int | float | None = None,
    default: int | float | None = None,
    optional: bool = False,
    choices: tuple[int, ...] | None = None,
    accepts_bool: bool = False,
    pin: Capability | None = None,
    no_pin: int | None = None,
) -> ArgSpec:
    return ArgSpec(
        name, type_, min, max, default, doc, optional, choices, accepts_bool, pin, no_pin
    )


def _u8(name: str, doc: str, **kw: Any) -> ArgSpec:
    return _arg(name, WireType.U8, doc, **kw)


def _u16(name: str, doc: str, **kw: Any) -> ArgSpec:
    return _arg(name, WireType.U16, doc, **kw)


def _i32(name: str, doc: str, **kw: Any) -> ArgSpec:
    return _arg(name, WireType.I32, doc, **kw)


def _f32arg(name: str, doc: str, **kw: Any) -> ArgSpec:
    return _arg(name, WireType.F32, doc, **kw)


def _pin(name: str, doc: str, needs: Capability, **kw: Any) -> ArgSpec:
    """A u8 pin-number argument whose pin must have every bit of `needs` (§5.2)."""
    return _arg(name, WireType.U8, doc, pin=needs, **kw)


_DI = Capability.DIGITAL_IN
_DO = Capability.DIGITAL_OUT


_RGB = (
    _u8("r", "red, 0..255"),
    _u8("g", "green, 0..255"),
    _u8("b", "blue, 0..255"),
)
_W = _u8("w", "white channel of RGBW strips, 0..255; sent only when given", optional=True)
_SPEED = _u16("speed_hz", "step rate in steps/s; 0 = firmware default 1000", default=0)


def _module(
    name: str,
    doc: str,
    commands: Sequence[CommandSpec],
    events: Sequence[EventSpec] = (),
) -> ModuleSpec:
    cmds = {c.name: replace(c, module=name) for c in commands}
    return ModuleSpec(
        name,
        MappingProxyType(cmds),
        MappingProxyType({e.code: e for e in events}),
        doc,
    )


SERVO = _module(
    "servo",
    "Hobby servo (§8.1). No events.",
    [
        CommandSpec(
            "attach",
            ServoCommand.ATTACH,
            (
                _pin("pin", "signal pin (HELLO pin index; needs DIGITAL_OUT)", _DO),
                _u16("min_us", "pulse width at 0°, µs; 0 = firmware default 544", default=0),
                _u16("max_us", "pulse width at 180°, µs; 0 = firmware default 2400", default=0),
            ),
            doc="Attach the servo to a pin (claims it).",
        ),
        CommandSpec(
            "write",
            ServoCommand.WRITE,
            (_u8("angle", "target angle, degrees 0..180", min=0, max=180),),
            doc="Move to an angle.",
        ),
        CommandSpec(
            "write_us",
            ServoCommand.WRITE_US,
            (_u16("pulse_us", "pulse width, µs"),),
            doc="Set the pulse width directly.",
        ),
        CommandSpec("detach", ServoCommand.DETACH, doc="Stop driving the servo."),
    ],
)

NEOPIXEL = _module(
    "neopixel",
    "Addressable LED strip (§8.2). Drawing commands change the buffer; send `show`. No events.",
    [
        CommandSpec(
            "begin",
            NeoPixelCommand.BEGIN,
            (
                _pin("pin", "data pin (HELLO pin index; needs DIGITAL_OUT)", _DO),
                _u16("count", "number of pixels"),
                _u8(
                    "type",
                    "Adafruit pixel type; 0 = GRB 800 kHz (NEO_GRB + NEO_KHZ800 = 0x52)",
                    default=0,
                ),
            ),
            doc="Initialise the strip.",
        ),
        CommandSpec(
            "set_pixel",
            NeoPixelCommand.SET_PIXEL,
            (_u16("index", "pixel index, 0-based"), *_RGB, _W),
            doc="Set one pixel in the buffer.",
        ),
        CommandSpec(
            "set_range",
            NeoPixelCommand.SET_RANGE,
            (_u16("start", "first pixel index"), _u16("count", "number of pixels"), *_RGB),
            doc="Set a run of pixels in the buffer.",
        ),
        CommandSpec(
            "fill",
            NeoPixelCommand.FILL,
            (*_RGB, _W),
            doc="Set every pixel in the buffer.",
        ),
        CommandSpec("show", NeoPixelCommand.SHOW, doc="Push the buffer to the strip."),
        CommandSpec(
            "brightness",
            NeoPixelCommand.BRIGHTNESS,
            (_u8("level", "global brightness, 0..255"),),
            doc="Set the brightness (also pushes to the strip).",
        ),
    ],
)

DHT = _module(
    "dht",
    "DHT11/DHT22 temperature and humidity sensor (§8.3). Reads block the board. No events.",
    [
        CommandSpec(
            "begin",
            DhtCommand.BEGIN,
            (
                _pin(
                    "pin",
                    "data pin (HELLO pin index; bidirectional: needs DIGITAL_IN and DIGITAL_OUT)",
                    _DI | _DO,
                ),
                _u8(
                    "sensor_type",
                    "22 = DHT22, 11 = DHT11 (firmware: any value but 22 means DHT11)",
                    default=22,
                    choices=(11, 22),
                ),
            ),
            doc="Initialise the sensor.",
        ),
        CommandSpec(
            "read",
            DhtCommand.READ,
            reply=ReplyKind.MOD_RESP,
            doc=(
                "Read the sensor. MOD_RESP data: temperature °C f32le, humidity %RH f32le "
                "→ {temperature_c, humidity_percent}; NAK 0x08 before begin, 0x0C on NaN."
            ),
            resp_size=8,
            decode_resp=_dht_read,
        ),
    ],
)

ENCODER = _module(
    "encoder",
    "Quadrature encoder polled in the main loop (§8.4).",
    [
        CommandSpec(
            "attach",
            EncoderCommand.ATTACH,
            (
                _pin("pin_a", "channel A pin (needs DIGITAL_IN)", _DI),
                _pin("pin_b", "channel B pin (needs DIGITAL_IN)", _DI),
            ),
            doc="Attach to two pins (INPUT_PULLUP) and reset the count.",
        ),
        CommandSpec(
            "read",
            EncoderCommand.READ,
            reply=ReplyKind.MOD_RESP,
            doc="Read the count. MOD_RESP data: count i32le → {count} (steps).",
            resp_size=4,
            decode_resp=_encoder_read,
        ),
        CommandSpec("reset", EncoderCommand.RESET, doc="Set the count to 0."),
    ],
    [
        EventSpec(
            "tick",
            EncoderEvent.TICK,
            6,
            _encoder_tick,
            "On every level change of pin A: count i32le, delta i16le (±1) → {count, delta}.",
        )
    ],
)

STEPPER = _module(
    "stepper",
    "Step/dir stepper driver (§8.5).",
    [
        CommandSpec(
            "config",
            StepperCommand.CONFIG,
            (
                _pin("step_pin", "STEP pin (needs DIGITAL_OUT)", _DO),
                _pin("dir_pin", "DIR pin (needs DIGITAL_OUT)", _DO),
                _pin(
                    "en_pin",
                    "active-low ENABLE pin (needs DIGITAL_OUT); 255 = none",
                    _DO,
                    default=0xFF,
                    no_pin=0xFF,
                ),
                _u16("steps_per_rev", "steps per revolution", default=200),
            ),
            doc="Configure the driver pins (enable pin driven LOW).",
        ),
        CommandSpec(
            "move",
            StepperCommand.MOVE,
            (_i32("steps", "relative steps; sign = direction"), _SPEED),
            doc="Move relative to the current position; MOD_EVENT done when finished.",
        ),
        CommandSpec(
            "move_to",
            StepperCommand.MOVE_TO,
            (_i32("position", "absolute position, steps from the boot position"), _SPEED),
            doc="Move to an absolute position; MOD_EVENT done when finished.",
        ),
        CommandSpec("stop", StepperCommand.STOP, doc="Stop at once (no done event)."),
    ],
    [
        EventSpec(
            "done",
            StepperEvent.DONE,
            4,
            _stepper_done,
            "When the remaining step count reaches 0: position i32le → {position} (steps).",
        )
    ],
)

OLED1306 = _module(
    "oled1306",
    "SSD1306 monochrome OLED over I2C (§8.6). Drawing is white; send `show`. No events.",
    [
        CommandSpec(
            "begin",
            OledCommand.BEGIN,
            (
                _u8("width", "panel width, pixels", min=1, default=128),
                _u8("height", "panel height, pixels", min=1, default=64),
                _u8("i2c_addr", "7-bit I2C address; 0 = firmware default 0x3C", default=0),
            ),
            doc="Initialise the panel.",
        ),
        CommandSpec("clear", OledCommand.CLEAR, doc="Clear the buffer."),
        CommandSpec(
            "text",
            OledCommand.TEXT,
            (
                _u8("x", "left, pixels"),
                _u8("y", "top, pixels"),
                _u8("size", "text scale factor", min=1, default=1),
                ArgSpec(
                    "text",
                    WireType.TEXT,
                    max=OLED_TEXT_MAX_BYTES,
                    doc="UTF-8 text, at most 63 bytes (the firmware uses no more)",
                ),
            ),
            doc="Draw text into the buffer.",
        ),
        CommandSpec(
            "rect",
            OledCommand.RECT,
            (
                _u8("x", "left, pixels"),
                _u8("y", "top, pixels"),
                _u8("w", "width, pixels"),
                _u8("h", "height, pixels"),
                _u8("fill", "0 = outline, otherwise filled", default=0, accepts_bool=True),
            ),
            doc="Draw a rectangle into the buffer.",
        ),
        CommandSpec(
            "bitmap",
            OledCommand.BITMAP,
            (
                _u8("x", "left, pixels"),
                _u8("y", "top, pixels"),
                _u8("w", "width, pixels"),
                _u8("h", "height, pixels"),
                ArgSpec(
                    "data",
                    WireType.BYTES,
                    doc=(
                        "1 bit per pixel, row-major, MSB first, rows padded to whole bytes: "
                        "ceil(w/8)*h bytes (bytes, base64 text or a list of byte values)"
                    ),
                ),
            ),
            doc="Draw a 1-bpp bitmap into the buffer (silently skipped if data is short).",
            validate=_bitmap_check,
        ),
        CommandSpec("show", OledCommand.SHOW, doc="Flush the buffer to the panel."),
    ],
)

PID = _module(
    "pid",
    "PID loop on an analog input and a PWM output, every 100 ms (§8.7). No events (§10 #23).",
    [
        CommandSpec(
            "config",
            PidCommand.CONFIG,
            (
                _f32arg("kp", "proportional gain", default=1.0),
                _f32arg("ki", "integral gain, per second", default=0.0),
                _f32arg("kd", "derivative gain, seconds", default=0.0),
            ),
            doc="Set the gains.",
        ),
        CommandSpec(
            "set_target",
            PidCommand.SET_TARGET,
            (
                _f32arg(
                    "value", "setpoint, percent of ADC full scale (0..100 on 10-bit)", default=0.0
                ),
            ),
            doc="Set the setpoint.",
        ),
        CommandSpec(
            "set_input",
            PidCommand.SET_INPUT,
            (_pin("pin", "analog input pin (needs ANALOG_IN)", Capability.ANALOG_IN),),
            doc="Choose the input pin.",
        ),
        CommandSpec(
            "set_output",
            PidCommand.SET_OUTPUT,
            (_pin("pin", "PWM output pin, set to OUTPUT (needs PWM_OUT)", Capability.PWM_OUT),),
            doc="Choose the output pin.",
        ),
        CommandSpec(
            "enable",
            PidCommand.ENABLE,
            (
                _u8(
                    "flag",
                    "1/true = enable (resets I and D state), 0/false = disable",
                    default=1,
                    accepts_bool=True,
                ),
            ),
            doc="Enable or disable the loop.",
        ),
    ],
)

I2C_PASS = _module(
    "i2c_pass",
    "Raw-I2C capability marker (§8.8): every MOD_CMD is NAKed 0x09; use I2C_* packets.",
    [],
)

CATALOG: Mapping[str, ModuleSpec] = MappingProxyType(
    {m.name: m for m in (SERVO, NEOPIXEL, DHT, ENCODER, STEPPER, OLED1306, PID, I2C_PASS)}
)
"""Built-in modules by the name they advertise in HELLO_RESP (§6.1, §8)."""


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
    return struct.pack(_STRUCT[arg.type], value)


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
