"""The Homie adapter's pure parts (`docs/homie.md`): IDs, payloads, units and the
`$description` documents of the simulated boards, checked with the schema checker written
from the convention (`support.homie_schema`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.homie_schema import description_problems, value_problem

from conduyt_bridge.app.config import Settings
from conduyt_bridge.core.board import Board
from conduyt_bridge.core.events import EventBus
from conduyt_bridge.core.pins import Subscription, TaskSet
from conduyt_bridge.errors import ConduytPayloadError
from conduyt_bridge.northbound.homie.devices import board_device, bridge_device
from conduyt_bridge.northbound.homie.ids import HomieTopics, homie_id, unique_ids
from conduyt_bridge.northbound.homie.model import pin_property
from conduyt_bridge.northbound.homie.units import homie_unit
from conduyt_bridge.northbound.homie.values import (
    EMPTY_STRING,
    format_value,
    number_text,
    parse_value,
)
from conduyt_bridge.protocol.constants import PinMode, SubscribeMode
from conduyt_bridge.simulator.profiles import get_profile


@dataclass
class Config:
    device_id: str = "th"
    port: str = "sim://thermostat"
    read_only: bool = False
    allow_raw: bool = True
    raw_mirror: bool = False
    allow_ota: bool = False
    string_encoding: str = "u16_prefix"
    pins: Sequence[Any] = ()
    datastreams: Mapping[str, Any] = field(default_factory=dict)


def board_of(profile: str) -> Board:
    board = Board(Config(device_id=profile), EventBus(), TaskSet())  # type: ignore[arg-type]
    board._adopt_hello(get_profile(profile).hello)
    return board


def test_ids_fold_into_the_homie_alphabet_and_stay_distinct() -> None:
    assert homie_id("Door_Open") == "door-open"
    assert homie_id("°C") == "c"
    assert homie_id("__", "board") == "board"
    assert unique_ids(["a_b", "a-b", "A B"]) == ["a-b", "a-b-2", "a-b-3"]
    assert unique_ids(["pins"], taken=["pins"]) == ["pins-2"]
    topics = HomieTopics("homie")
    assert topics.parse_set("homie/5/dev/node/prop/set") == ("dev", "node", "prop")
    assert topics.parse_set("homie/5/dev/node/prop") is None
    assert topics.parse_set("homie/5/dev/a/b/c/set") is None


@pytest.mark.parametrize("profile", ["thermostat", "kitchen", "workshop", "uno"])
def test_every_simulated_board_has_a_valid_description(profile: str) -> None:
    board = board_of(profile)
    model = board_device(board, f"root-{profile}", "root")
    doc = model.describe(1)
    assert description_problems(doc, model.id, root=False) == []
    assert doc["root"] == "root"


def test_a_board_before_its_handshake_and_the_root_are_valid() -> None:
    board = Board(Config(), EventBus(), TaskSet())  # type: ignore[arg-type]
    assert (
        description_problems(board_device(board, "r-th", "r").describe(5), "r-th", root=False) == []
    )
    root = bridge_device("r", "Bridge", ("r-th",)).describe(7)
    assert description_problems(root, "r", root=True) == []
    assert root["children"] == ["r-th"] and "root" not in root


def test_the_checker_finds_what_breaks_the_convention() -> None:
    bad = {
        "homie": "4.0",
        "version": "1",
        "root": "Root",
        "nodes": {
            "Node": {"properties": {"p": {"datatype": "number"}}},
            "n": {
                "properties": {
                    "e": {"datatype": "enum"},
                    "f": {"datatype": "float", "format": "5:1"},
                }
            },
        },
    }
    problems = description_problems(bad, "dev", root=False)
    assert len(problems) == 7, problems


def test_datastream_properties_carry_datatype_format_and_unit() -> None:
    kitchen = board_device(board_of("kitchen"), "k", "r").describe(1)
    light = kitchen["nodes"]["datastreams"]["properties"]["light"]
    assert light == {
        "name": "light",
        "datatype": "integer",
        "format": "0:100",
        "unit": "%",
        "settable": True,
    }
    assert kitchen["nodes"]["datastreams"]["properties"]["status"]["datatype"] == "string"
    assert kitchen["nodes"]["dht"]["properties"]["read"]["datatype"] == "json"
    workshop = board_device(board_of("workshop"), "w", "r").describe(1)
    tick = workshop["nodes"]["encoder"]["properties"]["tick"]
    assert tick["datatype"] == "json" and tick["retained"] is False
    assert "settable" not in tick
    assert workshop["nodes"]["pid"]["properties"]["enable"]["datatype"] == "boolean"


def test_pins_with_a_mode_or_subscription_become_properties() -> None:
    board = board_of("thermostat")
    board.pins.modes[1] = PinMode.OUTPUT
    board.pins.modes[2] = PinMode.PWM
    board.pins.active[4] = Subscription(4, SubscribeMode.ANALOG_POLL)
    board.pins.active[3] = Subscription(3, SubscribeMode.RISING)
    doc = board_device(board, "t", "r").describe(1)
    assert description_problems(doc, "t", root=False) == []
    pins = doc["nodes"]["pins"]["properties"]
    assert list(pins) == ["pin-1", "pin-2", "pin-3", "pin-4"]
    assert pins["pin-1"]["datatype"] == "boolean" and pins["pin-1"]["settable"] is True
    assert pins["pin-2"]["format"] == "0:255"
    assert pins["pin-3"]["retained"] is False
    assert pins["pin-4"] == {"name": "Pin 4", "datatype": "integer", "format": "0:"}
    assert pin_property(5, PinMode.INPUT, None).describe()["datatype"] == "boolean"


def test_values_go_out_in_the_conventions_form() -> None:
    prop = {"datatype": "float"}
    for value in (21.5, 1e20, -0.5, 3.4028234663852886e38):
        payload = format_value("float", value)
        assert payload is not None and value_problem(prop, payload) is None
    assert format_value("float", 1e20) == b"1e20"
    assert format_value("float", float("nan")) is None
    assert format_value("boolean", 1) == b"true"
    assert format_value("integer", 7.0) == b"7"
    assert format_value("string", "") == EMPTY_STRING
    assert format_value("string", b"\x01\x02") == b"AQI="
    assert number_text(-1e9) == "-1000000000"


@pytest.mark.parametrize(
    ("datatype", "payload", "value"),
    [
        ("boolean", b"true", True),
        ("boolean", b"false", False),
        ("integer", b"-42", -42),
        ("float", b"21.5", 21.5),
        ("float", b"-1e3", -1000.0),
        ("float", b"7", 7.0),
        ("string", b"\x00", ""),
        ("string", b"hello", "hello"),
        ("json", b'{"pin": 1}', {"pin": 1}),
    ],
)
def test_set_payloads_in_the_conventions_form_are_read(
    datatype: str, payload: bytes, value: Any
) -> None:
    assert parse_value(datatype, payload, "p") == value


@pytest.mark.parametrize(
    ("datatype", "payload", "name"),
    [
        ("boolean", b"TRUE", "BAD_VALUE"),
        ("boolean", b"1", "BAD_VALUE"),
        ("integer", b"4.5", "BAD_VALUE"),
        ("integer", b"-", "BAD_VALUE"),
        ("integer", b"99999999999999999999", "BAD_VALUE"),
        ("float", b"NaN", "BAD_VALUE"),
        ("float", b" 21.5", "BAD_VALUE"),
        ("float", b"1e+3", "BAD_VALUE"),
        ("float", b"", "EMPTY_PAYLOAD"),
        ("float", b"\xff", "NOT_UTF8"),
        ("json", b"42", "BAD_VALUE"),
        ("json", b"{", "BAD_VALUE"),
        ("json", b"[" * 100 + b"]" * 100, "NESTED_TOO_DEEP"),
    ],
)
def test_other_set_payloads_are_refused_clearly(datatype: str, payload: bytes, name: str) -> None:
    with pytest.raises(ConduytPayloadError) as caught:
        parse_value(datatype, payload, "property 'n/p'")
    assert caught.value.name == name


def test_units_use_the_recommended_notation() -> None:
    assert homie_unit("celsius") == "°C"
    assert homie_unit("degF") == "°F"
    assert homie_unit("percent") == "%"
    assert homie_unit("lux") == "lx"
    assert homie_unit("m3") == "m³"
    assert homie_unit("furlong") == "furlong"
    assert homie_unit(" ") is None


def test_homie_section_defaults_and_checks() -> None:
    settings = Settings()
    assert settings.homie.enabled is False
    assert settings.homie.prefix == "homie"
    assert settings.homie.device_id == ""
    assert Settings(homie={"enabled": True, "device_id": "attic-1"}).homie.device_id == "attic-1"
    with pytest.raises(ValueError, match="Homie ID"):
        Settings(homie={"device_id": "Attic_1"})
    with pytest.raises(ValueError, match="Homie ID"):
        Settings(homie={"prefix": "homie/x"})
    with pytest.raises(ValueError, match="extra"):
        Settings(homie={"enabeld": True})
