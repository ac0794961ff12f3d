"""The built-in modules' catalog entries (`docs/protocol.md` §8): a data table of every
command's arguments (types, ranges, defaults, pin capabilities), its reply and every event's
layout, built from the shapes in `conduyt_bridge.protocol.module_specs`. See
`conduyt_bridge.protocol.modules` for the tables in words and the encoders."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from conduyt_bridge.protocol.constants import Capability
from conduyt_bridge.protocol.module_specs import (
    OLED_TEXT_MAX_BYTES,
    ArgSpec,
    CommandSpec,
    DhtCommand,
    EncoderCommand,
    EncoderEvent,
    EventSpec,
    Fields,
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
from conduyt_bridge.protocol.values import shortest_float32

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
