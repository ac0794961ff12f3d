"""Pure validation against HELLO_RESP (conduyt_bridge.device.capabilities), no I/O.

Boards: the simulator's `uno` (20 pins, Uno R3 caps, max_payload 128), `kitchen`
(ESP32, servo/neopixel/dht, light/door_open/status) and `thermostat` (OTA-capable).
"""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conduyt_bridge.device.capabilities import (
    check_command,
    check_module_args,
    check_module_pins,
    check_pin_read,
    check_pin_write,
    check_subscribe,
    check_subscription_slot,
    decode_module_args,
    infer_max_subscriptions,
    module_command_spec,
    parse_mode_name,
    parse_pin_ref,
    read_is_analog,
    reply_payload_limit,
    require_mode,
    require_pin,
    stream_pins,
)
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytError,
    ConduytForbiddenError,
    ConduytPayloadError,
)
from conduyt_bridge.northbound.conduyt.payloads import error_kind
from conduyt_bridge.protocol.constants import PacketType, PinMode, SubscribeMode
from conduyt_bridge.protocol.hello import HelloResp
from conduyt_bridge.protocol.modules import CATALOG
from conduyt_bridge.simulator.profiles import get_profile

UNO = get_profile("uno").hello
KITCHEN = get_profile("kitchen").hello
THERMO = get_profile("thermostat").hello
WORKSHOP = get_profile("workshop").hello


def hello_with(max_payload: int) -> HelloResp:
    from dataclasses import replace

    return replace(UNO, max_payload=max_payload)


def refused(exc_type: type[ConduytError], name: str, message: str):  # type: ignore[no-untyped-def]
    """pytest.raises for an exact error name and message."""

    class _Ctx:
        def __enter__(self) -> None:
            self.ctx = pytest.raises(exc_type)
            self.info = self.ctx.__enter__()

        def __exit__(self, *exc: object) -> bool:
            handled = self.ctx.__exit__(*exc)  # type: ignore[arg-type]
            assert self.info.value.name == name
            assert str(self.info.value) == message
            return bool(handled)

    return _Ctx()


# ------------------------------------------------------------------------------ pins


def test_pin_exists() -> None:
    assert require_pin(UNO, 19).pin == 19
    with refused(
        ConduytCapabilityError, "INVALID_PIN", "pin 42 does not exist: this board has 20 pins"
    ):
        require_pin(UNO, 42)
    with refused(
        ConduytCapabilityError, "INVALID_PIN", "pin 20 does not exist: this board has 20 pins"
    ):
        require_pin(UNO, 20)


def test_pin_ref_from_topic() -> None:
    assert parse_pin_ref(UNO, "14") == 14
    for bad in ("A0", "-1", "x", "1.0", "", "\u0661"):  # the last is an Arabic-Indic digit
        with pytest.raises(ConduytCapabilityError) as info:
            parse_pin_ref(UNO, bad)
        assert info.value.name == "INVALID_PIN"
    with pytest.raises(ConduytCapabilityError, match=r"this board has 20 pins, numbered 0\.\.19"):
        parse_pin_ref(UNO, "A0")


def test_mode_needs_its_capability_bit() -> None:
    require_mode(UNO, 3, PinMode.PWM)
    require_mode(UNO, 14, PinMode.ANALOG)
    require_mode(UNO, 4, PinMode.INPUT_PULLUP)
    with refused(
        ConduytCapabilityError,
        "PIN_MODE_UNSUPPORTED",
        "pin 4 supports input, output, input_pullup; not pwm (pwm pins: 3, 5, 6, 9, 10, 11)",
    ):
        require_mode(UNO, 4, PinMode.PWM)
    with refused(
        ConduytCapabilityError,
        "PIN_MODE_UNSUPPORTED",
        "pin 13 supports input, output, input_pullup; not analog "
        "(analog pins: 14, 15, 16, 17, 18, 19)",
    ):
        require_mode(UNO, 13, PinMode.ANALOG)
    # thermostat pin 3 is an input-only button pin
    with refused(
        ConduytCapabilityError,
        "PIN_MODE_UNSUPPORTED",
        "pin 3 supports input, input_pullup; not output (output pins: 0, 1, 2, 6, 7)",
    ):
        require_mode(THERMO, 3, PinMode.OUTPUT)


def test_mode_names() -> None:
    assert parse_mode_name(" PWM ") is PinMode.PWM
    assert parse_mode_name("input_pullup") is PinMode.INPUT_PULLUP
    assert parse_mode_name("pullup") is None


def test_write_ranges_by_mode() -> None:
    # Unknown mode: 0/1 digital (needs DIGITAL_OUT), 2..255 PWM (needs PWM_OUT).
    assert check_pin_write(UNO, 13, 1, False, None) is PinMode.OUTPUT
    assert check_pin_write(UNO, 3, 128, True, None) is PinMode.PWM
    with refused(
        ConduytCapabilityError,
        "PIN_MODE_UNSUPPORTED",
        "pin 13 supports input, output, input_pullup; not pwm (pwm pins: 3, 5, 6, 9, 10, 11)",
    ):
        check_pin_write(UNO, 13, 128, True, None)
    # pwm mode: duty 0..255, duty 1 stays PWM
    assert check_pin_write(UNO, 3, 1, True, PinMode.PWM) is PinMode.PWM
    with refused(
        ConduytCapabilityError,
        "OUT_OF_RANGE",
        "pin 3 is in pwm mode and takes a PWM duty cycle 0..255, got 256",
    ):
        check_pin_write(UNO, 3, 256, True, PinMode.PWM)
    with refused(
        ConduytCapabilityError, "OUT_OF_RANGE", "pin 3 takes a PWM duty cycle 0..255, got -1"
    ):
        check_pin_write(UNO, 3, -1, True, None)
    # output mode: 0/1 only
    with refused(
        ConduytCapabilityError,
        "OUT_OF_RANGE",
        "pin 3 is in output mode and takes 0 or 1, got 128; set mode pwm for a duty cycle 0..255",
    ):
        check_pin_write(UNO, 3, 128, True, PinMode.OUTPUT)
    with refused(
        ConduytCapabilityError, "OUT_OF_RANGE", "pin 13 is in output mode and takes 0 or 1, got 7"
    ):
        check_pin_write(UNO, 13, 7, True, PinMode.OUTPUT)
    with refused(
        ConduytCapabilityError, "OUT_OF_RANGE", "pin 13 takes 0 or 1 as a digital level, got 7"
    ):
        check_pin_write(UNO, 13, 7, False, None)
    # input modes: never written
    with refused(
        ConduytCapabilityError, "WRONG_PIN_MODE", "pin 13 is in input mode: set mode output first"
    ):
        check_pin_write(UNO, 13, 1, False, PinMode.INPUT)
    with refused(
        ConduytCapabilityError,
        "WRONG_PIN_MODE",
        "pin 3 is in input_pullup mode: set mode output or pwm first",
    ):
        check_pin_write(UNO, 3, 1, False, PinMode.INPUT_PULLUP)
    with refused(
        ConduytCapabilityError,
        "WRONG_PIN_MODE",
        "pin 3 is in input mode and cannot be written: it supports input, input_pullup",
    ):
        check_pin_write(THERMO, 3, 1, False, PinMode.INPUT)


def test_reads() -> None:
    check_pin_read(UNO, 14, analog=True)
    check_pin_read(UNO, 13, analog=False)
    with refused(
        ConduytCapabilityError,
        "PIN_MODE_UNSUPPORTED",
        "pin 13 has no analog input (analog pins: 14, 15, 16, 17, 18, 19)",
    ):
        check_pin_read(UNO, 13, analog=True)
    assert read_is_analog(UNO.pins[14], PinMode.ANALOG)
    assert not read_is_analog(UNO.pins[14], None)  # has a digital function: digital read
    assert not read_is_analog(UNO.pins[14], PinMode.INPUT)
    # an active analog_poll puts ADC counts on pin/{n}: a one-shot read must match them
    assert read_is_analog(UNO.pins[14], None, analog_poll=True)
    assert read_is_analog(UNO.pins[14], PinMode.INPUT, analog_poll=True)
    assert not read_is_analog(UNO.pins[13], None, analog_poll=True)  # no ADC: never analog


def test_subscriptions() -> None:
    check_subscribe(UNO, 14, SubscribeMode.ANALOG_POLL, 1, 0)
    check_subscribe(UNO, 2, SubscribeMode.CHANGE, 20, 0)
    with refused(
        ConduytCapabilityError,
        "PIN_MODE_UNSUPPORTED",
        "pin 2 has no analog input: analog_poll needs ANALOG_IN "
        "(analog pins: 14, 15, 16, 17, 18, 19)",
    ):
        check_subscribe(UNO, 2, SubscribeMode.ANALOG_POLL, 100, 0)
    with refused(
        ConduytCapabilityError,
        "OUT_OF_RANGE",
        "rising on pin 2: interval_ms must be 20..65535, got 19",
    ):
        check_subscribe(UNO, 2, SubscribeMode.RISING, 19, 0)
    with refused(
        ConduytCapabilityError,
        "OUT_OF_RANGE",
        "analog_poll on pin 14: threshold must be 0..65535, got -1",
    ):
        check_subscribe(UNO, 14, SubscribeMode.ANALOG_POLL, 100, -1)


def test_max_subscriptions_inferred_from_max_payload() -> None:
    assert infer_max_subscriptions(hello_with(128)) == 8  # AVR
    assert infer_max_subscriptions(hello_with(256)) == 12  # SAMD 12 / Uno R4 16: the smaller
    assert infer_max_subscriptions(hello_with(512)) == 16  # ESP32, RP2040, ...
    assert infer_max_subscriptions(hello_with(64)) == 8
    assert infer_max_subscriptions(hello_with(1024)) == 16
    check_subscription_slot(7, 8, 128)
    with refused(
        ConduytCapabilityError,
        "SUB_LIMIT_REACHED",
        "all 8 pin subscription slots of this board are used since its last reset (the "
        "firmware frees them only on RESET, quirk Q6; 8 slots inferred from max_payload 128)",
    ):
        check_subscription_slot(8, 8, 128)


def test_reply_limits_match_the_protocol_table() -> None:
    # `docs/protocol.md` §1.5: device→host over COBS.
    assert reply_payload_limit(hello_with(128)) == 121
    assert reply_payload_limit(hello_with(256)) == 249
    assert reply_payload_limit(hello_with(512)) == 505


def test_stream_pins() -> None:
    # AVR: bit p = analog channel p = A0 + p; elsewhere bit p = pin p.
    assert stream_pins(UNO, 0b11) == [14, 15]
    assert stream_pins(UNO, 1 << 6) == [-1]
    assert stream_pins(KITCHEN, 1 << 6 | 1 << 7) == [6, 7]
    assert stream_pins(KITCHEN, 1) == [-1]


# ------------------------------------------------------------------------------ modules


def test_module_commands() -> None:
    spec = module_command_spec(KITCHEN, 0, 0x02)
    assert spec is not None and spec.qualified_name == "servo.write"
    assert decode_module_args(spec, b"\x5a") == {"angle": 90}
    with refused(
        ConduytPayloadError, "BAD_ARGUMENT", "servo.write: angle must be an integer 0..180, got 200"
    ):
        decode_module_args(spec, b"\xc8")
    with refused(
        ConduytPayloadError,
        "BAD_ARGUMENT",
        "servo.write: arguments end after 0 bytes; angle (u8) needs bytes 0..0",
    ):
        decode_module_args(spec, b"")
    with refused(
        ConduytPayloadError, "BAD_ARGUMENT", "servo.write: 1 bytes after the last argument"
    ):
        decode_module_args(spec, b"\x5a\x00")
    fill = CATALOG["neopixel"].commands["fill"]
    assert decode_module_args(fill, b"\x01\x02\x03") == {"r": 1, "g": 2, "b": 3}
    assert decode_module_args(fill, b"\x01\x02\x03\x04") == {"r": 1, "g": 2, "b": 3, "w": 4}
    text = CATALOG["oled1306"].commands["text"]
    assert decode_module_args(text, b"\x00\x00\x01hi") == {"x": 0, "y": 0, "size": 1, "text": "hi"}
    with refused(
        ConduytCapabilityError,
        "MODULE_NOT_LOADED",
        "no module with id 3 on this board (modules: 0 servo, 1 neopixel, 2 dht)",
    ):
        module_command_spec(KITCHEN, 3, 1)
    with refused(
        ConduytCapabilityError,
        "UNKNOWN_MODULE_CMD",
        "module 2 (dht) has no command 0x07 (commands: 0x01 begin, 0x02 read)",
    ):
        module_command_spec(KITCHEN, 2, 7)
    with refused(
        ConduytCapabilityError,
        "UNKNOWN_MODULE_CMD",
        "module 4 (i2c_pass) has no command 0x01 (commands: none)",
    ):
        module_command_spec(WORKSHOP, 4, 1)


def test_module_pin_arguments_are_checked_against_the_board() -> None:
    """Pin arguments of module commands (§8) need a pin with the right capability bits:
    the firmware checks none (Q12)."""
    servo = CATALOG["servo"].commands["attach"]
    check_module_pins(KITCHEN, servo, {"pin": 1, "min_us": 0, "max_us": 0})
    check_module_pins(KITCHEN, servo, {"pin": 0})  # DIGITAL_OUT without PWM is enough
    with refused(
        ConduytCapabilityError,
        "INVALID_PIN",
        "servo.attach: pin 200 does not exist: this board has 10 pins",
    ):
        check_module_pins(KITCHEN, servo, {"pin": 200})
    with refused(
        ConduytCapabilityError,
        "PIN_MODE_UNSUPPORTED",
        "servo.attach: pin 3 supports input, input_pullup; not output "
        "(output pins: 0, 1, 2, 4, 5, 6, 7, 8, 9)",
    ):
        check_module_pins(KITCHEN, servo, {"pin": 3})
    dht = CATALOG["dht"].commands["begin"]
    check_module_pins(KITCHEN, dht, {"pin": 4, "sensor_type": 22})
    with refused(  # bidirectional: an input-only pin cannot start a reading
        ConduytCapabilityError,
        "PIN_MODE_UNSUPPORTED",
        "dht.begin: pin 3 supports input, input_pullup; not output "
        "(output pins: 0, 1, 2, 4, 5, 6, 7, 8, 9)",
    ):
        check_module_pins(KITCHEN, dht, {"pin": 3, "sensor_type": 22})
    set_input = CATALOG["pid"].commands["set_input"]
    check_module_pins(WORKSHOP, set_input, {"pin": 12})
    with refused(
        ConduytCapabilityError,
        "PIN_MODE_UNSUPPORTED",
        "pid.set_input: pin 4 supports input, output, pwm, input_pullup; not analog "
        "(analog pins: 12, 13, 14)",
    ):
        check_module_pins(WORKSHOP, set_input, {"pin": 4})
    with refused(
        ConduytCapabilityError,
        "PIN_MODE_UNSUPPORTED",
        "pid.set_input: pin 13 supports input, output, input_pullup; not analog "
        "(analog pins: 14, 15, 16, 17, 18, 19)",
    ):
        check_module_pins(UNO, set_input, {"pin": 13})
    set_output = CATALOG["pid"].commands["set_output"]
    with refused(
        ConduytCapabilityError,
        "PIN_MODE_UNSUPPORTED",
        "pid.set_output: pin 14 supports input, output, analog, input_pullup; not pwm "
        "(pwm pins: 3, 5, 6, 9, 10, 11)",
    ):
        check_module_pins(UNO, set_output, {"pin": 14})
    config = CATALOG["stepper"].commands["config"]
    check_module_pins(WORKSHOP, config, {"step_pin": 2, "dir_pin": 3, "en_pin": 0xFF})
    check_module_pins(WORKSHOP, config, {"step_pin": 2, "dir_pin": 3, "en_pin": 4})
    with refused(
        ConduytCapabilityError,
        "INVALID_PIN",
        "stepper.config: en_pin: pin 32 does not exist: this board has 16 pins",
    ):
        check_module_pins(WORKSHOP, config, {"step_pin": 2, "dir_pin": 3, "en_pin": 32})
    with refused(
        ConduytCapabilityError,
        "INVALID_PIN",
        "stepper.config: dir_pin: pin 16 does not exist: this board has 16 pins",
    ):
        check_module_pins(WORKSHOP, config, {"step_pin": 2, "dir_pin": 16})
    attach = CATALOG["encoder"].commands["attach"]
    with refused(
        ConduytCapabilityError,
        "INVALID_PIN",
        "encoder.attach: pin_b: pin 20 does not exist: this board has 20 pins",
    ):
        check_module_pins(UNO, attach, {"pin_a": 2, "pin_b": 20})
    # commands without pins, and the OLED's I2C address, are not pin checked
    check_module_pins(UNO, CATALOG["oled1306"].commands["begin"], {"i2c_addr": 0x3C})
    check_module_pins(UNO, CATALOG["servo"].commands["write"], {"angle": 90})
    # bytes in: the catalog's checks first, then the board's pins
    assert check_module_args(WORKSHOP, set_input, b"\x0c") == {"pin": 12}
    with refused(
        ConduytPayloadError, "BAD_ARGUMENT", "pid.set_input: 1 bytes after the last argument"
    ):
        check_module_args(WORKSHOP, set_input, b"\x04\x00")
    with refused(
        ConduytCapabilityError,
        "PIN_MODE_UNSUPPORTED",
        "pid.set_input: pin 4 supports "
        "input, output, pwm, input_pullup; not analog (analog pins: 12, 13, 14)",
    ):
        check_module_args(WORKSHOP, set_input, b"\x04")


# ------------------------------------------------------------------------------ raw commands


def ok(hello: HelloResp, type_: int, payload: bytes, **kw: object) -> None:
    check_command(hello, type_, payload, max_command_payload=124, **kw)  # type: ignore[arg-type]


def bad(hello: HelloResp, type_: int, payload: bytes, **kw: object) -> ConduytError:
    with pytest.raises(ConduytError) as info:
        ok(hello, type_, payload, **kw)
    return info.value


@pytest.mark.parametrize(
    ("type_", "payload"),
    [
        (PacketType.PING, b""),
        (PacketType.HELLO, b""),
        (PacketType.RESET, b""),
        (PacketType.PIN_MODE, b"\x0d\x01"),
        (PacketType.PIN_WRITE, b"\x0d\x01"),
        (PacketType.PIN_WRITE, b"\x03\x01\x02"),
        (PacketType.PIN_WRITE, b"\x03\x80"),
        (PacketType.PIN_READ, b"\x0e\x03"),
        (PacketType.PIN_READ, b"\x0d"),
        (PacketType.PIN_SUBSCRIBE, b"\x0e\x04\xf4\x01\x04\x00\x00"),
        (PacketType.PIN_UNSUBSCRIBE, b"\x0e"),
        (PacketType.I2C_WRITE, b"\x3c\x00\xaf"),
        (PacketType.I2C_READ, b"\x3c\x04"),
        (PacketType.I2C_READ_REG, b"\x3c\x00\x04"),
        (PacketType.SPI_XFER, b"\x0a\xff\x00"),
        (PacketType.STREAM_START, b"\x03\x00\x64\x00\x00"),
        (PacketType.STREAM_STOP, b""),
    ],
)
def test_raw_commands_accepted(type_: int, payload: bytes) -> None:
    ok(UNO, type_, payload)


@pytest.mark.parametrize(
    ("type_", "payload", "kind", "name", "message"),
    [
        (
            0x82,
            b"",
            "capability",
            "UNKNOWN_TYPE",
            "ACK (0x82) is an event type (0x80..0xFF), not a command: the board would NAK it "
            "UNKNOWN_TYPE",
        ),
        (
            0x85,
            b"",
            "capability",
            "UNKNOWN_TYPE",
            "0x85 is an event type (0x80..0xFF), not a command: the board would NAK it "
            "UNKNOWN_TYPE",
        ),
        (
            0x05,
            b"",
            "capability",
            "UNKNOWN_TYPE",
            "0x05 is not a Conduyt command type: the board would NAK it UNKNOWN_TYPE",
        ),
        (
            PacketType.PING,
            b"\x00",
            "payload",
            "BAD_LENGTH",
            "PING payload must be 0 bytes (it takes no payload), got 1",
        ),
        (
            PacketType.PIN_MODE,
            b"\x0d",
            "payload",
            "BAD_LENGTH",
            "PIN_MODE payload must be 2 bytes [pin, mode], got 1",
        ),
        (
            PacketType.PIN_MODE,
            b"\x0d\x05",
            "payload",
            "BAD_MODE",
            "PIN_MODE mode 5 is not a pin mode (0..4)",
        ),
        (
            PacketType.PIN_MODE,
            b"\x2a\x01",
            "capability",
            "INVALID_PIN",
            "pin 42 does not exist: this board has 20 pins",
        ),
        (
            PacketType.PIN_WRITE,
            b"\x0d\x80",
            "capability",
            "PIN_MODE_UNSUPPORTED",
            "pin 13 supports input, output, input_pullup; not pwm (pwm pins: 3, 5, 6, 9, 10, 11)",
        ),
        (
            PacketType.PIN_WRITE,
            b"\x0d\x01\x03",
            "payload",
            "BAD_MODE",
            "PIN_WRITE mode byte must be 1 (output) or 2 (pwm), got 3",
        ),
        (
            PacketType.PIN_READ,
            b"\x0d\x03",
            "capability",
            "PIN_MODE_UNSUPPORTED",
            "pin 13 has no analog input (analog pins: 14, 15, 16, 17, 18, 19)",
        ),
        (
            PacketType.PIN_SUBSCRIBE,
            b"\x0e\x04\xf4\x01\x04\x00",
            "payload",
            "BAD_LENGTH",
            "PIN_SUBSCRIBE payload must be 7 bytes [pin, mode, interval u16le, threshold u16le, "
            "0x00], got 6",
        ),
        (
            PacketType.PIN_SUBSCRIBE,
            b"\x02\x04\xf4\x01\x04\x00\x00",
            "capability",
            "PIN_MODE_UNSUPPORTED",
            "pin 2 has no analog input: analog_poll needs ANALOG_IN (analog pins: 14, 15, 16, "
            "17, 18, 19)",
        ),
        (
            PacketType.I2C_WRITE,
            b"\x07\x00",
            "capability",
            "I2C_NOT_AVAILABLE",
            "I2C address 0x07 is outside 0x08..0x77",
        ),
        (
            PacketType.I2C_READ,
            b"\x3c\x7a",
            "capability",
            "PAYLOAD_TOO_LARGE",
            "a read of 122 bytes does not fit this board's reply limit of 121 bytes",
        ),
        (
            PacketType.SPI_XFER,
            b"\x0a",
            "payload",
            "BAD_LENGTH",
            "SPI_XFER payload needs at least 2 bytes [cs_pin, data…], got 1",
        ),
        (
            PacketType.STREAM_START,
            b"\x40\x00\x64\x00\x00",
            "capability",
            "PIN_MODE_UNSUPPORTED",
            "STREAM_START bit 6 has no analog input behind it (analog pins: 14, 15, 16, 17, 18, "
            "19)",
        ),
        (
            PacketType.MOD_CMD,
            b"\x00\x01",
            "capability",
            "MODULE_NOT_LOADED",
            "no module with id 0 on this board (modules: none)",
        ),
        (
            PacketType.DS_WRITE,
            b"\x00\x01",
            "capability",
            "UNKNOWN_DATASTREAM",
            "datastream index 0 does not exist: this board has 0 datastreams",
        ),
        (
            PacketType.DS_READ,
            b"\x00",
            "capability",
            "UNKNOWN_DATASTREAM",
            "DS_READ is not supported by the firmware (it NAKs every DS_READ UNKNOWN_DATASTREAM): "
            "read the retained state topic ds/{slug}",
        ),
        (
            PacketType.OTA_BEGIN,
            bytes(36),
            "forbidden",
            "OTA_DISABLED",
            "OTA_BEGIN refused: OTA packets are disabled for this board (allow_ota = false)",
        ),
        (
            PacketType.OTA_FINALIZE,
            b"",
            "forbidden",
            "OTA_DISABLED",
            "OTA_FINALIZE refused: OTA packets are disabled for this board (allow_ota = false)",
        ),
        (
            PacketType.PIN_WRITE,
            bytes(125),
            "capability",
            "PAYLOAD_TOO_LARGE",
            "PIN_WRITE payload of 125 bytes exceeds this board's limit of 124 bytes",
        ),
    ],
)
def test_raw_commands_refused(
    type_: int, payload: bytes, kind: str, name: str, message: str
) -> None:
    error = bad(UNO, type_, payload)
    assert (error_kind(error), error.name, str(error)) == (kind, name, message)


def test_raw_stateful_pin_modes_and_ota() -> None:
    modes = {13: PinMode.INPUT, 3: PinMode.OUTPUT}
    assert bad(UNO, PacketType.PIN_WRITE, b"\x0d\x01", pin_modes=modes).name == "WRONG_PIN_MODE"
    assert bad(UNO, PacketType.PIN_WRITE, b"\x03\x80", pin_modes=modes).name == "OUT_OF_RANGE"
    ok(UNO, PacketType.PIN_WRITE, b"\x03\x01", pin_modes=modes)
    # OTA: allowed only with allow_ota and an OTA-capable build (thermostat is, uno is not)
    ok(THERMO, PacketType.OTA_BEGIN, bytes(36), allow_ota=True)
    ok(THERMO, PacketType.OTA_CHUNK, bytes(5), allow_ota=True)
    ok(THERMO, PacketType.OTA_FINALIZE, b"", allow_ota=True)
    assert bad(UNO, PacketType.OTA_BEGIN, bytes(36), allow_ota=True).name == "OTA_INVALID"
    assert isinstance(bad(THERMO, PacketType.OTA_CHUNK, bytes(5)), ConduytForbiddenError)


def test_raw_datastreams_and_modules() -> None:
    # kitchen: light UINT8 writable (index 0), door_open BOOL read-only (1), status STRING (2)
    ok(KITCHEN, PacketType.DS_WRITE, b"\x00\x32")
    assert bad(KITCHEN, PacketType.DS_WRITE, b"\x00\x32\x00").name == "BAD_VALUE"
    assert bad(KITCHEN, PacketType.DS_WRITE, b"\x01\x01").name == "DATASTREAM_READONLY"
    # thermostat: setpoint FLOAT32 writable (2), heater BOOL writable (3)
    ok(THERMO, PacketType.DS_WRITE, b"\x02" + struct.pack("<f", 22.5))
    assert bad(THERMO, PacketType.DS_WRITE, b"\x02" + struct.pack("<f", float("nan"))).name == (
        "OUT_OF_RANGE"
    )
    assert bad(THERMO, PacketType.DS_WRITE, b"\x03\x02").name == "OUT_OF_RANGE"
    ok(KITCHEN, PacketType.MOD_CMD, b"\x00\x02\x5a")  # servo write 90
    ok(KITCHEN, PacketType.MOD_CMD, b"\x00\x01\x01\x00\x00\x00\x00")  # servo attach pin 1
    assert bad(KITCHEN, PacketType.MOD_CMD, b"\x00\x02\xc8").name == "BAD_ARGUMENT"
    # pin arguments are checked like the typed topic's (servo attach pin 200, 10-pin board)
    error = bad(KITCHEN, PacketType.MOD_CMD, b"\x00\x01\xc8\x00\x00\x00\x00")
    assert (error_kind(error), error.name, str(error)) == (
        "capability",
        "INVALID_PIN",
        "servo.attach: pin 200 does not exist: this board has 10 pins",
    )
    ok(WORKSHOP, PacketType.MOD_CMD, b"\x03\x03\x0e")  # pid set_input pin 14 (ADC)
    error = bad(WORKSHOP, PacketType.MOD_CMD, b"\x03\x03\x04")  # pin 4: no ADC
    assert (error_kind(error), error.name) == ("capability", "PIN_MODE_UNSUPPORTED")
    ok(WORKSHOP, PacketType.MOD_CMD, b"\x01\x01\x02\x03\xff\xc8\x00")  # en_pin none
    assert bad(WORKSHOP, PacketType.MOD_CMD, b"\x01\x01\x02\x03\x40\xc8\x00").name == (
        "INVALID_PIN"
    )
    assert bad(KITCHEN, PacketType.MOD_CMD, b"\x00").name == "BAD_LENGTH"


packet_types = st.integers(0, 255)


@given(type_=packet_types, payload=st.binary(max_size=40))
def test_check_command_only_raises_bridge_errors(type_: int, payload: bytes) -> None:
    for hello in (UNO, KITCHEN, WORKSHOP):
        with contextlib.suppress(ConduytError):
            check_command(hello, type_, payload, max_command_payload=124, allow_ota=True)
