"""Declared entities without a broker: config validation (exact messages), the checks
against a HELLO_RESP, command values and conversions, and the discovery components
(checked by the project's HA schema checker in both discovery modes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.ha_schema import validate_message

from conduyt_bridge.app.config import ConfigError, load_settings
from conduyt_bridge.app.config_entities import PID_NO_OUTPUT, READ_ONLY_ENTITIES
from conduyt_bridge.core.entities.checks import entity_problems
from conduyt_bridge.core.entities.values import light_fill, parse_light, scaled
from conduyt_bridge.errors import ConduytCapabilityError, ConduytPayloadError
from conduyt_bridge.northbound.homeassistant.declared import declared_entities
from conduyt_bridge.northbound.homeassistant.discovery import (
    BoardDiscovery,
    DiscoveryConfig,
    board_messages,
)
from conduyt_bridge.simulator.profiles import get_profile

GARAGE: list[dict[str, Any]] = [
    {"name": "relay", "kind": "switch", "pin": 1, "inverted": True},
    {"name": "door", "kind": "binary_sensor", "pin": 2, "device_class": "door"},
    {"name": "lamp", "kind": "light", "pin": 3},
    {
        "name": "pot",
        "kind": "sensor",
        "pin": 4,
        "scale": 0.001,
        "unit": "V",
        "device_class": "voltage",
        "precision": 2,
    },
    {"name": "bell", "kind": "button", "pin": 8},
    {"name": "arm", "kind": "servo", "pin": 5},
    {"name": "strip", "kind": "neopixel", "pin": 6, "count": 8},
    {"name": "room", "kind": "dht", "pin": 7},
    {"name": "knob", "kind": "encoder", "pin_a": 9, "pin_b": 10},
    {"name": "lift", "kind": "stepper", "step_pin": 11, "dir_pin": 12},
    {"name": "loop", "kind": "pid", "input_pin": 13, "output_pin": 14},
    {
        "name": "heating",
        "kind": "climate",
        "current_temperature": "room.temperature",
        "heater": "relay",
        "humidity": "room.humidity",
    },
]


def load(
    tmp_path: Path, entities: list[dict[str, Any]], port: str = "sim://garage", *device: str
) -> Any:
    lines = ["[[devices]]", 'id = "g"', f'port = "{port}"', *device]
    for e in entities:
        lines.append("[[devices.entities]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in e.items()]
    path = tmp_path / "c.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_settings(path, env={})


def errors(tmp_path: Path, entities: list[dict[str, Any]]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, entities)
    return info.value.errors  # type: ignore[no-any-return]


def test_garage_config_builds_specs(tmp_path: Path) -> None:
    settings = load(tmp_path, GARAGE)
    specs = settings.devices[0].entity_specs
    assert [s.name for s in specs] == [e["name"] for e in GARAGE]
    assert entity_problems(get_profile("garage").hello, specs) == {}


@pytest.mark.parametrize(
    ("entities", "expected"),
    [
        (
            [{"name": "Relay!", "kind": "switch", "pin": 1}],
            [
                (
                    "devices[0].entities[0].name",
                    "must be 1-32 characters of a-z, 0-9 and '_', starting with a letter or digit "
                    "(it is a topic level and Home Assistant's object id), got 'Relay!'",
                )
            ],
        ),
        (
            [{"name": "s", "kind": "servo", "pin": 5, "min_uss": 500}],
            [("devices[0].entities[0].min_uss", "unknown key (did you mean 'min_us'?)")],
        ),
        (
            [{"name": "l", "kind": "pid", "input_pin": 13, "output_pin": 14, "kp": "x"}],
            [
                (
                    "devices[0].entities[0].kp",
                    "Input should be a valid number, unable to parse string as a number",
                )
            ],
        ),
        (
            [
                {
                    "name": "l",
                    "kind": "pid",
                    "input_pin": 13,
                    "output_pin": 14,
                    "output_sensor": True,
                }
            ],
            [("devices[0].entities[0].output_sensor", PID_NO_OUTPUT)],
        ),
        (
            [{"name": "a", "kind": "switch", "pin": 1}, {"name": "a", "kind": "switch", "pin": 3}],
            [("devices[0].entities[1].name", "name 'a' is also used by entities[0]")],
        ),
        (
            [{"name": "a", "kind": "switch", "pin": 1}, {"name": "b", "kind": "light", "pin": 1}],
            [("devices[0].entities[1]", "pin 1 is already used by entities[0]")],
        ),
        (
            [{"name": "c", "kind": "climate", "current_temperature": "t", "heater": "ds:h"}],
            [
                (
                    "devices[0].entities[0].current_temperature",
                    "names entity 't', which is not declared",
                )
            ],
        ),
    ],
)
def test_config_errors(tmp_path: Path, entities: list[dict[str, Any]], expected: Any) -> None:
    assert errors(tmp_path, entities) == expected


def test_a_read_only_board_has_no_entities(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, GARAGE[:1], "sim://garage", "read_only = true")
    assert str(info.value) == f"{tmp_path / 'c.toml'}: devices[0].entities: {READ_ONLY_ENTITIES}"


def test_unknown_kind_is_an_error(tmp_path: Path) -> None:
    ((key, reason),) = errors(tmp_path, [{"name": "x", "kind": "fan", "pin": 1}])
    assert key == "devices[0].entities[0]"
    assert "'fan'" in reason and "'switch'" in reason


def test_checks_name_the_pin_and_its_capabilities() -> None:
    from conduyt_bridge.core.entities.spec import LightSpec, ServoSpec, SwitchSpec

    hello = get_profile("garage").hello
    specs = [
        SwitchSpec("relay", pin=2),
        LightSpec("lamp", pin=40),
        ServoSpec("arm", pin=5, module="oled"),
    ]
    assert entity_problems(hello, specs) == {
        "relay": "entity 'relay': pin 2 has no digital output on this board "
        "(capabilities: digital_in, interrupt)",
        "lamp": "entity 'lamp': pin 40 does not exist: this board has 15 pins",
        "arm": "entity 'arm': module 'oled' is not loaded on this board (modules: servo, "
        "neopixel, dht, encoder, stepper, pid)",
    }


def test_values() -> None:
    assert scaled(1000, 0.1, -5, 1) == 95.0
    assert scaled(3, 2, 0, 0) == 6
    off = {
        "state": "OFF",
        "brightness": 255,
        "color_mode": "rgb",
        "color": {"r": 255, "g": 255, "b": 255},
    }
    on = parse_light("l", {"color": {"r": 10, "g": 20, "b": 30}, "brightness": 128}, off, True)
    assert on["state"] == "ON" and light_fill(on) == (5, 10, 15)
    with pytest.raises(ConduytCapabilityError, match=r"^l brightness takes 0..255, got 300$"):
        parse_light("l", {"brightness": 300}, off, True)
    with pytest.raises(ConduytPayloadError, match="has no colour"):
        parse_light("l", {"color": [1, 2, 3]}, off, False)
    with pytest.raises(ConduytPayloadError) as info:
        parse_light("l", {"state": {"value": "ON"}}, off, True)
    assert str(info.value) == 'l state takes a word ON/OFF, not {"value": "ON"}'
    # a dimmer has colour mode `brightness` and no colour
    assert parse_light("l", {"state": "ON", "brightness": 9}, off, False) == {
        "state": "ON",
        "brightness": 9,
        "color_mode": "brightness",
    }


@pytest.mark.parametrize("mode", ["device", "components"])
@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_discovery_passes_the_schema_check(tmp_path: Path, mode: str, fmt: str) -> None:
    specs = load(tmp_path, GARAGE).devices[0].entity_specs
    hello = get_profile("garage").hello
    cfg = DiscoveryConfig(mode=mode, payload_format=fmt)  # type: ignore[arg-type]
    extra = declared_entities(cfg, "g", hello, specs)
    platforms = sorted({e.platform for e in extra})
    assert platforms == [
        "binary_sensor",
        "button",
        "climate",
        "light",
        "number",
        "sensor",
        "switch",
    ]
    assert len(extra) == 14
    messages = board_messages(cfg, BoardDiscovery("g", hello, "sim://garage"), extra)
    for msg in messages:
        assert validate_message(msg.topic, msg.payload) == [], msg.topic
    lamp = next(e for e in extra if e.key == "entity_lamp")
    assert lamp.config["command_topic"] == "conduyt/g/entity/lamp/set"
    assert lamp.config["supported_color_modes"] == ["brightness"]


def test_refused_entities_are_not_discovered() -> None:
    from conduyt_bridge.core.entities.spec import SwitchSpec

    hello = get_profile("garage").hello
    extra = declared_entities(DiscoveryConfig(), "g", hello, [SwitchSpec("bad", pin=2)])
    assert extra == []


def test_check_report_names_refused_entities(tmp_path: Path) -> None:
    from conduyt_bridge.app.cli import check_report

    room = next(e for e in GARAGE if e["kind"] == "dht")
    bell = next(e for e in GARAGE if e["kind"] == "button")
    bad = {"name": "bad", "kind": "light", "pin": 0}
    settings = load(tmp_path, [GARAGE[0], room, bell, bad])
    lines = [line for line in check_report(settings).splitlines() if "    entity " in line]
    p = "conduyt/g/entity"
    assert lines == [
        f"    entity relay (switch): {p}/relay  set: {p}/relay/set",
        f"    entity room (dht): {p}/room/temperature, {p}/room/humidity",
        f"    entity bell (button): set: {p}/bell/set",
        f"    entity bad (light): {p}/bad  set: {p}/bad/set  REFUSED: entity 'bad': pin 0 has "
        "no PWM output on this board (capabilities: digital_in, digital_out, interrupt)",
    ]
