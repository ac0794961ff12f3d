"""Module command catalog (`docs/protocol.md` §8, §4.2, quirk Q9)."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conduyt_bridge.protocol import PacketType, PayloadDecodeError, ProtocolError, encode_packet
from conduyt_bridge.protocol.constants import FLOAT32_MAX, Capability
from conduyt_bridge.protocol.modules import (
    CATALOG,
    ArgSpec,
    CommandSpec,
    DhtCommand,
    EncoderCommand,
    EncoderEvent,
    ModuleArgumentError,
    NeoPixelCommand,
    OledCommand,
    PidCommand,
    ReplyKind,
    ServoCommand,
    StepperCommand,
    StepperEvent,
    WireType,
    attribute_event,
    command_spec,
    decode_event,
    decode_resp,
    encode_args,
    mod_cmd_payload,
    module_spec,
)

ENUMS = {
    "servo": ServoCommand,
    "neopixel": NeoPixelCommand,
    "dht": DhtCommand,
    "encoder": EncoderCommand,
    "stepper": StepperCommand,
    "oled1306": OledCommand,
    "pid": PidCommand,
}


def enc(module: str, command: str, args: object = None) -> bytes:
    return encode_args(command_spec(module, command), args)  # type: ignore[arg-type]


def f32(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


# ------------------------------------------------------------------------------ catalog shape


def test_catalog_names_and_command_codes() -> None:
    assert list(CATALOG) == [
        "servo",
        "neopixel",
        "dht",
        "encoder",
        "stepper",
        "oled1306",
        "pid",
        "i2c_pass",
    ]
    for name, enum in ENUMS.items():
        spec = CATALOG[name]
        assert spec.name == name
        assert {c.name.upper(): c.code for c in spec.commands.values()} == {
            m.name: m.value for m in enum
        }
        assert all(c.module == name for c in spec.commands.values())
    assert CATALOG["i2c_pass"].commands == {} and CATALOG["i2c_pass"].events == {}


def test_catalog_is_read_only() -> None:
    with pytest.raises(TypeError):
        CATALOG["x"] = CATALOG["servo"]  # type: ignore[index]
    with pytest.raises(TypeError):
        CATALOG["servo"].commands["x"] = CATALOG["servo"].commands["write"]  # type: ignore[index]


@pytest.mark.parametrize(
    "spec", [c for m in CATALOG.values() for c in m.commands.values()], ids=lambda c: str(c)
)
def test_command_spec_invariants(spec: CommandSpec) -> None:
    names = spec.arg_names
    assert len(set(names)) == len(names)
    for i, arg in enumerate(spec.args):
        if arg.type in (WireType.BYTES, WireType.TEXT):
            assert i == len(spec.args) - 1, "variable-length argument must be last"
        if arg.optional:
            assert all(a.optional for a in spec.args[i:]), "optional arguments must trail"
        if arg.default is not None:
            assert not arg.required
    assert (spec.reply is ReplyKind.MOD_RESP) == (spec.decode_resp is not None)
    assert spec.qualified_name == f"{spec.module}.{spec.name}"
    for arg in spec.args:
        looks_like_a_pin = arg.name == "pin" or "_pin" in arg.name or arg.name.startswith("pin_")
        assert looks_like_a_pin == (arg.pin is not None), f"{arg.name}: pin arguments are marked"
        if arg.pin is not None:
            assert arg.type is WireType.U8 and arg.pin != Capability.NONE
        if arg.no_pin is not None:
            assert arg.pin is not None and arg.default == arg.no_pin
    assert spec.pin_args == tuple(a for a in spec.args if a.pin is not None)


def test_pin_arguments_need_the_right_capabilities() -> None:
    """Every pin argument of the catalog and what the pin must have (§5.2, §8, Q12)."""
    di, do = Capability.DIGITAL_IN, Capability.DIGITAL_OUT
    marked = {
        f"{c.qualified_name} {a.name}": (a.pin, a.no_pin)
        for m in CATALOG.values()
        for c in m.commands.values()
        for a in c.pin_args
    }
    assert marked == {
        "servo.attach pin": (do, None),  # the Servo library bit-bangs: any digital output
        "neopixel.begin pin": (do, None),
        "dht.begin pin": (di | do, None),  # one bidirectional data wire
        "encoder.attach pin_a": (di, None),
        "encoder.attach pin_b": (di, None),
        "stepper.config step_pin": (do, None),
        "stepper.config dir_pin": (do, None),
        "stepper.config en_pin": (do, 0xFF),  # 255 = no enable pin
        "pid.set_input pin": (Capability.ANALOG_IN, None),  # unguarded analogRead (§4.2)
        "pid.set_output pin": (Capability.PWM_OUT, None),
    }
    # oled1306 takes an I2C address, not a pin
    assert CATALOG["oled1306"].commands["begin"].pin_args == ()


def test_reply_kinds() -> None:
    mod_resp = {
        c.qualified_name
        for m in CATALOG.values()
        for c in m.commands.values()
        if c.reply is ReplyKind.MOD_RESP
    }
    assert mod_resp == {"dht.read", "encoder.read"}
    assert (int(ReplyKind.ACK), int(ReplyKind.MOD_RESP)) == (PacketType.ACK, PacketType.MOD_RESP)


def test_events() -> None:
    emitting = {name: dict(m.events) for name, m in CATALOG.items() if m.events}
    assert set(emitting) == {"encoder", "stepper"}
    tick = emitting["encoder"][EncoderEvent.TICK]
    done = emitting["stepper"][StepperEvent.DONE]
    assert (tick.name, tick.code, tick.data_size) == ("tick", 0x01, 6)
    assert (done.name, done.code, done.data_size) == ("done", 0x01, 4)


def test_module_lookup_helpers() -> None:
    assert module_spec("servo") is CATALOG["servo"]
    assert CATALOG["servo"].command_by_code(2) is CATALOG["servo"].commands["write"]
    assert CATALOG["servo"].command_by_code(9) is None
    with pytest.raises(ModuleArgumentError) as info:
        module_spec("motor")
    assert str(info.value) == (
        "unknown module 'motor' (known: servo, neopixel, dht, encoder, stepper, oled1306, "
        "pid, i2c_pass)"
    )
    with pytest.raises(ModuleArgumentError) as info:
        command_spec("servo", "spin")
    assert (
        str(info.value)
        == "servo: unknown command 'spin' (expected attach, write, write_us, detach)"
    )
    with pytest.raises(ModuleArgumentError) as info:
        command_spec("i2c_pass", "read")
    assert str(info.value) == "i2c_pass: unknown command 'read' (expected none)"
    assert issubclass(ModuleArgumentError, ProtocolError)


def test_arg_spec_bounds() -> None:
    angle = CATALOG["servo"].commands["write"].args[0]
    assert angle.bounds == (0, 180) and angle.required
    assert ArgSpec("n", WireType.I32).bounds == (-(2**31), 2**31 - 1)
    assert ArgSpec("n", WireType.F32).bounds is None
    assert not ArgSpec("w", WireType.U8, optional=True).required


# ------------------------------------------------------------------------------ exact encodings

EXACT = [
    ("servo", "attach", 9, "09 0000 0000"),
    ("servo", "attach", {"pin": 9, "min_us": 500, "max_us": 2500}, "09 f401 c409"),
    ("servo", "write", 90, "5a"),
    ("servo", "write", [180], "b4"),
    ("servo", "write", {"angle": 0}, "00"),
    ("servo", "write", 90.0, "5a"),
    ("servo", "write_us", 1500, "dc05"),
    ("servo", "detach", None, ""),
    ("servo", "detach", {}, ""),
    ("servo", "detach", [], ""),
    ("neopixel", "begin", [6, 60], "06 3c00 00"),
    ("neopixel", "begin", {"pin": 6, "count": 300, "type": 0x52}, "06 2c01 52"),
    ("neopixel", "set_pixel", [1, 255, 128, 0], "0100 ff 80 00"),
    ("neopixel", "set_pixel", {"index": 2, "r": 1, "g": 2, "b": 3, "w": 0}, "0200 01 02 03 00"),
    ("neopixel", "set_range", [10, 5, 1, 2, 3], "0a00 0500 01 02 03"),
    ("neopixel", "fill", (1, 2, 3), "01 02 03"),
    ("neopixel", "fill", (1, 2, 3, 4), "01 02 03 04"),
    ("neopixel", "show", None, ""),
    ("neopixel", "brightness", 64, "40"),
    ("dht", "begin", 4, "04 16"),
    ("dht", "begin", [4, 11], "04 0b"),
    ("dht", "read", None, ""),
    ("encoder", "attach", [2, 3], "02 03"),
    ("encoder", "read", None, ""),
    ("encoder", "reset", None, ""),
    ("stepper", "config", [2, 3], "02 03 ff c800"),
    ("stepper", "config", {"step_pin": 2, "dir_pin": 3, "en_pin": 8}, "02 03 08 c800"),
    ("stepper", "move", -200, "38ffffff 0000"),
    ("stepper", "move", [400, 800], "90010000 2003"),
    ("stepper", "move_to", {"position": 2**31 - 1, "speed_hz": 65535}, "ffffff7f ffff"),
    ("stepper", "stop", None, ""),
    ("oled1306", "begin", None, "80 40 00"),
    ("oled1306", "begin", [128, 32, 0x3D], "80 20 3d"),
    ("oled1306", "clear", None, ""),
    ("oled1306", "text", {"x": 0, "y": 8, "text": "Hi °C"}, "00 08 01 4869 20c2b0 43"),
    ("oled1306", "text", [1, 2, 3, ""], "01 02 03"),
    ("oled1306", "rect", [0, 0, 10, 5], "00 00 0a 05 00"),
    ("oled1306", "rect", {"x": 1, "y": 1, "w": 2, "h": 2, "fill": True}, "01 01 02 02 01"),
    ("oled1306", "bitmap", [0, 0, 9, 2, [0xFF, 0x80, 0x00, 0x80]], "00 00 09 02 ff800080"),
    ("oled1306", "bitmap", [0, 0, 8, 1, "/w=="], "00 00 08 01 ff"),
    ("oled1306", "bitmap", [0, 0, 8, 1, b"\x81\x00"], "00 00 08 01 8100"),
    ("oled1306", "show", None, ""),
    ("pid", "config", None, f32(1, 0, 0).hex()),
    ("pid", "config", [2.5, 0.1, 0.01], f32(2.5, 0.1, 0.01).hex()),
    ("pid", "config", 3, f32(3, 0, 0).hex()),
    ("pid", "set_target", 50, f32(50).hex()),
    ("pid", "set_target", None, f32(0).hex()),
    ("pid", "set_input", 14, "0e"),
    ("pid", "set_output", 3, "03"),
    ("pid", "enable", None, "01"),
    ("pid", "enable", False, "00"),
    ("pid", "enable", 1, "01"),
]


@pytest.mark.parametrize(
    ("module", "command", "args", "hex_"),
    EXACT,
    ids=[f"{m}.{c}-{i}" for i, (m, c, _, _) in enumerate(EXACT)],
)
def test_exact_encoding(module: str, command: str, args: object, hex_: str) -> None:
    assert enc(module, command, args) == bytes.fromhex(hex_)


def test_every_command_has_an_exact_encoding_test() -> None:
    covered = {(m, c) for m, c, _, _ in EXACT}
    assert covered == {(m.name, c) for m in CATALOG.values() for c in m.commands}


def test_mod_cmd_packet_matches_hand_computed_example() -> None:
    """§11.3 extra: MOD_CMD servo (id 0) write 90°, seq 9."""
    payload = mod_cmd_payload(0, "servo", "write", 90)
    assert payload == b"\x00\x02\x5a"
    assert encode_packet(PacketType.MOD_CMD, 9, payload) == bytes.fromhex(
        "43 44 02 40 09 03 00 00 02 5a 79"
    )


def test_servo_attach_sends_complete_arguments() -> None:
    """The wire vector sends `00 01 09` (pin only); the board reads the missing bytes as 0,
    i.e. the defaults 544/2400 µs. We send those zeros explicitly (§4.2)."""
    payload = mod_cmd_payload(0, "servo", "attach", 9)
    assert payload == bytes.fromhex("00 01 09 00 00 00 00")
    assert payload.startswith(bytes.fromhex("000109"))


def test_mod_cmd_payload_module_id() -> None:
    assert mod_cmd_payload(3, "stepper", "stop") == b"\x03\x04"
    for bad in (256, -1, True, 1.0):
        with pytest.raises(ModuleArgumentError) as info:
            mod_cmd_payload(bad, "stepper", "stop")  # type: ignore[arg-type]
        assert str(info.value) == f"stepper.stop: module_id must be an integer 0..255, got {bad!r}"
    with pytest.raises(ModuleArgumentError, match=r"^servo: unknown command 'x'"):
        mod_cmd_payload(0, "servo", "x")


# ------------------------------------------------------------------------------ argument errors

ERRORS = [
    ("servo", "write", 200, "servo.write: angle must be an integer 0..180, got 200"),
    ("servo", "write", -1, "servo.write: angle must be an integer 0..180, got -1"),
    ("servo", "write", True, "servo.write: angle must be an integer 0..180, got True"),
    ("servo", "write", 90.5, "servo.write: angle must be an integer 0..180, got 90.5"),
    ("servo", "write", "90", "servo.write: angle must be an integer 0..180, got '90'"),
    ("servo", "write", {"angle": None}, "servo.write: angle must be an integer 0..180, got None"),
    ("servo", "write", math.nan, "servo.write: angle must be an integer 0..180, got nan"),
    ("servo", "write", None, "servo.write: missing argument 'angle'"),
    ("servo", "write", [], "servo.write: missing argument 'angle'"),
    ("servo", "attach", {}, "servo.attach: missing argument 'pin'"),
    ("servo", "attach", {"min_us": 500}, "servo.attach: missing argument 'pin'"),
    (
        "servo",
        "attach",
        [9, 500, 2500, 1],
        "servo.attach: takes at most 3 arguments (pin, min_us, max_us), got 4",
    ),
    ("servo", "write", [1, 2], "servo.write: takes at most 1 argument (angle), got 2"),
    ("servo", "write_us", 65536, "servo.write_us: pulse_us must be an integer 0..65535, got 65536"),
    ("servo", "detach", 5, "servo.detach: takes no arguments, got 5"),
    ("servo", "detach", {"x": 1}, "servo.detach: unknown argument 'x' (expected no arguments)"),
    (
        "neopixel",
        "set_pixel",
        {"x": 1},
        "neopixel.set_pixel: unknown argument 'x' (expected index, r, g, b, w)",
    ),
    ("neopixel", "begin", 6, "neopixel.begin: missing argument 'count'"),
    ("neopixel", "set_pixel", [1, 2, 3], "neopixel.set_pixel: missing argument 'b'"),
    ("neopixel", "fill", [1, 2, 256], "neopixel.fill: b must be an integer 0..255, got 256"),
    ("neopixel", "fill", [1, 2, 3, True], "neopixel.fill: w must be an integer 0..255, got True"),
    ("dht", "begin", [4, 21], "dht.begin: sensor_type must be one of 11, 22, got 21"),
    ("dht", "begin", [4, True], "dht.begin: sensor_type must be one of 11, 22, got True"),
    ("stepper", "move", 2**31, "stepper.move: steps must be an integer -2147483648..2147483647, "
     "got 2147483648"),
    ("stepper", "move", [1, -1], "stepper.move: speed_hz must be an integer 0..65535, got -1"),
    ("stepper", "config", [2, 3, 256], "stepper.config: en_pin must be an integer 0..255, got 256"),
    ("oled1306", "begin", [0, 64], "oled1306.begin: width must be an integer 1..255, got 0"),
    ("oled1306", "text", [0, 0, 1, 5], "oled1306.text: text must be a string, got 5"),
    ("oled1306", "text", [0, 0, 1, b"hi"], "oled1306.text: text must be a string, got b'hi'"),
    ("oled1306", "text", [0, 0, 0, "hi"], "oled1306.text: size must be an integer 1..255, got 0"),
    ("oled1306", "text", [0, 0, 1, "x" * 64],
     "oled1306.text: text must be at most 63 bytes of UTF-8, got 64"),
    ("oled1306", "text", [0, 0, 1, "é" * 32],
     "oled1306.text: text must be at most 63 bytes of UTF-8, got 64"),
    ("oled1306", "text", {"x": 0, "y": 0}, "oled1306.text: missing argument 'text'"),
    ("oled1306", "rect", [0, 0, 1, 1, 2.5],
     "oled1306.rect: fill must be an integer 0..255, got 2.5"),
    ("oled1306", "bitmap", [0, 0, 8, 2, [1]],
     "oled1306.bitmap: data must hold at least ceil(w/8)*h = 2 bytes for a 8x2 bitmap "
     "(row-major, MSB first), got 1"),
    ("oled1306", "bitmap", [0, 0, 9, 2, "AAAA"],
     "oled1306.bitmap: data must hold at least ceil(w/8)*h = 4 bytes for a 9x2 bitmap "
     "(row-major, MSB first), got 3"),
    ("oled1306", "bitmap", [0, 0, 1, 1, "AA!A"],
     "oled1306.bitmap: data is not valid base64 text: 'AA!A'"),
    ("oled1306", "bitmap", [0, 0, 1, 1, "AAA"],
     "oled1306.bitmap: data is not valid base64 text: 'AAA'"),
    ("oled1306", "bitmap", [0, 0, 1, 1, [1, 256]],
     "oled1306.bitmap: data[1] must be an integer 0..255, got 256"),
    ("oled1306", "bitmap", [0, 0, 1, 1, [True]],
     "oled1306.bitmap: data[0] must be an integer 0..255, got True"),
    ("oled1306", "bitmap", [0, 0, 1, 1, 7],
     "oled1306.bitmap: data must be bytes, base64 text or a list of integers 0..255, got 7"),
    ("oled1306", "bitmap", [0, 0, 1, 1, None],
     "oled1306.bitmap: data must be bytes, base64 text or a list of integers 0..255, "
     "got None"),
    ("pid", "config", math.inf, "pid.config: kp must be a finite number (float32), got inf"),
    ("pid", "config", [1, math.nan], "pid.config: ki must be a finite number (float32), got nan"),
    ("pid", "config", [1, 0, 1e39], "pid.config: kd must be a finite number (float32), got 1e+39"),
    ("pid", "set_target", True, "pid.set_target: value must be a finite number (float32), "
     "got True"),
    ("pid", "set_target", "1", "pid.set_target: value must be a finite number (float32), got '1'"),
    ("pid", "enable", 256, "pid.enable: flag must be an integer 0..255, got 256"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("module", "command", "args", "message"),
    ERRORS,
    ids=[f"{m}.{c}-{i}" for i, (m, c, _, _) in enumerate(ERRORS)],
)
def test_argument_errors(module: str, command: str, args: object, message: str) -> None:
    with pytest.raises(ModuleArgumentError) as info:
        enc(module, command, args)
    assert str(info.value) == message


def test_long_base64_value_is_shortened_in_the_message() -> None:
    with pytest.raises(ModuleArgumentError) as info:
        enc("oled1306", "bitmap", [0, 0, 1, 1, "!" * 100])
    assert str(info.value) == "oled1306.bitmap: data is not valid base64 text: '" + "!" * 36 + "..."


def test_text_at_the_limit_is_accepted() -> None:
    assert enc("oled1306", "text", [0, 0, 1, "x" * 63]) == b"\x00\x00\x01" + b"x" * 63
    assert enc("oled1306", "bitmap", [0, 0, 128, 64, bytes(1024)])[4:] == bytes(1024)


def test_bitmap_base64_round_trip() -> None:
    data = bytes(range(16))
    text = base64.b64encode(data).decode()
    assert enc("oled1306", "bitmap", {"x": 1, "y": 2, "w": 16, "h": 8, "data": text}) == (
        b"\x01\x02\x10\x08" + data
    )


# ------------------------------------------------------------------------------ MOD_RESP / EVENT


def test_decode_dht_read() -> None:
    data = f32(21.5, 40.0)
    assert decode_resp("dht", "read", data) == {"temperature_c": 21.5, "humidity_percent": 40.0}
    # float32 values come back as their shortest decimal text, not 22.399999618530273
    fields = decode_resp("dht", "read", f32(22.4, 55.3) + b"\xff")
    assert fields == {"temperature_c": 22.4, "humidity_percent": 55.3}
    assert all(type(v) is float for v in fields.values())


def test_decode_encoder_read() -> None:
    assert decode_resp("encoder", "read", struct.pack("<i", -42)) == {"count": -42}
    # the MOD_RESP wire vector: payload 00 2a 00 00 00 → data after module_id
    assert decode_resp("encoder", "read", bytes.fromhex("2a000000")) == {"count": 42}


@pytest.mark.parametrize(
    ("module", "command", "data", "message"),
    [
        ("motor", "read", b"", "unknown module 'motor'"),
        ("dht", "write", b"", "dht: unknown command 'write'"),
        ("servo", "write", b"\x00", "servo.write replies with ACK, not MOD_RESP"),
        ("i2c_pass", "read", b"", "i2c_pass: unknown command 'read'"),
        (
            "dht",
            "read",
            f32(21.5),
            "dht.read: MOD_RESP data needs 8 bytes after the module_id, got 4",
        ),
        ("encoder", "read", b"\x2a\x00\x00", "encoder.read: MOD_RESP data needs 4 bytes after "
         "the module_id, got 3"),
    ],
)  # fmt: skip
def test_decode_resp_errors(module: str, command: str, data: bytes, message: str) -> None:
    with pytest.raises(PayloadDecodeError) as info:
        decode_resp(module, command, data)
    assert str(info.value) == message


def test_decode_events() -> None:
    tick = struct.pack("<ih", 1234, -1)
    assert decode_event("encoder", 0x01, tick) == ("tick", {"count": 1234, "delta": -1})
    done = struct.pack("<i", -800)
    assert decode_event("stepper", 0x01, done) == ("done", {"position": -800})
    assert decode_event("stepper", 0x01, done + b"\x00\x00") == ("done", {"position": -800})


@pytest.mark.parametrize(
    ("module", "code", "data", "message"),
    [
        ("motor", 1, b"", "unknown module 'motor'"),
        ("servo", 1, b"", "servo emits no event 0x01"),
        ("pid", 1, f32(1, 2, 3), "pid emits no event 0x01"),  # §10 #23: no PID tick
        ("encoder", 2, bytes(6), "encoder emits no event 0x02"),
        ("encoder", 1, bytes(4), "encoder.tick event needs 6 data bytes, got 4"),
        ("stepper", 1, bytes(3), "stepper.done event needs 4 data bytes, got 3"),
    ],
)
def test_decode_event_errors(module: str, code: int, data: bytes, message: str) -> None:
    with pytest.raises(PayloadDecodeError) as info:
        decode_event(module, code, data)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("modules", "code", "size", "expected"),
    [
        (["servo", "encoder", "stepper"], 0x01, 6, "encoder"),
        (["servo", "encoder", "stepper"], 0x01, 4, "stepper"),
        (["encoder"], 0x01, 6, "encoder"),
        (["stepper"], 0x01, 6, None),  # wrong shape for the only candidate
        (["encoder", "encoder"], 0x01, 6, None),  # two instances: ambiguous (Q9)
        (["encoder", "stepper"], 0x02, 6, None),
        (["encoder", "stepper"], 0x01, 5, None),
        (["encoder", "stepper"], 0x01, 8, None),  # whole MOD_EVENT payload is not data
        ([], 0x01, 6, None),
        (["servo", "pid", "unknown"], 0x01, 6, None),
    ],
)
def test_attribute_event(modules: list[str], code: int, size: int, expected: str | None) -> None:
    assert attribute_event(modules, code, bytes(size)) == expected


def test_attribute_event_from_a_real_payload() -> None:
    """Encoder tick on the wire: MOD_EVENT `[00][01][count i32][delta i16]` (§8.4)."""
    payload = b"\x00\x01" + struct.pack("<ih", 7, 1)
    module = attribute_event(["stepper", "encoder"], payload[1], payload[2:])
    assert module == "encoder"
    assert decode_event(module, payload[1], payload[2:]) == ("tick", {"count": 7, "delta": 1})


# ------------------------------------------------------------------------------ properties


def _strategy(arg: ArgSpec) -> st.SearchStrategy[object]:
    if arg.type is WireType.F32:
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if arg.type is WireType.TEXT:
        return st.text(max_size=63).filter(lambda s: len(s.encode()) <= 63)
    if arg.type is WireType.BYTES:
        return st.binary(min_size=32 * 255, max_size=32 * 255)  # enough for any w, h
    if arg.choices is not None:
        return st.sampled_from(arg.choices)
    bounds = arg.bounds
    assert bounds is not None
    return st.integers(*bounds)


def _decode_args(spec: CommandSpec, raw: bytes) -> dict[str, object]:
    """Test-side inverse of encode_args, from the spec's wire types."""
    out: dict[str, object] = {}
    pos = 0
    fmt = {WireType.U8: "<B", WireType.U16: "<H", WireType.I32: "<i", WireType.F32: "<f"}
    for arg in spec.args:
        if pos == len(raw) and arg.optional:
            break
        if arg.type is WireType.TEXT:
            out[arg.name] = raw[pos:].decode()
            pos = len(raw)
        elif arg.type is WireType.BYTES:
            out[arg.name] = raw[pos:]
            pos = len(raw)
        else:
            (out[arg.name],) = struct.unpack_from(fmt[arg.type], raw, pos)
            pos += struct.calcsize(fmt[arg.type])
    assert pos == len(raw)
    return out


ALL_COMMANDS = [c for m in CATALOG.values() for c in m.commands.values()]


@given(st.sampled_from(ALL_COMMANDS), st.data())
def test_encode_by_name_and_position_agree_and_round_trip(
    spec: CommandSpec, data: st.DataObject
) -> None:
    values = {a.name: data.draw(_strategy(a), label=a.name) for a in spec.args}
    by_name = encode_args(spec, values)
    by_position = encode_args(spec, list(values.values()))
    assert by_name == by_position
    decoded = _decode_args(spec, by_name)
    for arg in spec.args:
        if arg.type is WireType.F32:
            assert struct.pack("<f", decoded[arg.name]) == struct.pack("<f", values[arg.name])
        else:
            assert decoded[arg.name] == values[arg.name]


@given(st.sampled_from(ALL_COMMANDS), st.data())
def test_defaults_fill_in_missing_arguments(spec: CommandSpec, data: st.DataObject) -> None:
    given_args = {
        a.name: data.draw(_strategy(a), label=a.name)
        for a in spec.args
        if a.required or data.draw(st.booleans(), label=f"give {a.name}")
    }
    decoded = _decode_args(spec, encode_args(spec, given_args))
    for arg in spec.args:
        if arg.name in given_args:
            continue
        if arg.optional:
            assert arg.name not in decoded
        else:
            assert decoded[arg.name] == arg.default


def _out_of_range(arg: ArgSpec) -> st.SearchStrategy[int]:
    bounds = arg.bounds
    assert bounds is not None
    lo, hi = bounds
    return st.integers(max_value=lo - 1) | st.integers(min_value=hi + 1)


INT_ARGS = [
    (c, a) for c in ALL_COMMANDS for a in c.args if a.bounds is not None and a.choices is None
]


@given(st.sampled_from(INT_ARGS), st.data())
def test_out_of_range_integers_are_rejected(
    case: tuple[CommandSpec, ArgSpec], data: st.DataObject
) -> None:
    spec, arg = case
    value = data.draw(_out_of_range(arg))
    lo, hi = arg.bounds or (0, 0)
    with pytest.raises(ModuleArgumentError) as info:
        encode_args(spec, _valid_except(spec, arg.name, value))
    assert str(info.value) == (
        f"{spec.qualified_name}: {arg.name} must be an integer {lo}..{hi}, got {value!r}"
    )


FLOAT_ARGS = [(c, a) for c in ALL_COMMANDS for a in c.args if a.type is WireType.F32]


@given(
    st.sampled_from(FLOAT_ARGS),
    st.floats(min_value=FLOAT32_MAX, exclude_min=True)
    | st.floats(max_value=-FLOAT32_MAX, exclude_max=True)
    | st.just(math.nan),
)
def test_float_args_reject_values_beyond_float32(
    case: tuple[CommandSpec, ArgSpec], value: float
) -> None:
    spec, arg = case
    with pytest.raises(ModuleArgumentError) as info:
        encode_args(spec, _valid_except(spec, arg.name, value))
    assert str(info.value) == (
        f"{spec.qualified_name}: {arg.name} must be a finite number (float32), got {value!r}"
    )


def _valid_except(spec: CommandSpec, name: str, value: object) -> Mapping[str, object]:
    args: dict[str, object] = {}
    for a in spec.args:
        if a.type is WireType.BYTES:
            args[a.name] = bytes(32 * 255)
        elif a.type is WireType.TEXT:
            args[a.name] = "x"
        elif a.choices is not None:
            args[a.name] = a.choices[0]
        elif a.bounds is not None:
            args[a.name] = a.bounds[0]
        else:
            args[a.name] = 0.0
    args[name] = value
    return args
