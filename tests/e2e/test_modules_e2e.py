"""Module topics end to end: `module/{mod}/{command}` → MOD_CMD → `…/result`, MOD_EVENT →
`module/{mod}/event/{event}`; simulated board on a real pty, real Mosquitto.

Boards: `kitchen` (servo 0, neopixel 1, dht 2) and `workshop` (encoder 0, stepper 1,
oled1306 2, pid 3, i2c_pass 4). Every command of the seven built-in modules is sent
once with its exact MOD_CMD payload checked on the simulator's receive log.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.broker import Broker
from support.harness import wait_until
from support.rig import Rig, rig

from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.values import shortest_float32
from conduyt_bridge.simulator.modules import Encoder, Servo, Stepper
from conduyt_bridge.simulator.profiles import ModuleSpec, get_profile


def f32(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


@pytest.fixture
async def kitchen(mqtt_broker: Broker, base_topic: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with rig(mqtt_broker, base_topic, tmp_path, "kitchen") as r:
        yield r


@pytest.fixture
async def workshop(mqtt_broker: Broker, base_topic: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with rig(mqtt_broker, base_topic, tmp_path, "workshop") as r:
        yield r


async def run_table(r: Rig, table: list[tuple[str, str, bytes, dict[str, Any]]]) -> None:
    """Each (suffix, payload, MOD_CMD payload, result fields): the reply on the response
    topic, the message on `…/result` and the one packet the board received."""
    for suffix, payload, wire, fields in table:
        mark = r.mark()
        before = len(r.rec.messages(f"{r.p}/{suffix}/result"))
        reply = await r.request(suffix, payload)
        assert reply == {"ok": True, **fields}, suffix
        assert r.sent(mark) == [(PacketType.MOD_CMD, wire)], suffix
        await wait_until(lambda s=suffix, n=before: len(r.rec.messages(f"{r.p}/{s}/result")) > n)
        result = r.rec.messages(f"{r.p}/{suffix}/result")[before]
        assert (result.json(), result.retain, result.qos) == ({"ok": True, **fields}, False, 1)
    assert r.rec.messages(f"{r.p}/error") == []


async def test_servo_neopixel_dht(kitchen: Rig) -> None:
    await run_table(
        kitchen,
        [
            ("module/servo/attach", '{"pin": 1}', b"\x00\x01\x01\x00\x00\x00\x00", {}),
            ("module/servo/attach", "[1, 544, 2400]", b"\x00\x01\x01\x20\x02\x60\x09", {}),
            ("module/servo/write", "90", b"\x00\x02\x5a", {}),
            ("module/servo/write", '{"angle": 45}', b"\x00\x02\x2d", {}),
            ("module/servo/write_us", "1500", b"\x00\x03\xdc\x05", {}),
            ("module/servo/detach", "", b"\x00\x04", {}),
            ("module/neopixel/begin", '{"pin": 2, "count": 8}', b"\x01\x01\x02\x08\x00\x00", {}),
            (
                "module/neopixel/set_pixel",
                '{"index": 3, "r": 255, "g": 0, "b": 16}',
                b"\x01\x02\x03\x00\xff\x00\x10",
                {},
            ),
            (
                "module/neopixel/set_pixel",
                "[4, 1, 2, 3, 4]",
                b"\x01\x02\x04\x00\x01\x02\x03\x04",
                {},
            ),
            (
                "module/neopixel/set_range",
                '{"start": 0, "count": 4, "r": 1, "g": 2, "b": 3}',
                b"\x01\x03\x00\x00\x04\x00\x01\x02\x03",
                {},
            ),
            ("module/neopixel/fill", "[10, 20, 30]", b"\x01\x04\x0a\x14\x1e", {}),
            ("module/neopixel/show", "{}", b"\x01\x05", {}),
            ("module/neopixel/brightness", '{"value": 64}', b"\x01\x06\x40", {}),
            ("module/dht/begin", '{"pin": 4}', b"\x02\x01\x04\x16", {}),
        ],
    )
    board = kitchen.board
    servo = board.modules[0]
    assert isinstance(servo, Servo) and servo.pin is None  # detached
    # dht read → MOD_RESP [0x00][temp f32][hum f32], decoded on …/result
    mark = kitchen.mark()
    reply = await kitchen.request("module/dht/read", "")
    assert kitchen.sent(mark) == [(PacketType.MOD_CMD, b"\x02\x02")]
    resp = next(p for p in reversed(board.sent) if p.type == PacketType.MOD_RESP)
    t, h = struct.unpack("<ff", resp.payload[1:])
    fields = {"temperature_c": shortest_float32(t), "humidity_percent": shortest_float32(h)}
    assert reply == {"ok": True, **fields}
    result = await kitchen.rec.wait_for(f"{kitchen.p}/module/dht/read/result")
    assert result.json() == {"ok": True, **fields}
    # by numeric module id; the result topic mirrors the command topic
    reply = await kitchen.request("module/2/read", '{"transaction": "abc"}')
    assert reply["ok"] is True and reply["transaction"] == "abc"
    result = await kitchen.rec.wait_for(f"{kitchen.p}/module/2/read/result")
    assert result.json()["transaction"] == "abc" and "temperature_c" in result.json()


@pytest.mark.parametrize(
    ("suffix", "payload", "error", "name", "message"),
    [
        (
            "module/fan/spin",
            "1",
            "capability",
            "MODULE_NOT_LOADED",
            "module 'fan' is not loaded on board 'kitchen' (modules: servo, neopixel, dht)",
        ),
        (
            "module/servo/spin",
            "1",
            "capability",
            "UNKNOWN_MODULE_CMD",
            "module 'servo' (servo) has no command 'spin' (commands: attach, write, write_us, "
            "detach)",
        ),
        (
            "module/servo/write",
            "200",
            "payload",
            "BAD_ARGUMENT",
            "servo.write: angle must be an integer 0..180, got 200",
        ),
        (
            "module/servo/write",
            '{"angel": 90}',
            "payload",
            "BAD_ARGUMENT",
            "servo.write: unknown argument 'angel' (expected angle)",
        ),
        (
            "module/servo/write",
            "ninety",
            "payload",
            "BAD_ARGUMENT",
            "servo.write: angle must be an integer 0..180, got 'ninety'",
        ),
        (
            "module/servo/write",
            "[1, 2]",
            "payload",
            "BAD_ARGUMENT",
            "servo.write: takes at most 1 argument (angle), got 2",
        ),
        (
            "module/servo/attach",
            "{}",
            "payload",
            "BAD_ARGUMENT",
            "servo.attach: missing argument 'pin'",
        ),
        (
            "module/dht/begin",
            '{"pin": 4, "sensor_type": 12}',
            "payload",
            "BAD_ARGUMENT",
            "dht.begin: sensor_type must be one of 11, 22, got 12",
        ),
        ("module/servo/write", b"\xff", "payload", "NOT_UTF8", "payload is not UTF-8 text"),
    ],
)
async def test_refusals(
    kitchen: Rig, suffix: str, payload: str, error: str, name: str, message: str
) -> None:
    report = await kitchen.refused(suffix, payload)
    assert report == {
        "topic": f"{kitchen.p}/{suffix}",
        "error": error,
        "code": None,
        "name": name,
        "message": message,
    }
    assert kitchen.rec.messages(f"{kitchen.p}/{suffix}/result") == []


async def test_naks_and_timeout(kitchen: Rig) -> None:
    # the board's own NAK: dht read before begin → MODULE_NOT_LOADED (§8.3)
    reply = await kitchen.request("module/dht/read", "")
    assert reply == {
        "ok": False,
        "topic": f"{kitchen.p}/module/dht/read",
        "error": "nak",
        "code": 8,
        "name": "MODULE_NOT_LOADED",
        "message": "board refused MOD_CMD: MODULE_NOT_LOADED (0x08)",
    }
    # a NAK code the firmware never sends, injected: MODULE_BUSY
    kitchen.board.faults.nak[PacketType.MOD_CMD] = 0x0A
    reply = await kitchen.request("module/servo/write", "90")
    assert reply == {
        "ok": False,
        "topic": f"{kitchen.p}/module/servo/write",
        "error": "nak",
        "code": 10,
        "name": "MODULE_BUSY",
        "message": "board refused MOD_CMD: MODULE_BUSY (0x0a)",
    }
    report = (
        await kitchen.rec.wait_for(f"{kitchen.p}/error", lambda b: b"MODULE_BUSY" in b)
    ).json()
    assert report == {k: v for k, v in reply.items() if k != "ok"}
    kitchen.board.faults.nak.clear()
    kitchen.board.faults.drop_replies = 1
    reply = await kitchen.request("module/servo/write", "10")
    assert (reply["error"], reply["name"], reply["message"]) == (
        "timeout",
        "TIMEOUT",
        "no answer to MOD_CMD within 500 ms",
    )
    assert kitchen.rec.messages(f"{kitchen.p}/module/servo/write/result") == []


async def test_encoder_stepper_oled_pid(workshop: Rig) -> None:
    await run_table(
        workshop,
        [
            ("module/encoder/attach", "[0, 1]", b"\x00\x01\x00\x01", {}),
            (
                "module/stepper/config",
                '{"step_pin": 2, "dir_pin": 3}',
                b"\x01\x01\x02\x03\xff\xc8\x00",
                {},
            ),
            ("module/stepper/stop", "", b"\x01\x04", {}),
            ("module/oled1306/begin", "{}", b"\x02\x01\x80\x40\x00", {}),
            ("module/oled1306/clear", "", b"\x02\x02", {}),
            (
                "module/oled1306/text",
                '{"x": 0, "y": 8, "size": 1, "text": "Hi"}',
                b"\x02\x03\x00\x08\x01Hi",
                {},
            ),
            ("module/oled1306/rect", "[0, 0, 10, 5, true]", b"\x02\x04\x00\x00\x0a\x05\x01", {}),
            (
                "module/oled1306/bitmap",
                '{"x": 0, "y": 0, "w": 8, "h": 2, "data": [255, 129]}',
                b"\x02\x05\x00\x00\x08\x02\xff\x81",
                {},
            ),
            ("module/oled1306/show", "", b"\x02\x06", {}),
            ("module/pid/config", "[2.0, 0.5, 0.25]", b"\x03\x01" + f32(2.0, 0.5, 0.25), {}),
            ("module/pid/set_target", '{"value": 50}', b"\x03\x02" + f32(50.0), {}),
            ("module/pid/set_input", "14", b"\x03\x03\x0e", {}),
            ("module/pid/set_output", "5", b"\x03\x04\x05", {}),
            ("module/pid/enable", "true", b"\x03\x05\x01", {}),
        ],
    )
    board = workshop.board
    encoder, stepper = board.modules[0], board.modules[1]
    assert isinstance(encoder, Encoder) and isinstance(stepper, Stepper)
    # encoder: tick events (module id 0, attributed by shape, Q9), then read and reset
    encoder.turn(3)
    await workshop.rec.wait_for(
        f"{workshop.p}/module/encoder/event/tick", lambda b: b'"count":3' in b
    )
    ticks = [m.json() for m in workshop.rec.messages(f"{workshop.p}/module/encoder/event/tick")]
    assert ticks == [{"count": 1, "delta": 1}, {"count": 2, "delta": 1}, {"count": 3, "delta": 1}]
    assert workshop.rec.messages(f"{workshop.p}/evt/c0") == []  # typed topic only by default
    await run_table(
        workshop,
        [
            ("module/encoder/read", "", b"\x00\x02", {"count": 3}),
            ("module/encoder/reset", "", b"\x00\x03", {}),
            ("module/encoder/read", "", b"\x00\x02", {"count": 0}),
            (
                "module/stepper/move",
                '{"steps": 10, "speed_hz": 1000}',
                b"\x01\x02\x0a\x00\x00\x00\xe8\x03",
                {},
            ),
        ],
    )
    done = await workshop.rec.wait_for(f"{workshop.p}/module/stepper/event/done")
    assert (done.json(), done.qos) == ({"position": 10}, 1)
    await run_table(
        workshop,
        [("module/stepper/move_to", '{"position": -5}', b"\x01\x03\xfb\xff\xff\xff\x00\x00", {})],
    )
    await workshop.rec.wait_for(
        f"{workshop.p}/module/stepper/event/done", payload=b'{"position":-5}'
    )
    report = await workshop.refused("module/i2c_pass/read", "")
    assert report["message"] == (
        "module 'i2c_pass' (i2c_pass) has no command 'read' (commands: none); use the I2C "
        "packets on cmd/20, cmd/21, cmd/22"
    )
    report = await workshop.refused(
        "module/oled1306/bitmap", '{"x": 0, "y": 0, "w": 8, "h": 2, "data": [1]}'
    )
    assert report["message"] == (
        "oled1306.bitmap: data must hold at least ceil(w/8)*h = 2 bytes for a 8x2 bitmap "
        "(row-major, MSB first), got 1"
    )


async def test_ambiguous_events_go_to_unknown(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    """Two encoders: a tick with module id 0 cannot be attributed (Q9)."""
    profile = replace(
        get_profile("workshop"),
        name="twin",
        modules=(ModuleSpec("encoder"), ModuleSpec("encoder")),
        datastreams=(),
    )
    async with rig(mqtt_broker, base_topic, tmp_path, profile) as r:
        await r.request("module/encoder_1/attach", "[4, 5]")
        second = r.board.modules[1]
        assert isinstance(second, Encoder)
        second.turn(1)
        msg = await r.rec.wait_for(f"{r.p}/module/unknown/event/1")
        assert msg.json() == {
            "module_id": 0,
            "event": 1,
            "data": "AQAAAAEA",  # base64 of count 1 (i32le), delta 1 (i16le)
            "candidates": ["encoder_0", "encoder_1"],
        }


# ------------------------------------------------------------------------------ pin arguments


def mod_cmds(r: Rig) -> list[bytes]:
    return [p.payload for p in r.board.received if p.type == PacketType.MOD_CMD]


async def test_pin_arguments_checked_against_the_board(kitchen: Rig) -> None:
    """servo attach on a pin the 10-pin kitchen board lacks, or on an input-only pin: the
    firmware would take it (Q12); the bridge refuses it and sends nothing."""
    assert mod_cmds(kitchen) == []
    cases = [
        (
            "module/servo/attach",
            '{"pin": 200}',
            "INVALID_PIN",
            "servo.attach: pin 200 does not exist: this board has 10 pins",
        ),
        (
            "module/servo/attach",
            "[3, 544, 2400]",
            "PIN_MODE_UNSUPPORTED",
            "servo.attach: pin 3 supports input, input_pullup; not output "
            "(output pins: 0, 1, 2, 4, 5, 6, 7, 8, 9)",
        ),
        (
            "module/dht/begin",
            "3",
            "PIN_MODE_UNSUPPORTED",
            "dht.begin: pin 3 supports input, input_pullup; not output "
            "(output pins: 0, 1, 2, 4, 5, 6, 7, 8, 9)",
        ),
    ]
    for suffix, payload, name, message in cases:
        report = await kitchen.refused(suffix, payload)
        assert report == {
            "topic": f"{kitchen.p}/{suffix}",
            "error": "capability",
            "code": None,
            "name": name,
            "message": message,
        }
        assert kitchen.rec.messages(f"{kitchen.p}/{suffix}/result") == []
    assert mod_cmds(kitchen) == []
    servo = kitchen.board.modules[0]
    assert isinstance(servo, Servo) and servo.pin is None
    # a pin that can do it still goes through (digital output 0 has no PWM: not needed)
    reply = await kitchen.request("module/servo/attach", "0")
    assert reply == {"ok": True}
    assert mod_cmds(kitchen) == [b"\x00\x01\x00\x00\x00\x00\x00"]


async def test_pid_input_needs_an_analog_pin(workshop: Rig) -> None:
    """pid set_input on a pin without ANALOG_IN would make the board analogRead it unguarded
    every 100 ms (can hang an Uno R4, §4.2): refused, nothing sent."""
    await run_table(
        workshop,
        [
            ("module/pid/set_input", '{"pin": 12}', b"\x03\x03\x0c", {}),
            # en_pin 255 means "none" and is not a pin
            ("module/stepper/config", "[2, 3, 255]", b"\x01\x01\x02\x03\xff\xc8\x00", {}),
        ],
    )
    sent = [b"\x03\x03\x0c", b"\x01\x01\x02\x03\xff\xc8\x00"]
    assert mod_cmds(workshop) == sent
    cases = [
        (
            "module/pid/set_input",
            "4",
            "PIN_MODE_UNSUPPORTED",
            "pid.set_input: pin 4 supports input, output, pwm, input_pullup; not analog "
            "(analog pins: 12, 13, 14)",
        ),
        (
            "module/pid/set_output",
            '{"pin": 13}',
            "PIN_MODE_UNSUPPORTED",
            "pid.set_output: pin 13 supports input, output, analog, input_pullup; not pwm "
            "(pwm pins: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)",
        ),
        (
            "module/stepper/config",
            '{"step_pin": 2, "dir_pin": 3, "en_pin": 16}',
            "INVALID_PIN",
            "stepper.config: en_pin: pin 16 does not exist: this board has 16 pins",
        ),
    ]
    for suffix, payload, name, message in cases:
        report = await workshop.refused(suffix, payload)
        assert report == {
            "topic": f"{workshop.p}/{suffix}",
            "error": "capability",
            "code": None,
            "name": name,
            "message": message,
        }
    assert mod_cmds(workshop) == sent  # no MOD_CMD for any refusal
