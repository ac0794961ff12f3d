"""Shaping datastream entities (`[devices.datastreams.<name>]` overrides, device names,
the console link): conduyt_bridge/northbound/homeassistant/shaping.py, units.py (the
conversions), entities.py (device info) and the config checks in app/config_devices.py.
Templates are evaluated exactly by a small arithmetic evaluator (no Jinja), and every
payload passes the HA schema check (tests/support/ha_schema/)."""

from __future__ import annotations

import json
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from support.ha_schema import validate_message
from support.ha_templates import arith as _arith
from support.ha_templates import command_sent, rendered_state, state_shown

from conduyt_bridge.app.config import ConfigError, Settings, load_settings
from conduyt_bridge.app.plugins import console_url, homeassistant_options
from conduyt_bridge.northbound.homeassistant.discovery import (
    BoardDiscovery,
    DatastreamHints,
    DiscoveryConfig,
    board_messages,
    bridge_messages,
)
from conduyt_bridge.northbound.homeassistant.entities import firmware_identity
from conduyt_bridge.northbound.homeassistant.shaping import (
    BoardProblem,
    board_problems,
    datastream_hints,
    datastream_problems,
    device_name,
    option_problems,
)
from conduyt_bridge.northbound.homeassistant.units import (
    Linear,
    conversion,
    convertible_units,
    reachable_units,
)
from conduyt_bridge.protocol.constants import DatastreamType as T
from conduyt_bridge.protocol.hello import DatastreamDescriptor, HelloResp
from conduyt_bridge.protocol.values import shortest_float32

# --- fixtures -------------------------------------------------------------------------------


def ds(
    index: int, name: str, type_: T, unit: str = "", writable: bool = False
) -> DatastreamDescriptor:
    return DatastreamDescriptor(index, name, type_, unit, writable, retain=writable)


TEMP = ds(0, "temperature", T.FLOAT32, "celsius")
SETPOINT = ds(1, "setpoint", T.FLOAT32, "celsius", writable=True)
LEVEL = ds(2, "level", T.INT16, "celsius", writable=True)
DOOR = ds(3, "door", T.BOOL)
HEATER = ds(4, "heater", T.BOOL, writable=True)
LABEL = ds(5, "label", T.STRING)
NOTE = ds(6, "note", T.STRING, writable=True)
PRESSURE = ds(7, "pressure", T.UINT16, "Pa")
COUNT = ds(8, "count", T.UINT8)
ENERGY = ds(9, "energy", T.INT32, "Wh")
DATASTREAMS = (TEMP, SETPOINT, LEVEL, DOOR, HEATER, LABEL, NOTE, PRESSURE, COUNT, ENERGY)


def hello(firmware: str = "conduyt-arduino/1.2") -> HelloResp:
    return HelloResp(firmware, (1, 2, 0), bytes(8), datastreams=DATASTREAMS)


def cmps(
    hints: dict[str, DatastreamHints],
    payload_format: str = "plain",
    read_only: bool = False,
    mode: str = "device",
) -> dict[str, dict[str, Any]]:
    cfg = DiscoveryConfig(payload_format=payload_format, mode=mode)  # type: ignore[arg-type]
    board = BoardDiscovery("th", hello(), "sim://thermostat", read_only=read_only, hints=hints)
    messages = board_messages(cfg, board)
    for message in messages:
        assert validate_message(message.topic, message.payload) == []
    if mode == "components":
        return {m.topic.split("/")[3]: json.loads(m.payload) for m in messages}
    (message,) = messages
    decoded: dict[str, dict[str, Any]] = json.loads(message.payload)["cmps"]
    return decoded


AVAIL = [
    {
        "topic": "conduyt/bridge/conduyt-bridge/state",
        "payload_available": "online",
        "payload_not_available": "offline",
    },
    {
        "topic": "conduyt/th/status",
        "payload_available": "online",
        "payload_not_available": "offline",
    },
]
F_TEMPLATE = (
    "{% if is_number(value) %}{{ '%.7g' | format((value | float) * 1.8 + 32) }}"
    "{% else %}{{ value }}{% endif %}"
)


# --- each override lands in its key ---------------------------------------------------------


def test_fahrenheit_sensor_exact_config() -> None:
    hints = {
        "temperature": DatastreamHints(
            unit="°F",
            icon="mdi:thermometer",
            entity_category="diagnostic",
            enabled_by_default=False,
        )
    }
    assert cmps(hints)["ds_temperature_celsius"] == {
        "p": "sensor",
        "name": "Temperature",
        "unique_id": "conduyt-bridge_th_ds_temperature_celsius",
        "state_topic": "conduyt/th/ds/temperature_celsius",
        "qos": 1,
        "availability": AVAIL,
        "availability_mode": "all",
        "icon": "mdi:thermometer",
        "entity_category": "diagnostic",
        "enabled_by_default": False,
        "unit_of_measurement": "°F",
        "device_class": "temperature",
        "state_class": "measurement",
        "value_template": F_TEMPLATE,
    }


def test_fahrenheit_number_exact_config() -> None:
    hints = {"setpoint": DatastreamHints(unit="°F", min=40, max=90, step=0.5)}
    assert cmps(hints)["ds_setpoint_celsius"] == {
        "p": "number",
        "name": "Setpoint",
        "unique_id": "conduyt-bridge_th_ds_setpoint_celsius",
        "state_topic": "conduyt/th/ds/setpoint_celsius",
        "command_topic": "conduyt/th/ds/setpoint_celsius/set",
        "retain": False,
        "qos": 1,
        "availability": AVAIL,
        "availability_mode": "all",
        "min": 40.0,
        "max": 90.0,
        "step": 0.5,
        "mode": "slider",
        "payload_reset": "null",
        "unit_of_measurement": "°F",
        "device_class": "temperature",
        "value_template": F_TEMPLATE,
        "command_template": "{{ (value - 32) / 1.8 }}",
    }


def test_number_default_range_is_converted() -> None:
    # FLOAT32 writes are bounded at ±1e9 °C: HA offers exactly those bounds in °F.
    conf = cmps({"setpoint": DatastreamHints(unit="°F")})["ds_setpoint_celsius"]
    assert (conf["min"], conf["max"], conf["step"], conf["mode"]) == (
        -1799999968.0,
        1800000032.0,
        0.001,
        "box",
    )
    # An INT16 in °C: its whole range in °F, one board step (1 °C = 1.8 °F) per step.
    conf = cmps({"level": DatastreamHints(unit="°F")})["ds_level_celsius"]
    assert (conf["min"], conf["max"], conf["step"], conf["mode"]) == (
        float(Fraction(-32768) * Fraction(9, 5) + 32),
        float(Fraction(32767) * Fraction(9, 5) + 32),
        1.8,
        "box",
    )
    assert conf["command_template"] == "{{ ((value - 32) / 1.8) | round | int }}"


def test_number_min_max_step_without_conversion() -> None:
    conf = cmps({"level": DatastreamHints(min=5, max=30, step=1)})["ds_level_celsius"]
    assert (conf["min"], conf["max"], conf["step"], conf["mode"]) == (5, 30, 1, "slider")
    assert isinstance(conf["min"], int)
    assert "command_template" not in conf and "value_template" not in conf
    assert conf["unit_of_measurement"] == "°C"


def test_device_class_and_state_class_overrides() -> None:
    out = cmps(
        {
            "door": DatastreamHints(device_class="door"),
            "heater": DatastreamHints(device_class="outlet", entity_category="config"),
            "label": DatastreamHints(device_class="timestamp"),
            "count": DatastreamHints(state_class="total_increasing", icon="mdi:counter"),
            "energy": DatastreamHints(unit="kWh", state_class="total"),
            "note": DatastreamHints(entity_category="config", icon="mdi:note"),
        }
    )
    assert out["ds_door"]["device_class"] == "door"
    assert (out["ds_heater"]["device_class"], out["ds_heater"]["entity_category"]) == (
        "outlet",
        "config",
    )
    assert out["ds_label"]["device_class"] == "timestamp"
    assert (out["ds_count"]["state_class"], out["ds_count"]["icon"]) == (
        "total_increasing",
        "mdi:counter",
    )
    energy = out["ds_energy_Wh"]
    assert (energy["unit_of_measurement"], energy["device_class"], energy["state_class"]) == (
        "kWh",
        "energy",
        "total",
    )
    assert energy["value_template"] == (
        # An INT32 in Wh: kWh hold exactly 3 decimals.
        "{% if is_number(value) %}{{ ((value | float) / 1000) | round(3) }}"
        "{% else %}{{ value }}{% endif %}"
    )
    assert (out["ds_note"]["entity_category"], out["ds_note"]["icon"]) == ("config", "mdi:note")


def test_unit_label_when_the_board_declares_none() -> None:
    conf = cmps({"count": DatastreamHints(unit="pulses")})["ds_count"]
    assert conf["unit_of_measurement"] == "pulses"
    assert "value_template" not in conf and "device_class" not in conf


def test_json_format_templates() -> None:
    out = cmps({"temperature": DatastreamHints(unit="K")}, payload_format="json")
    template = out["ds_temperature_celsius"]["value_template"]
    assert template == (
        "{% if is_number(value_json.value) %}{{ '%.7g' | format((value_json.value | float) "
        "+ 273.15) }}"
        "{% else %}{{ value_json.value }}{% endif %}"
    )
    assert state_shown(template, Fraction("-273.15"), is_json=True) == 0


def test_components_mode_carries_the_same_shaping() -> None:
    hints = {"temperature": DatastreamHints(unit="°F")}
    conf = cmps(hints, mode="components")["ds_temperature_celsius"]
    assert conf["value_template"] == F_TEMPLATE
    assert conf["unit_of_measurement"] == "°F"


def test_read_only_board_makes_number_options_misfit() -> None:
    hints = {"setpoint": DatastreamHints(unit="°F", min=40)}
    board = BoardDiscovery("th", hello(), "x", read_only=True, hints=hints)
    (problem,) = board_problems(board)
    assert problem == BoardProblem(
        "setpoint",
        "min",
        "min applies to writable numbers; datastream 'setpoint' is a read-only FLOAT32: HA sensor",
    )
    assert str(problem) == (
        "[devices.datastreams.setpoint] min: min applies to writable numbers; datastream "
        "'setpoint' is a read-only FLOAT32: HA sensor"
    )
    # Options without a misfit, or a name only, are no problem.
    names_only = {"setpoint": DatastreamHints(name="Target"), "level": DatastreamHints(min=5)}
    assert board_problems(BoardDiscovery("th", hello(), "x", hints=names_only)) == []
    # Misfit options are left out as a whole: the plain sensor of before.
    conf = cmps(hints, read_only=True)["ds_setpoint_celsius"]
    assert conf["unit_of_measurement"] == "°C" and "value_template" not in conf


# --- conversions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "x", "y"),
    [
        ("°C", "°F", "100", "212"),
        ("°C", "°F", "-40", "-40"),
        ("°F", "°C", "32", "0"),
        ("°C", "K", "0", "273.15"),
        ("°F", "K", "-459.67", "0"),
        ("bar", "Pa", "1", "100000"),
        ("hPa", "kPa", "1013.25", "101.325"),
        ("psi", "Pa", "1", "6894.757293168361336722672628"),  # lbf/in², truncated below
        ("mmHg", "Pa", "1", "133.322387415"),
        ("inHg", "hPa", "1", "33.86389"),
        ("in", "cm", "1", "2.54"),
        ("ft", "m", "1", "0.3048"),
        ("mm", "in", "25.4", "1"),
        ("kW", "W", "1.5", "1500"),
        ("Wh", "kWh", "1", "0.001"),
        ("m/s", "km/h", "1", "3.6"),
        ("mph", "km/h", "1", "1.609344"),
        ("lb", "kg", "1", "0.45359237"),
        ("oz", "g", "1", "28.349523125"),
        ("g", "kg", "1500", "1.5"),
        ("min", "s", "1", "60"),
        ("mA", "A", "250", "0.25"),
    ],
)
def test_conversion_values(src: str, dst: str, x: str, y: str) -> None:
    f = conversion(src, dst)
    assert f is not None
    if src == "psi":
        assert abs(f(Fraction(x)) - Fraction(y)) < Fraction(1, 10**20)
        return
    assert f(Fraction(x)) == Fraction(y)
    assert f.inverse()(Fraction(y)) == Fraction(x)


def test_every_conversion_round_trips_exactly_and_templates_match() -> None:
    values = [Fraction(v) for v in ("-40", "0", "1", "21.5", "1013.25", "123456.789")]
    for src in convertible_units():
        for dst in reachable_units(src):
            f = conversion(src, dst)
            assert f is not None
            back = f.inverse()
            for x in values:
                assert back(f(x)) == x, (src, dst, x)
                # The arithmetic text HA evaluates is the same map, exactly.
                assert _arith(f.expression("x"), x) == f(x), (src, dst, f.expression("x"))


def test_expression_forms() -> None:
    def expr(src: str, dst: str) -> str:
        f = conversion(src, dst)
        assert f is not None
        return f.expression("x")

    assert expr("°C", "°F") == "x * 1.8 + 32"
    assert expr("°F", "°C") == "(x - 32) / 1.8"
    assert expr("K", "°C") == "x - 273.15"
    assert expr("Pa", "hPa") == "x / 100"
    assert expr("km/h", "m/s") == "x / 3.6"
    assert expr("psi", "Pa") == "x * 8896443230521 / 1290320000"
    assert expr("°C", "°C") == "x"


def test_no_conversion_between_quantities() -> None:
    assert conversion("°C", "Pa") is None
    assert conversion("counts", "°C") is None
    assert reachable_units("°C") == ("°C", "°F", "K")
    assert reachable_units("counts") == ()


@pytest.mark.parametrize("is_json", [False, True])
def test_templates_convert_both_ways(is_json: bool) -> None:
    out = cmps(
        {"setpoint": DatastreamHints(unit="°F"), "level": DatastreamHints(unit="°F")},
        payload_format="json" if is_json else "plain",
    )
    sp = out["ds_setpoint_celsius"]
    assert state_shown(sp["value_template"], Fraction("21.5"), is_json) == Fraction("70.7")
    assert command_sent(sp["command_template"], Fraction("70.7")) == Fraction("21.5")
    assert command_sent(sp["command_template"], Fraction(212)) == 100
    level = out["ds_level_celsius"]
    assert state_shown(level["value_template"], Fraction(21), is_json) == Fraction("69.8")
    # HA's number steps by 1.8 °F; whatever it sends lands on the nearest whole °C.
    assert command_sent(level["command_template"], Fraction("69.8")) == 21
    assert command_sent(level["command_template"], Fraction(70)) == 21
    # The converted bounds go back to exactly the board's range.
    assert command_sent(level["command_template"], Fraction(level["min"])) == -32768
    assert command_sent(level["command_template"], Fraction(level["max"])) == 32767


# --- validation: whatever the board -----------------------------------------------------------


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return path


def config_lines(tmp_path: Path, options: str, port: str = "/dev/ttyUSB0") -> list[str]:
    path = write(
        tmp_path, f'[[devices]]\nid = "th"\nport = "{port}"\n[devices.datastreams.x]\n{options}\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    prefix = f"{path}: devices[0].datastreams.x."
    lines = str(info.value).splitlines()
    assert all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(*case, id=case[0][:40])
        for case in [
            (
                'icon = "thermometer"',
                "icon: must be a Material Design Icons name 'mdi:<name>' in lowercase letters, "
                "digits and '-', e.g. 'mdi:thermometer' (got 'thermometer')",
            ),
            (
                'icon = "mdi:Thermo meter"',
                "icon: must be a Material Design Icons name 'mdi:<name>' in lowercase letters, "
                "digits and '-', e.g. 'mdi:thermometer' (got 'mdi:Thermo meter')",
            ),
            (
                'entity_category = "system"',
                "entity_category: Input should be 'config' or 'diagnostic'",
            ),
            (
                'state_class = "average"',
                "state_class: Input should be 'measurement', 'measurement_angle', 'total' or "
                "'total_increasing'",
            ),
            (
                'device_class = "temprature"',
                "device_class: unknown device class 'temprature' (not one of the HA sensor, "
                "number, binary_sensor or switch device classes the bridge supports); did you "
                "mean 'temperature'?",
            ),
            (
                'device_class = "zzz"',
                "device_class: unknown device class 'zzz' (not one of the HA sensor, number, "
                "binary_sensor or switch device classes the bridge supports)",
            ),
            (
                'device_class = "temperature"\nunit = "psi"',
                "unit: unit 'psi' is not valid with device class 'temperature' "
                "(allowed: K, °C, °F)",
            ),
            (
                'device_class = "energy"\nstate_class = "measurement"',
                "state_class: state class 'measurement' is not valid with device class 'energy' "
                "(allowed: total, total_increasing)",
            ),
            ("min = 10\nmax = 5", "max: max (5) must be >= min (10)"),
            (
                'state_class = "measurement"\nmin = 0\nstep = 1',
                "state_class: state_class is for read-only sensors and min/step for writable "
                "numbers: one datastream cannot take both",
            ),
            ("step = 0.0001", "step: Input should be greater than or equal to 0.001"),
            ("min = nan", "min: Input should be a finite number"),
            (
                'enabled_by_default = "maybe"',
                "enabled_by_default: Input should be a valid boolean, unable to interpret input",
            ),
            ('unit = ""', "unit: String should have at least 1 character"),
            (f'unit = "{"x" * 5000}"', "unit: String should have at most 32 characters"),
            ("device_class = {a = {b = {c = 1}}}", "device_class: Input should be a valid string"),
            ('colour = "red"', "colour: unknown key"),
        ]
    ],
)
def test_option_errors_exact(tmp_path: Path, options: str, expected: str) -> None:
    assert config_lines(tmp_path, options) == [expected]


def test_invalid_utf8_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(
        b'[[devices]]\nport = "sim://thermostat"\n[devices.datastreams.t]\nicon = "\xff"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value) == f"{path}: invalid TOML: file is not UTF-8 text"


def test_option_problems_accept_a_valid_set() -> None:
    assert option_problems(DatastreamHints(device_class="temperature", unit="°F")) == []
    assert option_problems(DatastreamHints(min=1, max=1)) == []


# --- validation against the board's datastream ---------------------------------------------


@pytest.mark.parametrize(
    ("datastream", "hints", "read_only", "expected"),
    [
        (
            TEMP,
            DatastreamHints(unit="psi"),
            False,
            [
                (
                    "unit",
                    "no known conversion from '°C' (the board's unit of 'temperature') to "
                    "'psi': '°C' converts to °F, K",
                )
            ],
        ),
        (
            ds(0, "ticks", T.UINT16, "counts"),
            DatastreamHints(unit="kHz"),
            False,
            [
                (
                    "unit",
                    "no known conversion from 'counts' (the board's unit of 'ticks') to 'kHz': "
                    "the conversion table has none for 'counts'",
                )
            ],
        ),
        (
            DOOR,
            DatastreamHints(device_class="temperature"),
            False,
            [
                (
                    "device_class",
                    "device class 'temperature' is not one of HA's binary_sensor device "
                    "classes (allowed: battery, battery_charging, carbon_monoxide, cold, "
                    "connectivity, door, garage_door, gas, heat, light, lock, moisture, "
                    "motion, moving, occupancy, opening, plug, power, presence, problem, "
                    "running, safety, smoke, sound, tamper, update, vibration, window); "
                    "datastream 'door' is a read-only BOOL: HA binary_sensor",
                )
            ],
        ),
        (
            HEATER,
            DatastreamHints(device_class="door"),
            False,
            [
                (
                    "device_class",
                    "device class 'door' is not one of HA's switch device classes (allowed: "
                    "outlet, switch); datastream 'heater' is a writable BOOL: HA switch",
                )
            ],
        ),
        (
            NOTE,
            DatastreamHints(device_class="timestamp"),
            False,
            [
                (
                    "device_class",
                    "device class 'timestamp' is not one of HA's text device classes (it has "
                    "none); datastream 'note' is a writable STRING: HA text",
                )
            ],
        ),
        (
            TEMP,
            DatastreamHints(device_class="door"),
            False,
            [
                (
                    "device_class",
                    "device class 'door' is not one of HA's sensor device classes (allowed: "
                    + ", ".join(
                        sorted(
                            __import__(
                                "conduyt_bridge.northbound.homeassistant.classes",
                                fromlist=["NUMERIC_CLASSES"],
                            ).NUMERIC_CLASSES
                        )
                    )
                    + "); datastream 'temperature' is a read-only FLOAT32: HA sensor",
                )
            ],
        ),
        (
            SETPOINT,
            DatastreamHints(state_class="measurement"),
            False,
            [
                (
                    "state_class",
                    "state_class applies to read-only numeric sensors; datastream 'setpoint' "
                    "is a writable FLOAT32: HA number",
                )
            ],
        ),
        (
            TEMP,
            DatastreamHints(min=0, max=10, step=1),
            False,
            [
                (
                    key,
                    f"{key} applies to writable numbers; datastream 'temperature' is a "
                    "read-only FLOAT32: HA sensor",
                )
                for key in ("min", "max", "step")
            ],
        ),
        (
            DOOR,
            DatastreamHints(entity_category="config"),
            False,
            [
                (
                    "entity_category",
                    "entity_category 'config' is for entities that change a setting, HA "
                    "refuses it on a binary_sensor; datastream 'door' is a read-only BOOL: HA "
                    "binary_sensor (use 'diagnostic')",
                )
            ],
        ),
        (
            LABEL,
            DatastreamHints(unit="°C"),
            False,
            [
                (
                    "unit",
                    "unit applies to numeric datastreams; datastream 'label' is a read-only "
                    "STRING: HA sensor",
                )
            ],
        ),
        (
            TEMP,
            DatastreamHints(device_class="pressure"),
            False,
            [
                (
                    "device_class",
                    "unit '°C' of datastream 'temperature' is not valid with device class "
                    "'pressure' (allowed: Pa, bar, cbar, hPa, inHg, kPa, mbar, mmHg, psi)",
                )
            ],
        ),
        (
            COUNT,
            DatastreamHints(device_class="temperature"),
            False,
            [
                (
                    "device_class",
                    "unit no unit of datastream 'count' is not valid with device class "
                    "'temperature' (allowed: K, °C, °F)",
                )
            ],
        ),
        (
            LEVEL,
            DatastreamHints(unit="°F", max=100000),
            False,
            [
                (
                    "max",
                    "max 100000 is outside what datastream 'level' accepts: -58950.4..59012.6 °F",
                )
            ],
        ),
        (
            SETPOINT,
            DatastreamHints(min=-2e9),
            False,
            [("min", "min -2e+09 is outside what datastream 'setpoint' accepts: -1e+09..1e+09 °C")],
        ),
        (
            LEVEL,
            DatastreamHints(min=0.5, max=30, step=0.5),
            False,
            [
                (
                    key,
                    f"{key} 0.5 is not a whole number; datastream 'level' (INT16) takes whole "
                    "numbers only",
                )
                for key in ("min", "step")
            ],
        ),
        # Converted, HA's value is rounded to a whole °C by the command template.
        (LEVEL, DatastreamHints(unit="°F", min=40.5, step=0.5), False, []),
        (SETPOINT, DatastreamHints(min=0.5, step=0.25), False, []),
        (SETPOINT, DatastreamHints(unit="°F", min=40, max=90), False, []),
        (SETPOINT, DatastreamHints(state_class="measurement"), True, []),
        (
            ds(0, "odd", 0x7F, "°C"),  # type: ignore[arg-type]
            DatastreamHints(unit="°F"),
            False,
            [],
        ),
    ],
)
def test_datastream_problems_exact(
    datastream: DatastreamDescriptor,
    hints: DatastreamHints,
    read_only: bool,
    expected: list[tuple[str, str]],
) -> None:
    assert datastream_problems(datastream, hints, read_only) == expected


def test_sim_board_options_checked_at_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[devices]]\nport = "sim://thermostat"\n'
        '[devices.datastreams.temperature]\nunit = "psi"\n'
        '[devices.datastreams.setpoint]\nstate_class = "measurement"\n'
        '[devices.datastreams.heater]\ndevice_class = "door"\n'
        '[devices.datastreams.not_declared]\nunit = "°F"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value).splitlines() == [
        f"{path}: devices[0].datastreams.temperature.unit: no known conversion from '°C' (the "
        "board's unit of 'temperature') to 'psi': '°C' converts to °F, K",
        f"{path}: devices[0].datastreams.setpoint.state_class: state_class applies to "
        "read-only numeric sensors; datastream 'setpoint' is a writable FLOAT32: HA number",
        f"{path}: devices[0].datastreams.heater.device_class: device class 'door' is not one "
        "of HA's switch device classes (allowed: outlet, switch); datastream 'heater' is a "
        "writable BOOL: HA switch",
    ]


def test_config_round_trip_to_hints(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[devices]]\nport = "sim://thermostat"\nname = "Living room"\n'
        '[devices.datastreams.setpoint]\nunit = "°F"\nmin = 40\nmax = 90\nicon = "mdi:thermostat"\n'
        'entity_category = "config"\nenabled_by_default = true\nname = "Target"\n',
    )
    settings = load_settings(path, env={})
    device = settings.devices[0]
    assert device_name(device) == "Living room"
    assert datastream_hints(device.datastreams["setpoint"]) == DatastreamHints(
        name="Target",
        unit="°F",
        min=40.0,
        max=90.0,
        icon="mdi:thermostat",
        entity_category="config",
        enabled_by_default=True,
    )


def test_hints_from_a_minimal_library_config() -> None:
    class Minimal:
        name = "Air"
        expire_after_s = 30

    assert datastream_hints(Minimal()) == DatastreamHints(name="Air", expire_after_s=30)
    assert device_name(Minimal()) == "Air"
    assert device_name(object()) is None


# --- device names, model and manufacturer, the console link ---------------------------------


@pytest.mark.parametrize(
    ("firmware", "expected"),
    [
        ("conduyt-arduino/1.2", ("Conduyt", "arduino", "conduyt-arduino/1.2")),
        ("sim-thermostat", ("Conduyt simulator", "thermostat", "sim-thermostat")),
        ("acme-gizmo-v2", ("acme", "gizmo-v2", "acme-gizmo-v2")),
        ("thermostat", ("Conduyt", "thermostat", None)),
        ("thermostat/2", ("Conduyt", "thermostat", "thermostat/2")),
        ("", ("Conduyt", "Conduyt board", None)),
        ("-odd", ("Conduyt", "-odd", None)),
    ],
)
def test_firmware_identity(firmware: str, expected: tuple[str, str, str | None]) -> None:
    assert firmware_identity(firmware) == expected


def test_board_device_name_model_manufacturer() -> None:
    cfg = DiscoveryConfig()
    board = BoardDiscovery("th", hello(), "x", name="Living room")
    (message,) = board_messages(cfg, board)
    assert validate_message(message.topic, message.payload) == []
    dev = json.loads(message.payload)["dev"]
    assert (dev["name"], dev["manufacturer"], dev["model"], dev["model_id"]) == (
        "Living room",
        "Conduyt",
        "arduino",
        "conduyt-arduino/1.2",
    )
    unnamed = json.loads(board_messages(cfg, BoardDiscovery("th", hello(), "x"))[0].payload)
    assert unnamed["dev"]["name"] == "th"


def settings_with(listen: str) -> Settings:
    return Settings.model_validate({"http": {"listen": listen, "token": "t" * 32}})


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("", None),
        ("0.0.0.0:9100", "http://gateway:9100/"),
        ("[::]:9100", "http://gateway:9100/"),
        ("192.168.1.20:8080", "http://192.168.1.20:8080/"),
        ("[fd00::5]:9100", "http://[fd00::5]:9100/"),
        ("pi4.local:80", "http://pi4.local:80/"),
    ],
)
def test_console_url(listen: str, url: str | None) -> None:
    assert console_url(settings_with(listen), hostname="gateway") == url


def test_configuration_url_on_the_bridge_device() -> None:
    options = homeassistant_options(settings_with("127.0.0.1:9100"))
    assert options.discovery.configuration_url == "http://127.0.0.1:9100/"
    for mode in ("device", "components"):
        cfg = DiscoveryConfig(mode=mode, configuration_url="http://127.0.0.1:9100/")  # type: ignore[arg-type]
        (message,) = bridge_messages(cfg)
        assert validate_message(message.topic, message.payload) == []
        assert json.loads(message.payload)["dev"]["configuration_url"] == "http://127.0.0.1:9100/"
    (plain,) = bridge_messages(DiscoveryConfig())
    assert "configuration_url" not in json.loads(plain.payload)["dev"]


def test_linear_identity() -> None:
    assert Linear(Fraction(1), Fraction(0)).identity
    assert not Linear(Fraction(9, 5), Fraction(32)).identity


def test_schema_check_refuses_a_bad_configuration_url() -> None:
    (message,) = bridge_messages(DiscoveryConfig(configuration_url="ftp://gateway/"))
    assert validate_message(message.topic, message.payload) == [
        "device.configuration_url: not an http(s) or homeassistant:// URL"
    ]


def test_value_templates_round_away_float_noise() -> None:
    # In HA's float arithmetic 23.1 * 1.8 + 32 is 73.58000000000001: the template rounds.
    assert 23.1 * 1.8 + 32 != 73.58
    out = cmps(
        {
            "temperature": DatastreamHints(unit="°F"),
            "pressure": DatastreamHints(unit="hPa"),
            "energy": DatastreamHints(unit="kWh"),
        }
    )
    temp = out["ds_temperature_celsius"]["value_template"]
    assert rendered_state(temp, "23.1") == "73.58"
    assert rendered_state(temp, "-17.7") == "0.14"  # not 0.14000000000000057
    assert rendered_state(temp, "1e+09") == "1.8e+09"
    assert rendered_state(temp, "null") == "null"
    # Integer datastreams: exactly as many places as the map needs (UINT16 Pa → hPa: 2).
    pressure = out["ds_pressure_Pa"]["value_template"]
    assert pressure.endswith(
        "{{ ((value | float) / 100) | round(2) }}{% else %}{{ value }}{% endif %}"
    )
    assert rendered_state(pressure, "101325") == "1013.25"
    assert rendered_state(out["ds_energy_Wh"]["value_template"], "123456789") == "123456.789"


def test_number_set_to_its_converted_bounds_stays_in_range() -> None:
    # HA sends 40 °F (its min); the board keeps (40 - 32) / 1.8 °C as a float32 and the bridge
    # publishes that float32's shortest text: shown again, it is 40 °F, not a hair below
    # (which HA would refuse as "Invalid value for number").
    conf = cmps({"setpoint": DatastreamHints(unit="°F", min=40, max=90)})["ds_setpoint_celsius"]
    for ha_value in (40, 90, 77, 55.5):
        sent = float(command_sent(conf["command_template"], Fraction(ha_value)))
        board = shortest_float32(struct.unpack("<f", struct.pack("<f", sent))[0])
        shown = float(rendered_state(conf["value_template"], repr(board)))
        assert shown == ha_value, (ha_value, board, shown)
