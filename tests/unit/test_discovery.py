"""Home Assistant discovery payloads (conduyt_bridge/northbound/homeassistant/discovery.py),
checked against HA's documented schema (tests/support/ha_schema/)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from support.ha_schema import SENSOR_DEVICE_CLASSES, validate_discovery, validate_message

from conduyt_bridge.northbound.homeassistant import discovery
from conduyt_bridge.northbound.homeassistant.discovery import (
    MIGRATE_PAYLOAD,
    BoardDiscovery,
    DatastreamHints,
    DiscoveryConfig,
    DiscoveryMessage,
    DiscoveryMode,
    PayloadFormat,
    UnitClass,
    board_messages,
    bridge_messages,
    classify_unit,
    clear_messages,
    handover_messages,
    node_config_filters,
    removal_messages,
    status_topic,
)
from conduyt_bridge.protocol.constants import DatastreamType as T
from conduyt_bridge.protocol.hello import DatastreamDescriptor, HelloResp
from conduyt_bridge.protocol.values import write_range

AVR_MCU_ID = bytes.fromhex("1e950f0000000000")  # ATmega328P signature: shared by all Unos


def ds(
    index: int, name: str, type_: T | int, unit: str = "", writable: bool = False
) -> DatastreamDescriptor:
    return DatastreamDescriptor(index, name, type_, unit, writable, retain=writable)


THERMOSTAT_DATASTREAMS = (
    ds(0, "temperature", T.FLOAT32, "celsius"),
    ds(1, "humidity", T.FLOAT32, "%"),
    ds(2, "setpoint", T.FLOAT32, "celsius", writable=True),
    ds(3, "heater", T.BOOL, writable=True),
    ds(4, "pressure", T.INT16, "hPa"),
    ds(5, "brightness", T.UINT8, writable=True),
    ds(6, "label", T.STRING),
    ds(7, "raw", T.BYTES),
)


def hello(
    datastreams: tuple[DatastreamDescriptor, ...] = THERMOSTAT_DATASTREAMS,
    mcu_id: bytes = AVR_MCU_ID,
) -> HelloResp:
    return HelloResp("thermostat", (1, 4, 2), mcu_id, max_payload=256, datastreams=datastreams)


def board(dev: str = "greenhouse", **kwargs: Any) -> BoardDiscovery:
    kwargs.setdefault("hello", hello())
    return BoardDiscovery(dev=dev, port="/dev/ttyUSB0", **kwargs)


CFG = DiscoveryConfig(bridge_version="1.2.3")
NODE = "conduyt-bridge_greenhouse"
DEVICE_TOPIC = f"homeassistant/device/{NODE}/config"

BRIDGE_AVAIL = {
    "topic": "conduyt/bridge/conduyt-bridge/state",
    "payload_available": "online",
    "payload_not_available": "offline",
}
BOARD_AVAIL = {
    "topic": "conduyt/greenhouse/status",
    "payload_available": "online",
    "payload_not_available": "offline",
}
AVAIL = {"availability": [BRIDGE_AVAIL, BOARD_AVAIL], "availability_mode": "all"}

EXPECTED_DEV = {
    "identifiers": [
        "conduyt_conduyt-bridge_greenhouse",
        "conduyt_conduyt-bridge_greenhouse_1e950f0000000000",
    ],
    "name": "greenhouse",
    "manufacturer": "Conduyt",
    "model": "thermostat",
    "sw_version": "1.4.2",
    "via_device": "conduyt_bridge_conduyt-bridge",
    "serial_number": "1e950f0000000000",
}
EXPECTED_ORIGIN = {
    "name": "conduyt-bridge",
    "sw": "1.2.3",
    "url": "https://github.com/conduyt/conduyt-bridge",
}


def state(slug: str) -> str:
    return f"conduyt/greenhouse/ds/{slug}"


# The full expected `cmps` of the thermostat board in plain payload format.
EXPECTED_CMPS_PLAIN: dict[str, dict[str, Any]] = {
    "status": {
        "p": "binary_sensor",
        "name": "Connectivity",
        "unique_id": f"{NODE}_status",
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "state_topic": "conduyt/greenhouse/status",
        "payload_on": "online",
        "payload_off": "offline",
        "qos": 1,
        "availability": [BRIDGE_AVAIL],
        "availability_mode": "all",
    },
    "ds_temperature_celsius": {
        "p": "sensor",
        "name": "Temperature",
        "unique_id": f"{NODE}_ds_temperature_celsius",
        "state_topic": state("temperature_celsius"),
        "qos": 1,
        **AVAIL,
        "unit_of_measurement": "°C",
        "device_class": "temperature",
        "state_class": "measurement",
    },
    "ds_humidity_percent": {
        "p": "sensor",
        "name": "Humidity",
        "unique_id": f"{NODE}_ds_humidity_percent",
        "state_topic": state("humidity_percent"),
        "qos": 1,
        **AVAIL,
        "unit_of_measurement": "%",
        "device_class": "humidity",
        "state_class": "measurement",
    },
    "ds_setpoint_celsius": {
        "p": "number",
        "name": "Setpoint",
        "unique_id": f"{NODE}_ds_setpoint_celsius",
        "state_topic": state("setpoint_celsius"),
        "command_topic": state("setpoint_celsius") + "/set",
        "retain": False,
        "qos": 1,
        **AVAIL,
        "unit_of_measurement": "°C",
        "device_class": "temperature",
        "min": -1e9,
        "max": 1e9,
        "step": 0.001,
        "mode": "box",
        "payload_reset": "null",
    },
    "ds_heater": {
        "p": "switch",
        "name": "Heater",
        "unique_id": f"{NODE}_ds_heater",
        "state_topic": state("heater"),
        "command_topic": state("heater") + "/set",
        "retain": False,
        "qos": 1,
        **AVAIL,
        "payload_on": "true",
        "payload_off": "false",
        "state_on": "true",
        "state_off": "false",
    },
    "ds_pressure_hPa": {
        "p": "sensor",
        "name": "Pressure",
        "unique_id": f"{NODE}_ds_pressure_hPa",
        "state_topic": state("pressure_hPa"),
        "qos": 1,
        **AVAIL,
        "unit_of_measurement": "hPa",
        "device_class": "pressure",
        "state_class": "measurement",
    },
    "ds_brightness": {
        "p": "number",
        "name": "Brightness",
        "unique_id": f"{NODE}_ds_brightness",
        "state_topic": state("brightness"),
        "command_topic": state("brightness") + "/set",
        "retain": False,
        "qos": 1,
        **AVAIL,
        "min": 0,
        "max": 255,
        "step": 1,
        "mode": "slider",
        "payload_reset": "null",
    },
    "ds_label": {
        "p": "sensor",
        "name": "Label",
        "unique_id": f"{NODE}_ds_label",
        "state_topic": state("label"),
        "qos": 1,
        **AVAIL,
    },
    "ds_raw": {
        "p": "sensor",
        "name": "Raw",
        "unique_id": f"{NODE}_ds_raw",
        "state_topic": state("raw"),
        "qos": 1,
        **AVAIL,
        "enabled_by_default": False,
    },
}

VALUE = "{{ value_json.value }}"
BOOL_VALUE = "{{ 'true' if value_json.value else 'false' }}"


def expected_cmps(payload_format: str) -> dict[str, dict[str, Any]]:
    """The expected components for `payload_format`: JSON adds value templates (and
    numbers keep HA's default reset payload, since None renders as "None")."""
    cmps = {k: dict(v) for k, v in EXPECTED_CMPS_PLAIN.items()}
    if payload_format == "json":
        for key, conf in cmps.items():
            if key == "status":
                continue  # `online`/`offline` on the status topic are plain in both formats
            conf["value_template"] = BOOL_VALUE if key == "ds_heater" else VALUE
            conf.pop("payload_reset", None)
    return cmps


def decode(message: DiscoveryMessage) -> dict[str, Any]:
    doc = json.loads(message.payload.decode("utf-8"))
    assert isinstance(doc, dict)
    return doc


def assert_valid(messages: list[DiscoveryMessage], prefix: str = "homeassistant") -> None:
    for m in messages:
        assert m.retain
        assert validate_message(m.topic, m.payload, prefix) == [], m.topic


# --- exact payloads ------------------------------------------------------------------


@pytest.mark.parametrize("payload_format", ["plain", "json"])
def test_device_mode_exact_payload(payload_format: PayloadFormat) -> None:
    cfg = replace(CFG, payload_format=payload_format)
    messages = board_messages(cfg, board())
    assert [m.topic for m in messages] == [DEVICE_TOPIC]
    assert messages[0].retain is True
    assert decode(messages[0]) == {
        "dev": EXPECTED_DEV,
        "o": EXPECTED_ORIGIN,
        "cmps": expected_cmps(payload_format),
    }


@pytest.mark.parametrize("payload_format", ["plain", "json"])
def test_components_mode_exact_payloads(payload_format: PayloadFormat) -> None:
    cfg = replace(CFG, mode="components", payload_format=payload_format)
    messages = board_messages(cfg, board())
    expected = expected_cmps(payload_format)
    assert [m.topic for m in messages] == [
        f"homeassistant/{conf['p']}/{NODE}/{key}/config" for key, conf in expected.items()
    ]
    for message, conf in zip(messages, expected.values(), strict=True):
        single = {k: v for k, v in conf.items() if k != "p"}
        assert decode(message) == {**single, "dev": EXPECTED_DEV, "o": EXPECTED_ORIGIN}


def test_payload_is_compact_utf8_json() -> None:
    (message,) = board_messages(CFG, board())
    assert "°C".encode() in message.payload  # not \u00b0C
    assert b": " not in message.payload and b", " not in message.payload


# --- validation against HA's schema ----------------------------------------------------


@pytest.mark.parametrize("mode", ["device", "components"])
@pytest.mark.parametrize("payload_format", ["plain", "json"])
def test_every_message_validates(mode: DiscoveryMode, payload_format: PayloadFormat) -> None:
    cfg = replace(CFG, mode=mode, payload_format=payload_format)
    assert_valid(bridge_messages(cfg))
    assert_valid(board_messages(cfg, board()))
    assert_valid(board_messages(cfg, board(read_only=True)))
    writable_all = tuple(replace(d, writable=True) for d in THERMOSTAT_DATASTREAMS)
    assert_valid(board_messages(cfg, board(hello=hello(writable_all))))


def test_custom_prefix_and_base_topic_validate() -> None:
    cfg = DiscoveryConfig(
        prefix="ha/disc", base_topic="site/a", bridge_id="gw.1", mode="components"
    )
    messages = board_messages(cfg, board(dev="uno"))
    assert all(m.topic.startswith("ha/disc/") for m in messages)
    assert all("/gw_1_uno/" in m.topic for m in messages)  # `.` is not allowed in a node id
    assert_valid(messages, prefix="ha/disc")
    assert_valid(bridge_messages(cfg), prefix="ha/disc")


@pytest.mark.parametrize(
    ("name", "unit"),
    [(name, unit) for unit in discovery._UNIT_TABLE for name in ("value",)]
    + [
        (name, unit)
        for unit in ("%", "ppm", "ppb", "µg/m³", "ug/m3", "dB", "furlongs", "")
        for name in (
            "humidity",
            "battery",
            "soil_moisture",
            "co2",
            "tvoc",
            "co",
            "pm2_5",
            "pm10",
            "pm1",
            "rssi",
            "noise",
            "x",
        )
    ],
)
def test_every_unit_mapping_is_accepted_by_ha(name: str, unit: str) -> None:
    for writable, type_ in ((False, T.FLOAT32), (True, T.FLOAT32), (False, T.UINT16)):
        b = board(hello=hello((ds(0, name, type_, unit, writable),)))
        assert_valid(board_messages(CFG, b))


# --- unit mapping --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "unit", "expected"),
    [
        ("temperature", "celsius", UnitClass("°C", "temperature")),
        ("temp", "°C", UnitClass("°C", "temperature")),
        ("temp", "degC", UnitClass("°C", "temperature")),
        ("temp", "ºC", UnitClass("°C", "temperature")),
        ("temp", "°F", UnitClass("°F", "temperature")),
        ("temp", "Fahrenheit", UnitClass("°F", "temperature")),
        ("humidity", "%", UnitClass("%", "humidity")),
        ("rh", "%", UnitClass("%", "humidity")),
        ("battery", "%", UnitClass("%", "battery")),
        ("soil", "%", UnitClass("%", "moisture")),
        ("duty", "%", UnitClass("%")),
        ("bus", "V", UnitClass("V", "voltage")),
        ("cell", "mV", UnitClass("mV", "voltage")),
        ("load", "A", UnitClass("A", "current")),
        ("load", "mA", UnitClass("mA", "current")),
        ("load", "W", UnitClass("W", "power")),
        ("load", "kW", UnitClass("kW", "power")),
        ("meter", "Wh", UnitClass("Wh", "energy", "total_increasing")),
        ("meter", "kWh", UnitClass("kWh", "energy", "total_increasing")),
        ("baro", "Pa", UnitClass("Pa", "pressure")),
        ("baro", "hPa", UnitClass("hPa", "pressure")),
        ("baro", "kPa", UnitClass("kPa", "pressure")),
        ("tyre", "bar", UnitClass("bar", "pressure")),
        ("light", "lx", UnitClass("lx", "illuminance")),
        ("light", "lux", UnitClass("lx", "illuminance")),
        ("co2", "ppm", UnitClass("ppm", "carbon_dioxide")),
        ("gas", "ppm", UnitClass("ppm")),
        ("tvoc", "ppb", UnitClass("ppb", "volatile_organic_compounds_parts")),
        ("noise", "dB", UnitClass("dB", "sound_pressure")),
        ("wifi_rssi", "dB", UnitClass("dB", "signal_strength")),
        ("rssi", "dBm", UnitClass("dBm", "signal_strength")),
        ("mains", "Hz", UnitClass("Hz", "frequency")),
        ("uptime", "s", UnitClass("s", "duration")),
        ("latency", "ms", UnitClass("ms", "duration")),
        ("range", "m", UnitClass("m", "distance")),
        ("range", "cm", UnitClass("cm", "distance")),
        ("range", "mm", UnitClass("mm", "distance")),
        ("wind", "km/h", UnitClass("km/h", "speed")),
        ("wind", "m/s", UnitClass("m/s", "speed")),
        ("tank", "L", UnitClass("L")),
        ("dose", "ml", UnitClass("mL")),
        ("fan", "rpm", UnitClass("rpm")),
        ("pm2_5", "ug/m3", UnitClass("µg/m³", "pm25")),
        ("pm2.5", "µg/m³", UnitClass("µg/m³", "pm25")),
        ("pm10", "µg/m³", UnitClass("µg/m³", "pm10")),
        ("pm1", "µg/m3", UnitClass("µg/m³", "pm1")),
        ("dust", "µg/m³", UnitClass("µg/m³")),
        ("accel", "g", UnitClass("g")),  # g-force as likely as grams: no class
        ("acidity", "pH", UnitClass(None, "ph")),
        ("count", "", UnitClass(None)),
        ("thing", "furlong", UnitClass("furlong")),
        ("thing", " widgets ", UnitClass("widgets")),
    ],
)
def test_classify_unit(name: str, unit: str, expected: UnitClass) -> None:
    assert classify_unit(name, unit) == expected


def test_unit_table_only_uses_ha_units() -> None:
    for key, (unit, device_class, state_class) in discovery._UNIT_TABLE.items():
        if device_class is not None:
            units, state_classes = SENSOR_DEVICE_CLASSES[device_class]
            assert unit in units, key
            assert state_class in state_classes, key


# --- numbers, read-only boards, hints, odd datastreams --------------------------------


@pytest.mark.parametrize(
    ("type_", "lo", "hi", "step", "mode"),
    [
        (T.INT8, -128, 127, 1, "slider"),
        (T.UINT8, 0, 255, 1, "slider"),
        (T.INT16, -32768, 32767, 1, "box"),
        (T.UINT16, 0, 65535, 1, "box"),
        (T.INT32, -(2**31), 2**31 - 1, 1, "box"),
        (T.FLOAT32, -1e9, 1e9, 0.001, "box"),
    ],
)
def test_number_range_from_type(type_: T, lo: float, hi: float, step: float, mode: str) -> None:
    (message,) = board_messages(CFG, board(hello=hello((ds(0, "level", type_, writable=True),))))
    conf = decode(message)["cmps"]["ds_level"]
    assert conf["p"] == "number"
    assert (conf["min"], conf["max"], conf["step"], conf["mode"]) == (lo, hi, step, mode)
    assert isinstance(conf["step"], int) == (type_ is not T.FLOAT32)


@pytest.mark.parametrize(
    ("type_", "lo", "hi", "mode"),
    [
        (T.UINT8, 0, 100, "slider"),
        (T.INT8, 0, 100, "slider"),
        (T.UINT16, 0, 100, "slider"),  # a percentage is a slider whatever its width
        (T.FLOAT32, -1e9, 1e9, "box"),  # a float % keeps the float write bounds
    ],
)
def test_percent_number_is_a_0_to_100_slider(type_: T, lo: float, hi: float, mode: str) -> None:
    descriptor = ds(0, "duty", type_, unit="%", writable=True)
    (message,) = board_messages(CFG, board(hello=hello((descriptor,))))
    conf = decode(message)["cmps"]["ds_duty_percent"]  # the slug carries the unit
    assert (conf["p"], conf["min"], conf["max"], conf["mode"]) == ("number", lo, hi, mode)
    assert conf["unit_of_measurement"] == "%"
    # The advertised bounds are exactly what the bridge's write rule accepts.
    assert write_range(descriptor) == (float(lo), float(hi))
    assert_valid([message])


def test_read_only_board_has_no_controls() -> None:
    (message,) = board_messages(CFG, board(read_only=True))
    cmps = decode(message)["cmps"]
    assert {c["p"] for c in cmps.values()} == {"sensor", "binary_sensor"}
    assert not any("command_topic" in c for c in cmps.values())
    assert cmps["ds_heater"]["p"] == "binary_sensor"
    assert cmps["ds_setpoint_celsius"]["p"] == "sensor"


def test_writable_strings_and_bytes_are_text_entities() -> None:
    streams = (ds(0, "message", T.STRING, writable=True), ds(1, "blob", T.BYTES, writable=True))
    (message,) = board_messages(CFG, board(hello=hello(streams)))
    cmps = decode(message)["cmps"]
    text = cmps["ds_message"]
    assert text["p"] == "text"
    assert text["command_topic"] == state("message") + "/set"
    assert text["max"] == 255
    assert text["command_template"] == "{{ {'value': value} | to_json }}"
    assert "pattern" not in text
    blob = cmps["ds_blob"]
    assert blob["p"] == "text" and blob["pattern"] == "^[A-Za-z0-9+/]*={0,2}$"
    assert blob["enabled_by_default"] is False


def test_hints_name_and_expire_after() -> None:
    hints = {
        "temperature": DatastreamHints(name="Air temperature", expire_after_s=30),
        "heater": DatastreamHints(expire_after_s=30),  # a switch has no expire_after in HA
    }
    (message,) = board_messages(CFG, board(hints=hints))
    cmps = decode(message)["cmps"]
    assert cmps["ds_temperature_celsius"]["name"] == "Air temperature"
    assert cmps["ds_temperature_celsius"]["expire_after"] == 30
    assert "expire_after" not in cmps["ds_heater"]
    assert "expire_after" not in cmps["ds_humidity_percent"]
    ro = decode(board_messages(CFG, board(hints=hints, read_only=True))[0])["cmps"]
    assert ro["ds_heater"]["expire_after"] == 30  # as a binary_sensor it has one


def test_unknown_type_code_gives_no_entity() -> None:
    (message,) = board_messages(CFG, board(hello=hello((ds(0, "mystery", 0x42),))))
    assert list(decode(message)["cmps"]) == ["status"]


def test_sanitised_slug_collision_gets_index() -> None:
    streams = (ds(0, "a.b", T.INT16), ds(1, "a_b", T.INT16))
    (message,) = board_messages(CFG, board(hello=hello(streams)))
    cmps = decode(message)["cmps"]
    assert cmps["ds_a_b"]["state_topic"] == state("a.b")
    assert cmps["ds_a_b_1"]["state_topic"] == state("a_b")
    assert len({c["unique_id"] for c in cmps.values()}) == len(cmps)


def test_zero_mcu_id_has_no_serial_number() -> None:
    (message,) = board_messages(CFG, board(hello=hello(mcu_id=bytes(8))))
    assert "serial_number" not in decode(message)["dev"]


def test_two_avr_boards_with_one_mcu_id_stay_two_devices() -> None:
    a = decode(board_messages(CFG, board("uno_a"))[0])
    b = decode(board_messages(CFG, board("uno_b"))[0])
    assert a["dev"]["serial_number"] == b["dev"]["serial_number"]  # same chip signature
    ids_a, ids_b = set(a["dev"]["identifiers"]), set(b["dev"]["identifiers"])
    assert not ids_a & ids_b  # HA merges devices sharing ANY identifier
    # mcu_id appears only combined with the configured device id, never alone.
    assert ids_a == {
        "conduyt_conduyt-bridge_uno_a",
        f"conduyt_conduyt-bridge_uno_a_{AVR_MCU_ID.hex()}",
    }
    assert ids_b == {
        "conduyt_conduyt-bridge_uno_b",
        f"conduyt_conduyt-bridge_uno_b_{AVR_MCU_ID.hex()}",
    }
    uids_a = {c["unique_id"] for c in a["cmps"].values()}
    uids_b = {c["unique_id"] for c in b["cmps"].values()}
    assert not uids_a & uids_b


def test_two_bridges_do_not_collide() -> None:
    one = decode(board_messages(CFG, board())[0])
    other_cfg = replace(CFG, bridge_id="gateway-2")
    (other_msg,) = board_messages(other_cfg, board())
    other = decode(other_msg)
    assert other_msg.topic != DEVICE_TOPIC
    assert not set(one["dev"]["identifiers"]) & set(other["dev"]["identifiers"])
    assert other["dev"]["via_device"] == "conduyt_bridge_gateway-2"


# --- the bridge device ---------------------------------------------------------------


def test_bridge_device_mode() -> None:
    (message,) = bridge_messages(CFG)
    assert message.topic == "homeassistant/device/conduyt-bridge_bridge/config"
    assert decode(message) == {
        "dev": {
            "identifiers": ["conduyt_bridge_conduyt-bridge"],
            "name": "Conduyt bridge",
            "manufacturer": "Conduyt",
            "model": "conduyt-bridge",
            "sw_version": "1.2.3",
        },
        "o": EXPECTED_ORIGIN,
        "cmps": {
            "connectivity": {
                "p": "binary_sensor",
                "name": "Connectivity",
                "unique_id": "conduyt-bridge_bridge_connectivity",
                "device_class": "connectivity",
                "entity_category": "diagnostic",
                "state_topic": "conduyt/bridge/conduyt-bridge/state",
                "payload_on": "online",
                "payload_off": "offline",
                "qos": 1,
            }
        },
    }
    # Boards route through it.
    board_dev = decode(board_messages(CFG, board())[0])["dev"]
    assert board_dev["via_device"] in decode(message)["dev"]["identifiers"]


def test_bridge_components_mode() -> None:
    cfg = replace(CFG, mode="components", bridge_id="gw")
    (message,) = bridge_messages(cfg)
    assert message.topic == "homeassistant/binary_sensor/gw_bridge/connectivity/config"
    doc = decode(message)
    assert doc["dev"]["name"] == "Conduyt bridge gw"
    assert doc["state_topic"] == "conduyt/bridge/conduyt-bridge/state"
    assert "p" not in doc


def test_status_topic() -> None:
    assert status_topic(CFG) == "homeassistant/status"
    assert status_topic(replace(CFG, prefix="ha")) == "ha/status"


# --- removal -------------------------------------------------------------------------

WITHOUT_HUMIDITY = tuple(d for d in THERMOSTAT_DATASTREAMS if d.name != "humidity")


def test_removal_components_mode() -> None:
    cfg = replace(CFG, mode="components")
    old = board_messages(cfg, board())
    new = board_messages(cfg, board(hello=hello(WITHOUT_HUMIDITY)))
    assert removal_messages(cfg, old, new) == [
        DiscoveryMessage(
            f"homeassistant/sensor/{NODE}/ds_humidity_percent/config", b"", retain=True
        )
    ]
    assert removal_messages(cfg, old, old) == []


def test_removal_device_mode_reduces_vanished_component_to_platform() -> None:
    old = board_messages(CFG, board())
    new = board_messages(CFG, board(hello=hello(WITHOUT_HUMIDITY)))
    (interim,) = removal_messages(CFG, old, new)
    assert interim.topic == DEVICE_TOPIC and interim.retain
    doc = decode(interim)
    new_doc = decode(new[0])
    assert doc["cmps"]["ds_humidity_percent"] == {"p": "sensor"}
    assert {k: v for k, v in doc["cmps"].items() if k != "ds_humidity_percent"} == new_doc["cmps"]
    assert doc["dev"] == new_doc["dev"] and doc["o"] == new_doc["o"]
    assert_valid([interim])
    assert removal_messages(CFG, old, old) == []


def test_removal_device_mode_platform_change() -> None:
    old = board_messages(CFG, board())
    new = board_messages(CFG, board(read_only=True))  # number → sensor, switch → binary_sensor
    (interim,) = removal_messages(CFG, old, new)
    cmps = decode(interim)["cmps"]
    assert cmps["ds_setpoint_celsius"] == {"p": "number"}
    assert cmps["ds_heater"] == {"p": "switch"}
    assert cmps["ds_brightness"] == {"p": "number"}
    assert cmps["ds_temperature_celsius"]["p"] == "sensor"  # unchanged ones stay
    assert_valid([interim])


def test_removal_of_a_whole_board_and_of_a_mode_switch() -> None:
    old = board_messages(CFG, board())
    assert removal_messages(CFG, old, []) == [DiscoveryMessage(DEVICE_TOPIC, b"")]
    cfg = replace(CFG, mode="components")
    new = board_messages(cfg, board())
    assert removal_messages(cfg, old, new) == [DiscoveryMessage(DEVICE_TOPIC, b"")]
    back = removal_messages(CFG, new, old)
    assert {m.topic for m in back} == {m.topic for m in new}
    assert all(m.payload == b"" for m in back)


# --- first announcement: HA's migrate_discovery hand-over between modes ----------------


def test_migrate_payload_is_the_documented_one() -> None:
    assert json.loads(MIGRATE_PAYLOAD) == {"migrate_discovery": True}
    assert validate_message(DEVICE_TOPIC, MIGRATE_PAYLOAD) == []


def test_handover_components_to_device() -> None:
    components = board_messages(replace(CFG, mode="components"), board())
    device = board_messages(CFG, board())
    found = {m.topic: m.payload for m in components}
    before, after = handover_messages(CFG, found, device)
    # Every old per-entity topic is handed over before the device config, then emptied.
    assert before == [DiscoveryMessage(m.topic, MIGRATE_PAYLOAD) for m in components]
    assert after == [DiscoveryMessage(m.topic, b"") for m in components]
    assert all(m.retain for m in before + after)
    # What makes HA keep entity ids: the same unique_id on both forms.
    old_ids = {json.loads(m.payload)["unique_id"] for m in components}
    assert {c["unique_id"] for c in decode(device[0])["cmps"].values()} == old_ids


def test_handover_device_to_components() -> None:
    device = board_messages(CFG, board())
    cfg = replace(CFG, mode="components")
    components = board_messages(cfg, board())
    before, after = handover_messages(cfg, {DEVICE_TOPIC: device[0].payload}, components)
    assert before == [DiscoveryMessage(DEVICE_TOPIC, MIGRATE_PAYLOAD)]
    assert after == [DiscoveryMessage(DEVICE_TOPIC, b"")]


def test_handover_only_migrates_entities_that_come_back() -> None:
    components = board_messages(replace(CFG, mode="components"), board())
    gone = "homeassistant/sensor/conduyt-bridge_greenhouse/ds_vanished/config"
    moved = "homeassistant/sensor/conduyt-bridge_greenhouse/ds_heater/config"  # now a switch
    found = {**{m.topic: m.payload for m in components}, gone: b"{}", moved: b"{}"}
    before, after = handover_messages(CFG, found, board_messages(CFG, board()))
    assert gone not in {m.topic for m in before} and moved not in {m.topic for m in before}
    assert {m.topic for m in after} == set(found)


def test_handover_same_mode_leftovers_are_only_emptied() -> None:
    cfg = replace(CFG, mode="components")
    new = board_messages(cfg, board())
    leftover = "homeassistant/number/conduyt-bridge_greenhouse/ds_old/config"
    found = {new[0].topic: new[0].payload, leftover: b"{}"}
    assert handover_messages(cfg, found, new) == ([], [DiscoveryMessage(leftover, b"")])
    assert handover_messages(CFG, {}, board_messages(CFG, board())) == ([], [])


def test_node_config_filters() -> None:
    assert node_config_filters("ha", "n1") == ["ha/device/n1/config", "ha/+/n1/+/config"]


def test_removal_ignores_already_removed() -> None:
    old = [DiscoveryMessage(DEVICE_TOPIC, b"")]
    assert removal_messages(CFG, old, []) == []


def test_clear_messages() -> None:
    cfg = replace(CFG, mode="components")
    old = [*bridge_messages(cfg), *board_messages(cfg, board()), *board_messages(cfg, board())]
    cleared = clear_messages(old)
    assert [m.topic for m in cleared] == list(dict.fromkeys(m.topic for m in old))
    assert all(m.payload == b"" and m.retain for m in cleared)
    assert_valid(cleared)
    assert clear_messages([]) == []


# --- templates behave as HA renders them ----------------------------------------------


def test_value_templates_render_like_plain_payloads() -> None:
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment()
    env.filters["to_json"] = json.dumps  # HA's filter of that name
    cmps = expected_cmps("json")
    heater = env.from_string(cmps["ds_heater"]["value_template"])
    assert heater.render(value_json={"value": True}) == cmps["ds_heater"]["state_on"]
    assert heater.render(value_json={"value": False}) == cmps["ds_heater"]["state_off"]
    temp = env.from_string(cmps["ds_temperature_celsius"]["value_template"])
    assert temp.render(value_json={"value": 21.5, "unit": "celsius"}) == "21.5"
    (message,) = board_messages(CFG, board(hello=hello((ds(0, "msg", T.STRING, writable=True),))))
    command = env.from_string(decode(message)["cmps"]["ds_msg"]["command_template"])
    assert json.loads(command.render(value="123")) == {"value": "123"}  # stays a string


# --- the checker must be able to fail --------------------------------------------------

GOOD_SENSOR: dict[str, Any] = {
    "name": "Temperature",
    "unique_id": "x_temp",
    "state_topic": "conduyt/x/ds/t",
    "unit_of_measurement": "°C",
    "device_class": "temperature",
    "state_class": "measurement",
    "dev": {"ids": ["x"], "name": "x"},
    "o": {"name": "conduyt-bridge"},
}
SENSOR_TOPIC = "homeassistant/sensor/x/temp/config"


def test_checker_accepts_the_good_sample() -> None:
    assert validate_discovery(SENSOR_TOPIC, GOOD_SENSOR) == []


@pytest.mark.parametrize(
    ("topic", "change", "needle"),
    [
        (SENSOR_TOPIC, {"colour": "red"}, "unknown key 'colour'"),
        (SENSOR_TOPIC, {"unit_of_measurement": "V"}, "not valid together with device class"),
        (SENSOR_TOPIC, {"device_class": "temprature"}, "not a known device class"),
        (SENSOR_TOPIC, {"state_class": "total"}, "not valid with device class"),
        (SENSOR_TOPIC, {"state_class": "sometimes"}, "state_class"),
        (SENSOR_TOPIC, {"state_topic": None}, "state_topic"),
        (SENSOR_TOPIC, {"unit_of_meas": "°C"}, "duplicates"),
        (SENSOR_TOPIC, {"availability_mode": "most"}, "availability_mode"),
        (SENSOR_TOPIC, {"availability": [{"payload_available": "up"}]}, "'topic' is required"),
        (SENSOR_TOPIC, {"entity_category": "config"}, "must be 'diagnostic' for sensors"),
        (SENSOR_TOPIC, {"expire_after": "30"}, "expire_after"),
        (SENSOR_TOPIC, {"p": "sensor"}, "only allowed in device-based"),
        (SENSOR_TOPIC, {"dev": {"name": "no ids"}}, "needs 'identifiers' or 'connections'"),
        (SENSOR_TOPIC, {"dev": {"ids": ["x"], "colour": "red"}}, "unknown device key"),
        (SENSOR_TOPIC, {"o": {"sw": "1.0"}}, "'name' is required"),
        (SENSOR_TOPIC, {"unique_id": None}, "needs 'unique_id'"),
        ("homeassistant/sensor/x.y/temp/config", {}, "outside [a-zA-Z0-9_-]"),
        ("homeassistant/sensors/x/temp/config", {}, "not an MQTT discovery platform"),
        ("homeassistant/sensor/x/temp/state", {}, "not <prefix>"),
    ],
)
def test_checker_rejects_bad_single_component(
    topic: str, change: dict[str, Any], needle: str
) -> None:
    payload = {k: v for k, v in {**GOOD_SENSOR, **change}.items() if v is not None}
    problems = validate_discovery(topic, payload)
    assert problems, f"checker accepted {change}"
    assert any(needle in p for p in problems), problems


@pytest.mark.parametrize(
    ("platform", "conf", "needle"),
    [
        ("number", {"state_topic": "s"}, "requires 'command_topic'"),
        ("switch", {"state_topic": "s"}, "requires 'command_topic'"),
        ("text", {"state_topic": "s"}, "requires 'command_topic'"),
        ("binary_sensor", {"payload_on": "true"}, "requires 'state_topic'"),
        ("number", {"command_topic": "c", "step": 0.0001}, "smallest step"),
        ("number", {"command_topic": "c", "min": 5, "max": 1}, "must be >= min"),
        ("number", {"command_topic": "c", "mode": "knob"}, "mode"),
        ("number", {"command_topic": "c/+"}, "wildcards"),
        (
            "number",
            {"command_topic": "c", "device_class": "temperature", "unit_of_measurement": "%"},
            "not valid together",
        ),
        ("number", {"command_topic": "c", "expire_after": 5}, "unknown key 'expire_after'"),
        ("text", {"command_topic": "c", "max": 1000}, "max <= 255"),
        ("text", {"command_topic": "c", "pattern": "("}, "regular expression"),
        ("switch", {"command_topic": "c", "device_class": "relay"}, "not a switch class"),
        (
            "binary_sensor",
            {"state_topic": "s", "device_class": "open"},
            "not a binary_sensor class",
        ),
        ("binary_sensor", {"state_topic": "s", "value_template": "{{ value_json.v"}, "unbalanced"),
    ],
)
def test_checker_rejects_bad_platform_options(
    platform: str, conf: dict[str, Any], needle: str
) -> None:
    problems = validate_discovery(
        f"homeassistant/{platform}/x/y/config", {"unique_id": "u", **conf}
    )
    assert any(needle in p for p in problems), problems


def test_checker_device_payload_rules() -> None:
    good = {
        "dev": {"ids": ["x"]},
        "o": {"name": "conduyt-bridge"},
        "cmps": {"t": {"p": "sensor", "unique_id": "u", "state_topic": "s"}},
    }
    topic = "homeassistant/device/x/config"
    assert validate_discovery(topic, good) == []
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in good.items() if k != "o"}, "requires 'origin'"),
        ({k: v for k, v in good.items() if k != "dev"}, "requires 'device'"),
        ({k: v for k, v in good.items() if k != "cmps"}, "requires 'components'"),
        ({**good, "cmps": {"t": {"unique_id": "u", "state_topic": "s"}}}, "'platform' (p)"),
        ({**good, "cmps": {"t": {"p": "sensor", "state_topic": "s"}}}, "requires 'unique_id'"),
        ({**good, "cmps": {"t": {"p": "number", "unique_id": "u"}}}, "requires 'command_topic'"),
        (
            {
                **good,
                "cmps": {
                    "t": {
                        "p": "sensor",
                        "unique_id": "u",
                        "state_topic": "s",
                        "dev": {"ids": ["y"]},
                    }
                },
            },
            "cannot be set per component",
        ),
        ({**good, "unit_of_measurement": "V"}, "not a shared option"),
    ]
    for payload, needle in cases:
        problems = validate_discovery(topic, payload)
        assert any(needle in p for p in problems), (needle, problems)
    # Shared root options count for the components; {"p": ...} alone is a removal.
    shared = {
        **good,
        "cmd_t": "c",
        "cmps": {"n": {"p": "number", "unique_id": "n"}, "gone": {"p": "switch"}},
    }
    assert validate_discovery(topic, shared) == []


def test_validate_message_handles_raw_payloads() -> None:
    assert validate_message(SENSOR_TOPIC, b"") == []
    assert validate_message(SENSOR_TOPIC, b"{not json") != []
    assert validate_message(SENSOR_TOPIC, b"[1, 2]") != []
    assert validate_message(SENSOR_TOPIC, json.dumps(GOOD_SENSOR).encode()) == []
