"""Declared entities end to end (`docs/entities.md`): the `garage` simulator profile on a
real pty, a running bridge, real Mosquitto. Each kind publishes its state on
`{base}/{dev}/entity/{name}`, obeys `…/set` (checked on the simulated pins and modules),
and a refused entry is reported with its exact message while the rest run.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.broker import Broker
from support.harness import make_settings, running_bridge, wait_until
from support.mqtt_client import publish, retained_snapshot
from support.recorder import Recorder
from support.rig import Rig, rig

from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.simulator.modules import Encoder, NeoPixel, Pid, Servo, Stepper

ENTITIES: list[dict[str, Any]] = [
    {"name": "relay", "kind": "switch", "pin": 1, "inverted": True},
    {"name": "door", "kind": "binary_sensor", "pin": 2, "device_class": "door", "debounce_ms": 0},
    {"name": "lamp", "kind": "light", "pin": 3},
    {
        "name": "pot",
        "kind": "sensor",
        "pin": 4,
        "scale": 0.1,
        "offset": -5,
        "precision": 1,
        "unit": "V",
        "interval_ms": 50,
    },
    {"name": "bell", "kind": "button", "pin": 8, "pulse_ms": 30},
    {"name": "arm", "kind": "servo", "pin": 5},
    {"name": "strip", "kind": "neopixel", "pin": 6, "count": 4},
    {"name": "room", "kind": "dht", "pin": 7, "interval_s": 2},
    {"name": "knob", "kind": "encoder", "pin_a": 9, "pin_b": 10, "interval_ms": 50},
    {"name": "lift", "kind": "stepper", "step_pin": 11, "dir_pin": 12},
    {"name": "loop", "kind": "pid", "input_pin": 13, "output_pin": 14},
    {
        "name": "heating",
        "kind": "climate",
        "current_temperature": "room.temperature",
        "heater": "relay",
        "target_temperature": "ds:setpoint_celsius",
    },
    {"name": "bad", "kind": "light", "pin": 0},
]


@pytest.fixture
async def garage(mqtt_broker: Broker, base_topic: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with rig(mqtt_broker, base_topic, tmp_path, "garage", entities=ENTITIES) as r:
        yield r


READS = {bytes((2, 2)), bytes((3, 2))}
"""MOD_CMD heads of the bridge's own reads (dht 2 read, encoder 3 read)."""


async def refused(r: Rig, suffix: str, payload: bytes | str) -> dict[str, Any]:
    """Publish a command that must fail; returns the report on `{p}/error` (also on the
    response topic) after checking that nothing but the bridge's own reads reached the
    board."""
    mark = r.mark()
    before = len(r.rec.messages(f"{r.p}/error"))
    reply = await r.request(suffix, payload)
    await wait_until(lambda: len(r.rec.messages(f"{r.p}/error")) > before)
    report: dict[str, Any] = r.rec.messages(f"{r.p}/error")[before].json()
    assert {**report, "ok": False} == reply
    assert report["topic"] == f"{r.p}/{suffix}"
    sent = [
        (t, p)
        for t, p in r.sent(mark)
        if t != PacketType.PIN_READ and not (t == PacketType.MOD_CMD and p[:2] in READS)
    ]
    assert sent == [], "a refused command must not reach the board"
    return report


def module(r: Rig, kind: type[Any]) -> Any:
    return next(m for m in r.board.modules if isinstance(m, kind))


async def state(r: Rig, name: str, payload: bytes | None = None) -> Any:
    got = await r.rec.wait_for(f"{r.p}/entity/{name}", payload=payload)
    return got


async def test_refused_entry_is_reported_and_the_rest_run(garage: Rig) -> None:
    r = garage
    report = await r.rec.wait_for(f"{r.p}/error")
    assert report.json() == {
        "topic": f"{r.p}/entity/bad",
        "error": "capability",
        "code": None,
        "name": "PIN_MODE_UNSUPPORTED",
        "message": "entity 'bad': pin 0 has no PWM output on this board "
        "(capabilities: digital_in, digital_out, interrupt)",
    }
    assert len(r.rec.messages(f"{r.p}/error")) == 1
    again = await refused(r, "entity/bad/set", "ON")
    assert again["message"] == report.json()["message"]


async def test_switch_inverted_and_light_restore_after_a_reboot(garage: Rig) -> None:
    r = garage
    got = await state(r, "relay", b"false")
    assert (got.retain, got.qos) == (True, 1)
    assert r.board.pin_values[1] == 1  # inverted: off is HIGH
    reply = await r.request("entity/relay/set", "ON")
    assert reply == {"ok": True, "entity": "relay", "state": True}
    assert r.board.pin_values[1] == 0
    await state(r, "relay", b"true")
    await r.request("entity/lamp/set", json.dumps({"state": "ON", "brightness": 77}))
    # a reboot the link does not show (a boot banner): both states come back
    mark = r.mark()
    r.board.press_reset()
    relay = (PacketType.PIN_WRITE, bytes((1, 0, 1)))  # pin 1, LOW, OUTPUT mode byte
    lamp = (PacketType.PIN_WRITE, bytes((3, 77, 2)))  # pin 3, duty 77, PWM mode byte
    await wait_until(lambda: {relay, lamp} <= set(r.sent(mark)), timeout_s=10)
    assert (r.board.pin_values[1], r.board.pin_values[3]) == (0, 77)


async def test_light_brightness_is_the_duty(garage: Rig) -> None:
    r = garage
    reply = await r.request("entity/lamp/set", json.dumps({"state": "ON", "brightness": 128}))
    expected = {"state": "ON", "brightness": 128, "color_mode": "brightness"}
    assert reply == {"ok": True, "entity": "lamp", "state": expected}
    assert r.board.pin_values[3] == 128
    got = await r.rec.wait_for(f"{r.p}/entity/lamp", lambda p: json.loads(p) == expected)
    assert got.retain
    await r.request("entity/lamp/set", "OFF")
    assert r.board.pin_values[3] == 0


async def test_button_pulses(garage: Rig) -> None:
    r = garage
    mark = r.mark()
    assert await r.request("entity/bell/set", "PRESS") == {"ok": True, "entity": "bell"}
    writes = [p for t, p in r.sent(mark) if t == PacketType.PIN_WRITE]
    assert writes == [bytes((8, 1, 1)), bytes((8, 0, 1))]


async def test_binary_sensor_follows_the_input(garage: Rig) -> None:
    r = garage
    r.board.set_pin(2, 1)
    got = await state(r, "door", b"true")
    assert got.retain is False
    r.board.set_pin(2, 0)
    await r.rec.wait_for_new(f"{r.p}/entity/door", payload=b"false")
    report = await refused(r, "entity/door/set", "ON")
    assert report["message"] == "entity 'door' (binary_sensor) is read-only: it takes no commands"


async def test_sensor_scales_counts(garage: Rig) -> None:
    r = garage
    r.board.set_pin(4, 1000)
    await state(r, "pot", b"95.0")  # 1000 * 0.1 - 5


async def test_servo_neopixel_stepper_pid(garage: Rig) -> None:
    r = garage
    assert await r.request("entity/arm/set", "90") == {"ok": True, "entity": "arm", "state": 90}
    assert module(r, Servo).angle == 90
    await state(r, "arm", b"90")
    report = await refused(r, "entity/arm/set", "200")
    assert (report["name"], report["message"]) == (
        "OUT_OF_RANGE",
        "entity 'arm' angle takes 0..180 °, got 200",
    )
    colour = {"state": "ON", "brightness": 255, "color": {"r": 255, "g": 0, "b": 0}}
    reply = await r.request("entity/strip/set", json.dumps(colour))
    assert reply["state"] == {**colour, "color_mode": "rgb"}
    assert module(r, NeoPixel).shown == [(255, 0, 0, 0)] * 4
    await r.request("entity/strip/set", json.dumps({"brightness": 51}))
    assert module(r, NeoPixel).shown == [(51, 0, 0, 0)] * 4
    await r.request("entity/lift/set", "400")
    assert module(r, Stepper).target == 400
    await r.request("entity/loop/set", "42.5")
    assert module(r, Pid).target == 42.5
    assert (module(r, Pid).input_pin, module(r, Pid).output_pin, module(r, Pid).enabled) == (
        13,
        14,
        True,
    )


async def test_dht_and_encoder(garage: Rig) -> None:
    r = garage
    temp = await state(r, "room/temperature")
    hum = await state(r, "room/humidity")
    assert 10 <= float(temp.text) <= 35 and 20 <= float(hum.text) <= 90
    module(r, Encoder).turn(3)
    await state(r, "knob", b"3")
    reply = await r.request("entity/knob/reset/set", "PRESS")
    assert reply == {"ok": True, "entity": "knob", "command": "reset", "state": 0}
    assert module(r, Encoder).count == 0


async def test_climate_heats_below_target(garage: Rig) -> None:
    r = garage
    await state(r, "room/temperature")
    reply = await r.request("entity/heating/target/set", "30")
    assert reply["state"]["target"] == 30.0
    assert r.board.datastream_values["setpoint"] == 30.0
    reply = await r.request("entity/heating/mode/set", "heat")
    assert reply["state"]["mode"] == "heat" and reply["state"]["action"] == "heating"
    assert r.board.pin_values[1] == 0  # the relay (inverted) is on
    await r.request("entity/heating/mode/set", "off")
    assert r.board.pin_values[1] == 1
    report = await refused(r, "entity/heating/mode/set", "cool")
    assert report["message"] == "entity 'heating' mode takes off or heat, not 'cool'"


HOSTILE = [
    (b"\xff\xfe", "NOT_UTF8"),
    (b"", "EMPTY_PAYLOAD"),
    (b"[" * 200 + b"]" * 200, "NESTED_TOO_DEEP"),
    (b"x" * 100_000, "PAYLOAD_TOO_LONG"),
    (b'{"state": "ON", "bogus": 1}', "BAD_VALUE"),
    (b'{"state": {"state": {"state": "ON"}}}', "BAD_VALUE"),
    (b'{"brightness": [1, 2]}', "BAD_VALUE"),
]
"""(payload, error name) of hostile `/set` payloads on a light."""


async def test_hostile_payloads(garage: Rig) -> None:
    for payload, name in HOSTILE:
        report = await refused(garage, "entity/lamp/set", payload)
        assert report["name"] == name, payload[:40]


async def test_board_added_renamed_and_removed_at_run_time(
    mqtt_broker: Broker, base_topic: str
) -> None:
    """Entities follow the board's run-time life (`docs/architecture.md` §11): attached
    when it is added, restored after a restart under the same id, their retained states
    cleared when it is renamed or removed."""
    entities = [ENTITIES[0], ENTITIES[2]]  # the inverted relay on 1, the lamp on 3
    started = make_settings(mqtt_broker, base_topic, [{"id": "a", "port": "sim://uno"}])
    later = make_settings(
        mqtt_broker,
        base_topic,
        [{"id": d, "port": "sim://garage", "entities": entities} for d in ("g", "h")],
    )
    g, h = later.devices
    pg, ph = f"{base_topic}/g", f"{base_topic}/h"
    async with Recorder(mqtt_broker, f"{base_topic}/#") as rec, running_bridge(started) as bridge:
        await rec.wait_for(f"{base_topic}/a/status", payload=b"online", timeout=10)
        await bridge.add_board(g)
        got = await rec.wait_for(f"{pg}/entity/relay", payload=b"false", timeout=10)
        assert (got.retain, got.qos) == (True, 1)
        await publish(mqtt_broker, f"{pg}/entity/relay/set", "ON")
        await rec.wait_for(f"{pg}/entity/relay", payload=b"true")
        await publish(mqtt_broker, f"{pg}/entity/lamp/set", "40")
        lamp = {"state": "ON", "brightness": 40, "color_mode": "brightness"}
        await rec.wait_for(f"{pg}/entity/lamp", lambda b: json.loads(b) == lamp)

        # a restart with the same id: relay and lamp come back from their retained states
        await bridge.remove_board("g", successor="g")
        mark = rec.mark()
        await bridge.add_board(g)
        await rec.wait_for_after(mark, f"{pg}/status", payload=b"online", timeout=10)
        await rec.wait_for_after(mark, f"{pg}/entity/relay", payload=b"true")
        assert [m.payload for m in rec.since(mark, f"{pg}/entity/relay")] == [b"true"]
        assert [m.json() for m in rec.since(mark, f"{pg}/entity/lamp")] == [lamp]

        # a rename: the old id's entity topics are emptied, the new id gets its own
        mark = rec.mark()
        await bridge.remove_board("g", successor="h")
        await bridge.add_board(h)
        await rec.wait_for_after(mark, f"{ph}/entity/relay", payload=b"false", timeout=10)
        retained = await retained_snapshot(mqtt_broker, f"{base_topic}/+/entity/#")
        assert sorted(retained) == [f"{ph}/entity/lamp", f"{ph}/entity/relay"]

        # a removal: nothing of its entities stays on the broker, nothing more is published
        await bridge.remove_board("h")
        assert await retained_snapshot(mqtt_broker, f"{base_topic}/+/entity/#") == {}


REFUSALS = [
    (
        "entity/nope/set",
        "ON",
        "BAD_TOPIC",
        "entity 'nope' is not declared for board 'garage' (entities: relay, door, lamp, "
        "pot, bell, arm, strip, room, knob, lift, loop, heating, bad)",
    ),
    (
        "entity/relay/bogus/set",
        "ON",
        "CAPABILITY",
        "entity 'relay' (switch) has no command 'bogus' (commands: set)",
    ),
    (
        "entity/" + "x" * 5000 + "/set",
        "ON",
        "BAD_TOPIC",
        "entity '" + "x" * 36 + "... is not declared for board 'garage' "
        "(entities: relay, door, lamp, pot, bell, arm, strip, room, knob, lift, loop, "
        "heating, bad)",
    ),
    (
        "entity/relay/set",
        "maybe",
        "BAD_VALUE",
        "entity 'relay' takes true/false, on/off or 1/0, not 'maybe'",
    ),
    (
        "entity/lamp/set",
        '{"state": "ON", "color": {"r": 1, "g": 2, "b": 3}}',
        "BAD_VALUE",
        "entity 'lamp' has no colour: it is a dimmer (state, brightness)",
    ),
    (
        "entity/lamp/set",
        '{"brightness": 1e400}',
        "BAD_VALUE",
        "entity 'lamp' brightness takes a number, not Infinity",
    ),
    (
        "entity/strip/set",
        '{"color": {"r": 300, "g": 0, "b": 0}}',
        "OUT_OF_RANGE",
        "entity 'strip' color r takes 0..255, got 300",
    ),
    (
        "entity/lift/set",
        "1.5",
        "OUT_OF_RANGE",
        "entity 'lift' target takes whole steps, got 1.5",
    ),
    (
        "entity/heating/target/set",
        "99",
        "OUT_OF_RANGE",
        "entity 'heating' target takes 5..35 °C, got 99",
    ),
]
"""(topic suffix, payload, error name, exact message) of commands refused before the board."""


async def test_refused_commands_name_the_entity(garage: Rig) -> None:
    for suffix, payload, name, message in REFUSALS:
        report = await refused(garage, suffix, payload)
        assert (report["name"], report["message"]) == (name, message), suffix[:60]
