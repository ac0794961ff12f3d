"""The checks of one part of a discovery payload, each returning the problems it finds.

:func:`expand` replaces abbreviated keys by their long form; :func:`check_device`,
:func:`check_origin`, :func:`check_availability` and :func:`check_entity` (per platform:
sensor, binary_sensor, number, switch, text) check an expanded part; :func:`expand_tilde`
resolves the ``~`` topic prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .tables import (
    ABBREVIATIONS,
    AVAILABILITY_MODES,
    BINARY_SENSOR_DEVICE_CLASSES,
    BUTTON_DEVICE_CLASSES,
    CLIMATE_MODES,
    COMMON_KEYS,
    DEVICE_ABBREVIATIONS,
    DEVICE_KEYS,
    ENTITY_CATEGORIES,
    LIGHT_COLOR_MODES,
    NON_ENTITY_PLATFORMS,
    NUMBER_DEVICE_CLASSES,
    NUMBER_MIN_STEP,
    NUMBER_MODES,
    ORIGIN_ABBREVIATIONS,
    ORIGIN_KEYS,
    PLATFORM_KEYS,
    REQUIRED_KEYS,
    SENSOR_DEVICE_CLASSES,
    STATE_CLASSES,
    SWITCH_DEVICE_CLASSES,
    TEXT_MAX_LENGTH,
    TEXT_MODES,
)

__all__ = [
    "check_availability",
    "check_device",
    "check_entity",
    "check_origin",
    "expand",
    "expand_tilde",
]


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


def _expand_block(
    raw: Any, table: Mapping[str, str], known: frozenset[str], kind: str, where: str
) -> tuple[dict[str, Any] | None, list[str]]:
    """A nested block (device, origin, availability item) expanded with `table`, and its
    problems: not a mapping (then None), an abbreviation duplicated, keys outside `known`."""
    if not isinstance(raw, dict):
        return None, [f"{where}: must be a mapping"]
    doc, problems = expand(raw, table, where)
    problems += [f"{where}: unknown {kind}key {key!r}" for key in doc.keys() - known]
    return doc, problems


def _not_strings(doc: Mapping[str, Any], keys: Iterable[str], where: str) -> list[str]:
    """A problem for each of `keys` present in `doc` whose value is not a string."""
    return [
        f"{where}.{key}: must be a string"
        for key in keys
        if key in doc and not isinstance(doc[key], str)
    ]


_CONFIGURATION_URL = re.compile(r"https?://[^\s/]+(/\S*)?|homeassistant://\S*")
"""HA's device schema takes an http(s) URL with a host, or a `homeassistant://` path."""


def check_device(raw: Any, where: str) -> list[str]:
    device, problems = _expand_block(raw, DEVICE_ABBREVIATIONS, DEVICE_KEYS, "device ", where)
    if device is None:
        return problems
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
    problems += _not_strings(device, DEVICE_KEYS - {"identifiers", "connections"}, where)
    url = device.get("configuration_url")
    if isinstance(url, str) and not _CONFIGURATION_URL.fullmatch(url):
        problems.append(f"{where}.configuration_url: not an http(s) or homeassistant:// URL")
    return problems


def check_origin(raw: Any, where: str) -> list[str]:
    origin, problems = _expand_block(raw, ORIGIN_ABBREVIATIONS, ORIGIN_KEYS, "origin ", where)
    if origin is None:
        return problems
    if not isinstance(origin.get("name"), str) or not origin.get("name"):
        problems.append(f"{where}: 'name' is required")
    problems += _not_strings(origin, ("sw_version", "support_url"), where)
    return problems


_AVAILABILITY_ITEM_KEYS = frozenset(
    {"topic", "payload_available", "payload_not_available", "value_template"}
)
"""The keys of one item of an `availability` list."""


def check_availability(conf: Mapping[str, Any], where: str) -> list[str]:
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
            item, more = _expand_block(raw, ABBREVIATIONS, _AVAILABILITY_ITEM_KEYS, "", at)
            problems += more
            if item is None:
                continue
            if "topic" not in item:
                problems.append(f"{at}: 'topic' is required")
            else:
                problems += _check_topic_value(item["topic"], f"{at}.topic", False)
            problems += _not_strings(item, ("payload_available", "payload_not_available"), at)
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


def check_entity(
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
    problems += check_availability(conf, where)

    if "unique_id" in conf and (not isinstance(conf["unique_id"], str) or not conf["unique_id"]):
        problems.append(f"{where}.unique_id: must be a non-empty string")
    if "name" in conf and conf["name"] is not None and not isinstance(conf["name"], str):
        problems.append(f"{where}.name: must be a string or null")
    if "qos" in conf and conf["qos"] not in (0, 1, 2):
        problems.append(f"{where}.qos: must be 0, 1 or 2")
    for key in ("retain", "enabled_by_default", "optimistic", "force_update"):
        if key in conf and not isinstance(conf[key], bool):
            problems.append(f"{where}.{key}: must be a boolean")
    problems += _not_strings(
        conf, ("payload_on", "payload_off", "state_on", "state_off", "payload_reset"), where
    )
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
    elif platform in ("light", "button", "climate"):
        problems += _check_declared(platform, conf, where)
    return problems


def _check_declared(platform: str, conf: Mapping[str, Any], where: str) -> list[str]:
    """light (JSON schema only), button and climate options."""
    problems: list[str] = []
    if platform == "light":
        if conf.get("schema") != "json":
            problems.append(f"{where}.schema: this checker covers the JSON light schema only")
        modes = conf.get("supported_color_modes", [])
        if not isinstance(modes, list) or not set(modes) <= LIGHT_COLOR_MODES:
            problems.append(f"{where}.supported_color_modes: not in {sorted(LIGHT_COLOR_MODES)}")
        scale = conf.get("brightness_scale", 255)
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            problems.append(f"{where}.brightness_scale: must be a positive integer")
    elif platform == "button":
        dc = conf.get("device_class")
        if dc is not None and dc not in BUTTON_DEVICE_CLASSES:
            problems.append(f"{where}.device_class: {dc!r} is not a button class")
    else:
        modes = conf.get("modes", [])
        if not isinstance(modes, list) or not set(modes) <= CLIMATE_MODES:
            problems.append(f"{where}.modes: not in {sorted(CLIMATE_MODES)}")
        for key in ("mode_command_topic", "temperature_command_topic"):
            if key in conf:
                problems += _check_topic_value(conf[key], f"{where}.{key}", True)
        for key in [k for k in conf if k.endswith("_template")]:
            problems += _check_template(conf[key], f"{where}.{key}")
        if conf.get("temperature_unit", "C") not in ("C", "F"):
            problems.append(f"{where}.temperature_unit: must be C or F")
        lo, hi = conf.get("min_temp", 7), conf.get("max_temp", 35)
        if not (_is_number(lo) and _is_number(hi) and lo < hi):
            problems.append(f"{where}: min_temp must be a number below max_temp")
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


def expand_tilde(conf: dict[str, Any]) -> dict[str, Any]:
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
