"""A compact checker of Home Assistant MQTT discovery messages, for the test suite.

Installing Home Assistant to validate a few JSON documents is out of proportion, so this
module encodes the documented facts the bridge relies on, and `validate_discovery`
returns every violation it finds (an empty list means "HA would accept this"):

* the topic: `<prefix>/<component>/[<node_id>/]<object_id>/config`, ids from
  `[a-zA-Z0-9_-]`, component `device` or one of the MQTT discovery platforms
  (home-assistant.io `integrations/mqtt` "Discovery topic");
* abbreviations: expanded with HA's tables (entity keys, device keys, origin keys), an
  abbreviation and its long form may not both appear (`integrations/mqtt` "Supported
  abbreviations");
* device-based payloads (`{prefix}/device/...`): `device`, `origin` and `components`
  required at the root; each component needs `platform` and, for entities, `unique_id`;
  `{"p": ...}` alone is the documented removal of one component; device/origin cannot
  be set per component;
* per platform (sensor, binary_sensor, number, switch, text): the known keys (anything
  else is reported, stricter than HA, which ignores unknown keys silently: a typo would
  otherwise go unnoticed), the required keys (`state_topic` for sensors,
  `command_topic` for number/switch/text), the option values documented on
  `integrations/<platform>.mqtt` and in HA's sensor constants (device classes and their
  units, state classes, number step >= 0.001, text max <= 255, availability modes);
* the device block needs `identifiers` or `connections`; the origin block needs `name`.

Our policy on top of HA (reported the same way): an entity with a device must have a
`unique_id` (HA ignores the device otherwise), command topics carry no wildcards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# --- platforms -----------------------------------------------------------------------

PLATFORMS = frozenset(
    {
        "alarm_control_panel",
        "binary_sensor",
        "button",
        "camera",
        "climate",
        "cover",
        "device_automation",
        "device_tracker",
        "event",
        "fan",
        "humidifier",
        "image",
        "lawn_mower",
        "light",
        "lock",
        "notify",
        "number",
        "scene",
        "select",
        "sensor",
        "siren",
        "switch",
        "tag",
        "text",
        "update",
        "vacuum",
        "valve",
        "water_heater",
    }
)
"""Components MQTT discovery can configure (integrations/mqtt, "Configuration of MQTT
components via MQTT discovery")."""

NON_ENTITY_PLATFORMS = frozenset({"device_automation", "tag"})
"""Discoverable items that are not entities and so take no `unique_id`."""

# --- abbreviations (HA's tables, restricted to the keys of the platforms checked) -----

ABBREVIATIONS: dict[str, str] = {
    "avty": "availability",
    "avty_mode": "availability_mode",
    "avty_t": "availability_topic",
    "avty_tpl": "availability_template",
    "cmd_t": "command_topic",
    "cmd_tpl": "command_template",
    "cmps": "components",
    "def_ent_id": "default_entity_id",
    "dev": "device",
    "dev_cla": "device_class",
    "dsp_prc": "display_precision",
    "e": "encoding",
    "en": "enabled_by_default",
    "ent_cat": "entity_category",
    "ent_pic": "entity_picture",
    "exp_aft": "expire_after",
    "frc_upd": "force_update",
    "ic": "icon",
    "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template",
    "lrst_val_tpl": "last_reset_value_template",
    "max": "max",
    "min": "min",
    "mode": "mode",
    "name": "name",
    "o": "origin",
    "obj_id": "object_id",
    "off_dly": "off_delay",
    "ops": "options",
    "opt": "optimistic",
    "p": "platform",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "pl_off": "payload_off",
    "pl_on": "payload_on",
    "pl_rst": "payload_reset",
    "ptrn": "pattern",
    "ret": "retain",
    "stat_cla": "state_class",
    "stat_off": "state_off",
    "stat_on": "state_on",
    "stat_t": "state_topic",
    "step": "step",
    "sug_dsp_prc": "suggested_display_precision",
    "t": "topic",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
}

DEVICE_ABBREVIATIONS: dict[str, str] = {
    "cu": "configuration_url",
    "cns": "connections",
    "ids": "identifiers",
    "name": "name",
    "mf": "manufacturer",
    "mdl": "model",
    "mdl_id": "model_id",
    "hw": "hw_version",
    "sw": "sw_version",
    "sa": "suggested_area",
    "sn": "serial_number",
}

ORIGIN_ABBREVIATIONS: dict[str, str] = {"name": "name", "sw": "sw_version", "url": "support_url"}

DEVICE_KEYS = frozenset(DEVICE_ABBREVIATIONS.values()) | {"via_device"}
ORIGIN_KEYS = frozenset(ORIGIN_ABBREVIATIONS.values())

# --- keys per platform ---------------------------------------------------------------

COMMON_KEYS = frozenset(
    {
        "availability",
        "availability_mode",
        "availability_template",
        "availability_topic",
        "payload_available",
        "payload_not_available",
        "device",
        "origin",
        "enabled_by_default",
        "encoding",
        "entity_category",
        "entity_picture",
        "icon",
        "json_attributes_template",
        "json_attributes_topic",
        "name",
        "object_id",
        "default_entity_id",
        "qos",
        "unique_id",
        "~",
    }
)

PLATFORM_KEYS: dict[str, frozenset[str]] = {
    "sensor": frozenset(
        {
            "device_class",
            "expire_after",
            "force_update",
            "last_reset_value_template",
            "options",
            "state_class",
            "state_topic",
            "suggested_display_precision",
            "unit_of_measurement",
            "value_template",
        }
    ),
    "binary_sensor": frozenset(
        {
            "device_class",
            "expire_after",
            "force_update",
            "off_delay",
            "payload_off",
            "payload_on",
            "state_topic",
            "value_template",
        }
    ),
    "number": frozenset(
        {
            "command_template",
            "command_topic",
            "device_class",
            "max",
            "min",
            "mode",
            "optimistic",
            "payload_reset",
            "retain",
            "state_topic",
            "step",
            "unit_of_measurement",
            "value_template",
        }
    ),
    "switch": frozenset(
        {
            "command_template",
            "command_topic",
            "device_class",
            "optimistic",
            "payload_off",
            "payload_on",
            "retain",
            "state_off",
            "state_on",
            "state_topic",
            "value_template",
        }
    ),
    "text": frozenset(
        {
            "command_template",
            "command_topic",
            "max",
            "min",
            "mode",
            "pattern",
            "retain",
            "state_topic",
            "value_template",
        }
    ),
}

REQUIRED_KEYS: dict[str, frozenset[str]] = {
    "sensor": frozenset({"state_topic"}),
    "binary_sensor": frozenset({"state_topic"}),
    "number": frozenset({"command_topic"}),
    "switch": frozenset({"command_topic"}),
    "text": frozenset({"command_topic"}),
}

DEVICE_PAYLOAD_SHARED_KEYS = frozenset(
    {
        "availability",
        "availability_mode",
        "availability_template",
        "availability_topic",
        "payload_available",
        "payload_not_available",
        "command_topic",
        "state_topic",
        "qos",
        "encoding",
        "~",
    }
)
"""Options a device-based payload may set at its root for all components."""

# --- option values -------------------------------------------------------------------

AVAILABILITY_MODES = frozenset({"all", "any", "latest"})
ENTITY_CATEGORIES = frozenset({"config", "diagnostic"})
STATE_CLASSES = frozenset({"measurement", "measurement_angle", "total", "total_increasing"})
NUMBER_MODES = frozenset({"auto", "box", "slider"})
TEXT_MODES = frozenset({"text", "password"})
NUMBER_MIN_STEP = 1e-3
TEXT_MAX_LENGTH = 255

_ALL_STATE = STATE_CLASSES
_M = frozenset({"measurement"})
_TOTALS = frozenset({"total", "total_increasing"})
_UG = frozenset({"µg/m³"})

# SensorDeviceClass → (allowed units, allowed state classes), after HA's DEVICE_CLASS_UNITS
# and DEVICE_CLASS_STATE_CLASSES (homeassistant/components/sensor/const.py). None in the
# unit set means "no unit_of_measurement".
SENSOR_DEVICE_CLASSES: dict[str, tuple[frozenset[str | None], frozenset[str]]] = {
    "apparent_power": (frozenset({"VA"}), _M),
    "aqi": (frozenset({None}), _M),
    "atmospheric_pressure": (
        frozenset({"Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"}),
        _M,
    ),
    "battery": (frozenset({"%"}), _M),
    "carbon_dioxide": (frozenset({"ppm"}), _M),
    "carbon_monoxide": (frozenset({"ppm"}), _M),
    "conductivity": (frozenset({"S/cm", "mS/cm", "µS/cm"}), _M),
    "current": (frozenset({"A", "mA"}), _M),
    "date": (frozenset({None}), frozenset()),
    "distance": (frozenset({"mm", "cm", "m", "km", "in", "ft", "yd", "mi"}), _ALL_STATE),
    "duration": (frozenset({"d", "h", "min", "s", "ms", "µs"}), _ALL_STATE),
    "energy": (
        frozenset(
            {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh"}
            | {"cal", "kcal", "Mcal", "Gcal"}
        ),
        _TOTALS,
    ),
    "enum": (frozenset({None}), frozenset()),
    "frequency": (frozenset({"Hz", "kHz", "MHz", "GHz"}), _M),
    "humidity": (frozenset({"%"}), _M),
    "illuminance": (frozenset({"lx"}), _M),
    "irradiance": (frozenset({"W/m²", "BTU/(h⋅ft²)"}), _M),
    "moisture": (frozenset({"%"}), _M),
    "nitrogen_dioxide": (_UG, _M),
    "nitrogen_monoxide": (_UG, _M),
    "nitrous_oxide": (_UG, _M),
    "ozone": (_UG, _M),
    "ph": (frozenset({None}), _M),
    "pm1": (_UG, _M),
    "pm10": (_UG, _M),
    "pm25": (_UG, _M),
    "power": (frozenset({"mW", "W", "kW", "MW", "GW", "TW"}), _M),
    "power_factor": (frozenset({"%", None}), _M),
    "pressure": (
        frozenset({"Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"}),
        _M,
    ),
    "signal_strength": (frozenset({"dB", "dBm"}), _M),
    "sound_pressure": (frozenset({"dB", "dBA"}), _M),
    "speed": (
        frozenset({"ft/s", "in/d", "in/h", "in/s", "km/h", "kn", "m/s", "mph", "mm/d"})
        | {"mm/h", "mm/s", "Beaufort"},
        _M,
    ),
    "sulphur_dioxide": (_UG, _M),
    "temperature": (frozenset({"°C", "°F", "K"}), _M),
    "timestamp": (frozenset({None}), frozenset()),
    "volatile_organic_compounds": (_UG, _M),
    "volatile_organic_compounds_parts": (frozenset({"ppb", "ppm"}), _M),
    "voltage": (frozenset({"V", "mV", "µV", "kV", "MV"}), _M),
    "volume_flow_rate": (frozenset({"m³/h", "ft³/min", "L/min", "gal/min", "mL/s"}), _M),
    "weight": (
        frozenset({"µg", "mg", "g", "kg", "oz", "lb", "st"}),
        frozenset({"measurement", "total", "total_increasing"}),
    ),
    "wind_direction": (frozenset({"°"}), frozenset({"measurement_angle"})),
    "wind_speed": (frozenset({"Beaufort", "ft/s", "km/h", "kn", "m/s", "mph"}), _M),
}
NON_NUMERIC_SENSOR_CLASSES = frozenset({"date", "enum", "timestamp"})

# Number device classes mirror the numeric sensor classes (HA keeps them aligned).
NUMBER_DEVICE_CLASSES = {
    k: v for k, v in SENSOR_DEVICE_CLASSES.items() if k not in NON_NUMERIC_SENSOR_CLASSES
}

BINARY_SENSOR_DEVICE_CLASSES = frozenset(
    {
        "battery",
        "battery_charging",
        "carbon_monoxide",
        "cold",
        "connectivity",
        "door",
        "garage_door",
        "gas",
        "heat",
        "light",
        "lock",
        "moisture",
        "motion",
        "moving",
        "occupancy",
        "opening",
        "plug",
        "power",
        "presence",
        "problem",
        "running",
        "safety",
        "smoke",
        "sound",
        "tamper",
        "update",
        "vibration",
        "window",
    }
)
SWITCH_DEVICE_CLASSES = frozenset({"outlet", "switch"})

_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


# --- helpers -------------------------------------------------------------------------


def expand(
    doc: Mapping[str, Any], table: Mapping[str, str], where: str
) -> tuple[dict[str, Any], list[str]]:
    """`doc` with abbreviated keys replaced by their long form, and the problems found
    (an abbreviation given together with its long form)."""
    out: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in doc.items():
        full = table.get(key, key)
        if full in out:
            problems.append(f"{where}: {key!r} duplicates {full!r}")
        out[full] = value
    return out, problems


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_topic_value(value: Any, where: str, publish: bool) -> list[str]:
    if not isinstance(value, str) or not value:
        return [f"{where}: must be a non-empty topic string"]
    if publish and ("+" in value or "#" in value):
        return [f"{where}: a publish topic cannot contain wildcards: {value!r}"]
    return []


def _check_template(value: Any, where: str) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        return [f"{where}: must be a template string"]
    if value.count("{{") != value.count("}}") or value.count("{%") != value.count("%}"):
        return [f"{where}: unbalanced template delimiters in {value!r}"]
    return []


def _check_device(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, dict):
        return [f"{where}: must be a mapping"]
    device, problems = expand(raw, DEVICE_ABBREVIATIONS, where)
    for key in device.keys() - DEVICE_KEYS:
        problems.append(f"{where}: unknown device key {key!r}")
    identifiers = device.get("identifiers")
    connections = device.get("connections")
    if not identifiers and not connections:
        problems.append(f"{where}: needs 'identifiers' or 'connections'")
    if identifiers is not None:
        ids = identifiers if isinstance(identifiers, list) else [identifiers]
        if not all(isinstance(i, str) and i for i in ids):
            problems.append(f"{where}.identifiers: must be non-empty strings")
    if connections is not None and not (
        isinstance(connections, list)
        and all(
            isinstance(c, list) and len(c) == 2 and all(isinstance(x, str) for x in c)
            for c in connections
        )
    ):
        problems.append(f"{where}.connections: must be a list of [type, id] string pairs")
    for key in DEVICE_KEYS - {"identifiers", "connections"}:
        if key in device and not isinstance(device[key], str):
            problems.append(f"{where}.{key}: must be a string")
    return problems


def _check_origin(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, dict):
        return [f"{where}: must be a mapping"]
    origin, problems = expand(raw, ORIGIN_ABBREVIATIONS, where)
    for key in origin.keys() - ORIGIN_KEYS:
        problems.append(f"{where}: unknown origin key {key!r}")
    if not isinstance(origin.get("name"), str) or not origin.get("name"):
        problems.append(f"{where}: 'name' is required")
    for key in ("sw_version", "support_url"):
        if key in origin and not isinstance(origin[key], str):
            problems.append(f"{where}.{key}: must be a string")
    return problems


def _check_availability(conf: Mapping[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    if "availability" in conf and "availability_topic" in conf:
        problems.append(f"{where}: 'availability' and 'availability_topic' are exclusive")
    if "availability_topic" in conf:
        problems += _check_topic_value(
            conf["availability_topic"], f"{where}.availability_topic", False
        )
    if "availability" in conf:
        items = conf["availability"]
        items = items if isinstance(items, list) else [items]
        for i, raw in enumerate(items):
            at = f"{where}.availability[{i}]"
            if not isinstance(raw, dict):
                problems.append(f"{at}: must be a mapping")
                continue
            item, more = expand(raw, ABBREVIATIONS, at)
            problems += more
            for key in item.keys() - {
                "topic",
                "payload_available",
                "payload_not_available",
                "value_template",
            }:
                problems.append(f"{at}: unknown key {key!r}")
            if "topic" not in item:
                problems.append(f"{at}: 'topic' is required")
            else:
                problems += _check_topic_value(item["topic"], f"{at}.topic", False)
            for key in ("payload_available", "payload_not_available"):
                if key in item and not isinstance(item[key], str):
                    problems.append(f"{at}.{key}: must be a string")
    mode = conf.get("availability_mode")
    if mode is not None and mode not in AVAILABILITY_MODES:
        problems.append(f"{where}.availability_mode: {mode!r} not in {sorted(AVAILABILITY_MODES)}")
    return problems


def _check_unit(
    device_class: Any,
    unit: Any,
    table: Mapping[str, tuple[frozenset[str | None], frozenset[str]]],
    where: str,
) -> list[str]:
    if device_class is None:
        return []
    if device_class not in table:
        return [f"{where}.device_class: {device_class!r} is not a known device class"]
    units, _ = table[device_class]
    if unit not in units:
        return [
            f"{where}: unit {unit!r} is not valid together with device class "
            f"{device_class!r} (allowed: {sorted(map(str, units))})"
        ]
    return []


def _check_entity(
    platform: str, conf: Mapping[str, Any], where: str, device_payload: bool
) -> list[str]:
    """Problems of one expanded entity config of `platform`."""
    problems: list[str] = []
    if platform not in PLATFORM_KEYS:
        return [f"{where}: platform {platform!r} is not covered by this checker"]
    allowed = COMMON_KEYS | PLATFORM_KEYS[platform] | ({"platform"} if device_payload else set())
    for key in sorted(conf.keys() - allowed):
        problems.append(f"{where}: unknown key {key!r} for platform {platform!r}")
    for key in sorted(REQUIRED_KEYS[platform] - conf.keys()):
        problems.append(f"{where}: {platform} requires {key!r}")
    for key in ("command_topic",):
        if key in conf:
            problems += _check_topic_value(conf[key], f"{where}.{key}", True)
    for key in ("state_topic", "json_attributes_topic"):
        if key in conf:
            problems += _check_topic_value(conf[key], f"{where}.{key}", False)
    for key in (
        "value_template",
        "command_template",
        "json_attributes_template",
        "last_reset_value_template",
    ):
        if key in conf:
            problems += _check_template(conf[key], f"{where}.{key}")
    problems += _check_availability(conf, where)

    if "unique_id" in conf and (not isinstance(conf["unique_id"], str) or not conf["unique_id"]):
        problems.append(f"{where}.unique_id: must be a non-empty string")
    if "name" in conf and conf["name"] is not None and not isinstance(conf["name"], str):
        problems.append(f"{where}.name: must be a string or null")
    if "qos" in conf and conf["qos"] not in (0, 1, 2):
        problems.append(f"{where}.qos: must be 0, 1 or 2")
    for key in ("retain", "enabled_by_default", "optimistic", "force_update"):
        if key in conf and not isinstance(conf[key], bool):
            problems.append(f"{where}.{key}: must be a boolean")
    for key in ("payload_on", "payload_off", "state_on", "state_off", "payload_reset"):
        if key in conf and not isinstance(conf[key], str):
            problems.append(f"{where}.{key}: must be a string")
    for key in ("expire_after", "off_delay"):
        if key in conf and (
            not isinstance(conf[key], int) or isinstance(conf[key], bool) or conf[key] < 0
        ):
            problems.append(f"{where}.{key}: must be a non-negative integer (seconds)")
    category = conf.get("entity_category")
    if category is not None:
        if category not in ENTITY_CATEGORIES:
            problems.append(
                f"{where}.entity_category: {category!r} not in {sorted(ENTITY_CATEGORIES)}"
            )
        elif platform in ("sensor", "binary_sensor") and category != "diagnostic":
            problems.append(f"{where}.entity_category: must be 'diagnostic' for sensors")
    # (device payloads report a missing unique_id themselves, as HA's own requirement)
    needs_id = not device_payload and platform not in NON_ENTITY_PLATFORMS
    if needs_id and "device" in conf and "unique_id" not in conf:
        problems.append(f"{where}: an entity with a device needs 'unique_id'")

    device_class = conf.get("device_class")
    unit = conf.get("unit_of_measurement")
    if platform == "sensor":
        problems += _check_sensor(conf, where)
    elif platform == "number":
        problems += _check_unit(device_class, unit, NUMBER_DEVICE_CLASSES, where)
        problems += _check_number(conf, where)
    elif platform == "binary_sensor":
        if device_class is not None and device_class not in BINARY_SENSOR_DEVICE_CLASSES:
            problems.append(f"{where}.device_class: {device_class!r} is not a binary_sensor class")
    elif platform == "switch":
        if device_class is not None and device_class not in SWITCH_DEVICE_CLASSES:
            problems.append(f"{where}.device_class: {device_class!r} is not a switch class")
    elif platform == "text":
        problems += _check_text(conf, where)
    return problems


def _check_sensor(conf: Mapping[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    device_class = conf.get("device_class")
    unit = conf.get("unit_of_measurement")
    state_class = conf.get("state_class")
    problems += _check_unit(device_class, unit, SENSOR_DEVICE_CLASSES, where)
    if state_class is not None and state_class not in STATE_CLASSES:
        problems.append(f"{where}.state_class: {state_class!r} not in {sorted(STATE_CLASSES)}")
    elif state_class is not None and device_class in SENSOR_DEVICE_CLASSES:
        allowed = SENSOR_DEVICE_CLASSES[device_class][1]
        if state_class not in allowed:
            problems.append(
                f"{where}: state class {state_class!r} is not valid with device class "
                f"{device_class!r} (allowed: {sorted(allowed)})"
            )
    if "options" in conf:
        if device_class != "enum":
            problems.append(f"{where}.options: needs device_class 'enum'")
        if state_class is not None or unit is not None:
            problems.append(f"{where}.options: cannot be used with state_class or unit")
    if "last_reset_value_template" in conf and state_class != "total":
        problems.append(f"{where}.last_reset_value_template: needs state_class 'total'")
    return problems


def _check_number(conf: Mapping[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    # HA's defaults (min 1, max 100, step 1) are what applies when a key is missing.
    lo, hi, step = conf.get("min", 1), conf.get("max", 100), conf.get("step", 1)
    for key, value in (("min", lo), ("max", hi), ("step", step)):
        if not _is_number(value):
            problems.append(f"{where}.{key}: must be a number")
    if problems:
        return problems
    if step < NUMBER_MIN_STEP:
        problems.append(f"{where}.step: {step} is below HA's smallest step {NUMBER_MIN_STEP}")
    if lo > hi:
        problems.append(f"{where}: max ({hi}) must be >= min ({lo})")
    mode = conf.get("mode")
    if mode is not None and mode not in NUMBER_MODES:
        problems.append(f"{where}.mode: {mode!r} not in {sorted(NUMBER_MODES)}")
    return problems


def _check_text(conf: Mapping[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    lo, hi = conf.get("min", 0), conf.get("max", TEXT_MAX_LENGTH)
    if (
        not isinstance(lo, int)
        or isinstance(lo, bool)
        or not isinstance(hi, int)
        or isinstance(hi, bool)
    ):
        return [f"{where}: text min/max must be integers"]
    if not 0 <= lo <= hi <= TEXT_MAX_LENGTH:
        problems.append(f"{where}: text needs 0 <= min <= max <= {TEXT_MAX_LENGTH}, got {lo}..{hi}")
    mode = conf.get("mode")
    if mode is not None and mode not in TEXT_MODES:
        problems.append(f"{where}.mode: {mode!r} not in {sorted(TEXT_MODES)}")
    if "pattern" in conf:
        try:
            re.compile(conf["pattern"])
        except (re.error, TypeError):
            problems.append(f"{where}.pattern: not a valid regular expression")
    return problems


def _expand_tilde(conf: dict[str, Any]) -> dict[str, Any]:
    base = conf.get("~")
    if not isinstance(base, str):
        return conf
    out = dict(conf)
    for key, value in conf.items():
        if key.endswith("_topic") and isinstance(value, str):
            if value.startswith("~"):
                out[key] = base + value[1:]
            elif value.endswith("~"):
                out[key] = value[:-1] + base
    return out


# --- entry points --------------------------------------------------------------------


def parse_topic(topic: str, prefix: str = "homeassistant") -> tuple[str, str | None, str] | None:
    """`(component, node_id, object_id)` of a discovery config topic, or None."""
    if not topic.startswith(prefix + "/") or not topic.endswith("/config"):
        return None
    parts = topic[len(prefix) + 1 : -len("/config")].split("/")
    if len(parts) == 2:
        return parts[0], None, parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return None


def validate_discovery(
    topic: str, payload: Mapping[str, Any], prefix: str = "homeassistant"
) -> list[str]:
    """Every problem HA (or our stricter policy) would have with `payload` on `topic`."""
    parsed = parse_topic(topic, prefix)
    if parsed is None:
        return [f"{topic}: not <prefix>/<component>/[<node_id>/]<object_id>/config"]
    component, node, obj = parsed
    problems: list[str] = []
    for label, value in (("node_id", node), ("object_id", obj)):
        if value is not None and not _ID.match(value):
            problems.append(f"{topic}: {label} {value!r} has characters outside [a-zA-Z0-9_-]")
    if not isinstance(payload, Mapping):
        return [*problems, f"{topic}: payload must be a JSON object"]
    root, more = expand(payload, ABBREVIATIONS, "root")
    problems += more
    root = _expand_tilde(root)

    if component == "device":
        for key in ("device", "origin", "components"):
            if key not in root:
                problems.append(f"root: device-based discovery requires {key!r}")
        allowed = {"device", "origin", "components"} | DEVICE_PAYLOAD_SHARED_KEYS
        for key in sorted(root.keys() - allowed):
            problems.append(f"root: {key!r} is not a shared option of a device payload")
        if "device" in root:
            problems += _check_device(root["device"], "device")
        if "origin" in root:
            problems += _check_origin(root["origin"], "origin")
        problems += _check_availability(root, "root")
        shared = {k: v for k, v in root.items() if k in DEVICE_PAYLOAD_SHARED_KEYS and k != "~"}
        cmps = root.get("components")
        if cmps is not None and (not isinstance(cmps, dict) or not cmps):
            problems.append("components: must be a non-empty mapping")
            cmps = None
        for cid, raw in (cmps or {}).items():
            where = f"cmps.{cid}"
            if not _ID.match(cid):
                problems.append(f"{where}: component id has characters outside [a-zA-Z0-9_-]")
            if not isinstance(raw, dict):
                problems.append(f"{where}: must be a mapping")
                continue
            conf, more = expand(raw, ABBREVIATIONS, where)
            problems += more
            conf = _expand_tilde(conf)
            platform = conf.get("platform")
            if platform not in PLATFORMS:
                problems.append(
                    f"{where}: 'platform' (p) must be one of the MQTT platforms, got {platform!r}"
                )
                continue
            if len(conf) == 1:
                continue  # {"p": ...}: the documented removal of one component
            for key in ("device", "origin"):
                if key in conf:
                    problems.append(f"{where}: {key!r} cannot be set per component")
            if platform not in NON_ENTITY_PLATFORMS and "unique_id" not in conf:
                problems.append(f"{where}: device-based discovery requires 'unique_id'")
            problems += _check_entity(
                platform, {**shared, **conf, "device": root.get("device")}, where, True
            )
        return problems

    if component not in PLATFORMS:
        return [*problems, f"{topic}: {component!r} is not an MQTT discovery platform"]
    if "platform" in root:
        problems.append("root: 'platform' is only allowed in device-based discovery payloads")
    if "device" in root:
        problems += _check_device(root["device"], "device")
    if "origin" in root:
        problems += _check_origin(root["origin"], "origin")
    problems += _check_entity(component, root, "root", False)
    return problems


def validate_message(topic: str, payload: bytes, prefix: str = "homeassistant") -> list[str]:
    """`validate_discovery` for a raw MQTT payload; `b""` (removal) and HA's
    `{"migrate_discovery": true}` hand-over are valid on any config topic."""
    if payload == b"":
        parsed = parse_topic(topic, prefix)
        return [] if parsed is not None else [f"{topic}: not a discovery config topic"]
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return [f"{topic}: payload is not UTF-8 JSON: {exc}"]
    if not isinstance(doc, dict):
        return [f"{topic}: payload must be a JSON object"]
    if doc == {"migrate_discovery": True}:
        # HA's hand-over between discovery forms: not a config, valid on any config topic.
        parsed = parse_topic(topic, prefix)
        return [] if parsed is not None else [f"{topic}: not a discovery config topic"]
    return validate_discovery(topic, doc, prefix)
