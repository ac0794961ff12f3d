"""The HA entities and devices of discovery: one entity per datastream, a connectivity
entity per board and for the bridge, and the `dev` blocks that group them.

The mapping of a datastream type to an HA platform is described in
`conduyt_bridge.northbound.homeassistant.discovery` (`docs/topics.md` §8); number ranges
are the bridge's own write rule (`conduyt_bridge.protocol.values.write_range`). Nothing
here does IO: `conduyt_bridge.northbound.homeassistant.discovery` turns these into
messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conduyt_bridge.northbound.conduyt.topics import BridgeTopics, datastream_slugs
from conduyt_bridge.northbound.homeassistant.model import (
    OFFLINE,
    ONLINE,
    BoardDiscovery,
    DatastreamHints,
    DiscoveryConfig,
    board_identifiers,
    board_node_id,
    bridge_identifier,
    bridge_identifiers,
    bridge_node_id,
    sanitize_id,
)
from conduyt_bridge.northbound.homeassistant.shaping import datastream_problems, shape
from conduyt_bridge.northbound.homeassistant.units import classify_unit
from conduyt_bridge.protocol.constants import INTEGER_RANGES, DatastreamType
from conduyt_bridge.protocol.hello import DatastreamDescriptor
from conduyt_bridge.protocol.values import FLOAT_WRITE_LIMIT, write_range

__all__ = [
    "BOOL_TEMPLATE",
    "FLOAT_NUMBER_LIMIT",
    "FLOAT_NUMBER_STEP",
    "JSON_VALUE_TEMPLATE",
    "TEXT_MAX",
    "Entity",
    "availability",
    "board_device",
    "board_entities",
    "bridge_device",
    "bridge_entity",
    "firmware_identity",
    "pretty_name",
]

FLOAT_NUMBER_LIMIT = FLOAT_WRITE_LIMIT
"""`number` min/max (±) for FLOAT32 datastreams: exactly the bound the bridge enforces on
writes (`conduyt_bridge.protocol.values.write_range`), so HA never offers a value the bridge then
refuses, and never shows a stale value after "Invalid value for number"."""

FLOAT_NUMBER_STEP = 0.001
"""HA's smallest allowed `number` step (number.mqtt docs: "Smallest value 0.001"); MQTT
`number` has no "any" step."""

TEXT_MAX = 255
"""HA `text` entities hold at most 255 characters (text.mqtt docs)."""

_BASE64_PATTERN = r"^[A-Za-z0-9+/]*={0,2}$"


def availability(*topics: str) -> dict[str, Any]:
    """The `availability` of an entity available while every one of `topics` (the
    bridge's state, its board's status) says `online`."""
    # availability_mode "all": an entity is available only while the bridge AND its
    # board are online; "latest" (HA's default) would let a stale board `online` win
    # after the bridge's Will said `offline`.
    return {
        "availability": [
            {"topic": t, "payload_available": ONLINE, "payload_not_available": OFFLINE}
            for t in topics
        ],
        "availability_mode": "all",
    }


def pretty_name(name: str) -> str:
    """The default HA name of a datastream or declared entity: `room_temp` → `Room temp`."""
    text = name.replace("_", " ").strip() or "Datastream"
    return text[0].upper() + text[1:]


# value_json.value is a JSON boolean, which Jinja prints as True/False; map it to the
# same true/false text the plain format uses so payload_on/state_on stay one pair.
BOOL_TEMPLATE = "{{ 'true' if value_json.value else 'false' }}"
"""`value_template` of a boolean state in the `json` payload format."""

JSON_VALUE_TEMPLATE = "{{ value_json.value }}"
"""`value_template` of a scalar state in the `json` payload format."""
# HA text entities send what the user typed as is. Wrapping it as {"value": ...} keeps
# text that happens to parse as JSON (`123`, `true`, `{...}`) a string for the bridge's
# command parser, which would otherwise take it for a number or an object.
_TEXT_COMMAND_TEMPLATE = "{{ {'value': value} | to_json }}"


@dataclass(frozen=True, slots=True)
class Entity:
    """One HA entity: its component key, platform and discovery config."""

    key: str  # component id in `cmps`; object id of the per-component topic
    platform: str
    config: dict[str, Any]


def _datastream_entity(
    cfg: DiscoveryConfig,
    board: BoardDiscovery,
    key: str,
    slug: str,
    ds: DatastreamDescriptor,
) -> Entity | None:
    ds_type = ds.known_type
    if ds_type is None:
        return None  # an undefined type code: no value the bridge could publish
    topics = BridgeTopics(cfg.base_topic, cfg.gateway_id)
    dev_topics = topics.device(board.dev)
    hints = board.hints.get(ds.name, DatastreamHints())
    writable = ds.writable and not board.read_only
    is_json = cfg.payload_format == "json"

    conf: dict[str, Any] = {
        "name": hints.name or pretty_name(ds.name),
        "unique_id": f"{board_node_id(cfg, board.key)}_{key}",
        "state_topic": dev_topics.ds(slug),
    }
    if writable:
        conf["command_topic"] = dev_topics.ds_set(slug)
        # Commands are QoS 1 (`docs/topics.md` §8) and never retained: the bridge refuses
        # retained commands, so a retained /set from HA would only produce an error.
        conf["retain"] = False
    conf["qos"] = 1
    conf.update(availability(topics.state, dev_topics.status))

    if ds_type is DatastreamType.BOOL:
        platform = "switch" if writable else "binary_sensor"
        conf["payload_on"] = "true"
        conf["payload_off"] = "false"
        if writable:
            conf["state_on"] = "true"
            conf["state_off"] = "false"
        if is_json:
            conf["value_template"] = BOOL_TEMPLATE
    elif ds_type.is_numeric:
        units = classify_unit(ds.name, ds.unit)
        if units.unit is not None:
            conf["unit_of_measurement"] = units.unit
        if units.device_class is not None:
            conf["device_class"] = units.device_class
        if writable:
            platform = "number"
            conf.update(_number_range(ds))
            if not is_json:
                # The plain format prints a NaN float32 as `null`; make it "unknown"
                # rather than a "not a number" warning (JSON's None renders as HA's
                # default reset payload "None").
                conf["payload_reset"] = "null"
        else:
            platform = "sensor"
            conf["state_class"] = units.state_class
        if is_json:
            conf["value_template"] = JSON_VALUE_TEMPLATE
    else:  # STRING, BYTES: text (bytes as base64); never a unit, HA would expect numbers
        platform = "text" if writable else "sensor"
        if writable:
            conf["max"] = TEXT_MAX
            conf["command_template"] = _TEXT_COMMAND_TEMPLATE
            if ds_type is DatastreamType.BYTES:
                conf["pattern"] = _BASE64_PATTERN
        if ds_type is DatastreamType.BYTES:
            # Raw bytes rarely mean anything on a dashboard and their base64 can exceed
            # HA's 255-character state limit: present, but off until a user enables it.
            conf["enabled_by_default"] = False
        if is_json:
            conf["value_template"] = JSON_VALUE_TEMPLATE

    if hints.expire_after_s and platform in ("sensor", "binary_sensor"):
        conf["expire_after"] = int(hints.expire_after_s)
    # Options that do not fit the datastream are left out as a whole (the adapter logs
    # why: `shaping.datastream_problems`), so HA never gets a config it would refuse.
    if hints.shaped and not datastream_problems(ds, hints, board.read_only):
        shape(conf, ds, hints, board.read_only, is_json)
    return Entity(key, platform, conf)


def _number_range(ds: DatastreamDescriptor) -> dict[str, Any]:
    # HA's number defaults are min 1, max 100, step 1: always set all three, or a UINT8
    # could not be set to 0 and an INT16 not above 100. The bounds are the bridge's own
    # write rule, so an integer `%` is a 0..100 slider, not 0..255.
    bounds = write_range(ds)
    if bounds is None:  # only numeric types reach here
        raise ValueError(f"datastream '{ds.name}' is not numeric")
    lo, hi = bounds
    if ds.known_type in INTEGER_RANGES:
        # A slider is usable for the 256 values of an 8-bit type, not for 65536 or 2³².
        mode = "slider" if hi - lo <= 255 else "box"
        return {"min": int(lo), "max": int(hi), "step": 1, "mode": mode}
    return {"min": lo, "max": hi, "step": FLOAT_NUMBER_STEP, "mode": "box"}


def _board_status_entity(cfg: DiscoveryConfig, dev: str, ha_key: str) -> Entity:
    topics = BridgeTopics(cfg.base_topic, cfg.gateway_id)
    conf: dict[str, Any] = {
        "name": "Connectivity",
        "unique_id": f"{board_node_id(cfg, ha_key)}_status",
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "state_topic": topics.device(dev).status,
        "payload_on": ONLINE,
        "payload_off": OFFLINE,
        "qos": 1,
    }
    # Only the bridge's state gates this one: a board that is offline must show as
    # "disconnected", not vanish into "unavailable".
    conf.update(availability(topics.state))
    return Entity("status", "binary_sensor", conf)


def board_entities(cfg: DiscoveryConfig, board: BoardDiscovery) -> list[Entity]:
    entities = [_board_status_entity(cfg, board.dev, board.key)]
    seen = {"status"}
    for slug, ds in datastream_slugs(board.hello.datastreams).items():
        # Slugs are unique, but sanitising `.` to `_` could make two collide; the
        # datastream index (stable for one HELLO) breaks the tie.
        key = f"ds_{sanitize_id(slug)}"
        if key in seen:
            key = f"{key}_{ds.index}"
        seen.add(key)
        entity = _datastream_entity(cfg, board, key, slug, ds)
        if entity is not None:
            entities.append(entity)
    return entities


_VENDORS = {"conduyt": "Conduyt", "sim": "Conduyt simulator"}
"""Firmware name prefixes with a manufacturer name of their own."""


def firmware_identity(firmware_name: str) -> tuple[str, str, str | None]:
    """`(manufacturer, model, model_id)` of a board from the firmware name in its
    HELLO_RESP (≤ 16 bytes, `docs/protocol.md` §6.1), by the rule of
    `docs/home-assistant.md` ("Device names"): a `/…` suffix is a version and is dropped
    (HA gets the HELLO's version as `sw_version`); `vendor-product` splits at the first
    `-` into the manufacturer (`conduyt` → `Conduyt`, `sim` → `Conduyt simulator`, any
    other vendor as written) and the model; a name without `-` is the model of
    manufacturer `Conduyt`; an empty name is model `Conduyt board`. `model_id` is the
    firmware name as sent when the split changed it, else None.

    `conduyt-arduino/1.2` → `("Conduyt", "arduino", "conduyt-arduino/1.2")`;
    `thermostat` → `("Conduyt", "thermostat", None)`.
    """
    raw = firmware_name.strip()
    base = raw.split("/", 1)[0].strip()
    vendor, sep, product = base.partition("-")
    if sep and vendor and product:
        manufacturer, model = _VENDORS.get(vendor.lower(), vendor), product
    else:
        manufacturer, model = "Conduyt", base or "Conduyt board"
    return manufacturer, model, (raw if raw and raw != model else None)


def board_device(cfg: DiscoveryConfig, board: BoardDiscovery) -> dict[str, Any]:
    """The HA device of a board: named `[[devices]] name` (else its id), manufacturer and
    model from its firmware name (`firmware_identity`), its firmware version and, when it
    has one, its mcu_id as serial number; under the bridge device (`via_device`)."""
    hello = board.hello
    manufacturer, model, model_id = firmware_identity(hello.firmware_name)
    device: dict[str, Any] = {
        "identifiers": board_identifiers(cfg, board.key, board.hello.mcu_id_hex),
        "name": board.name or board.dev,
        "manufacturer": manufacturer,
        "model": model,
        "sw_version": hello.version_string,
        "via_device": bridge_identifier(cfg),
    }
    if model_id is not None:
        device["model_id"] = model_id
    if any(hello.mcu_id):
        device["serial_number"] = hello.mcu_id_hex
    return device


def bridge_device(cfg: DiscoveryConfig) -> dict[str, Any]:
    """The bridge's HA device: identifiers with the client id and the bridge id, named
    `Conduyt bridge {bridge id}` (`Conduyt bridge {client id}` when the bridge id is the
    default `conduyt-bridge`, `Conduyt bridge` when both are; `docs/fleet.md` §4)."""
    default = DiscoveryConfig.bridge_id
    label = cfg.gateway_id if cfg.gateway_id != default else cfg.bridge_id
    name = "Conduyt bridge" if label == default else f"Conduyt bridge {label}"
    device: dict[str, Any] = {
        "identifiers": bridge_identifiers(cfg),
        "name": name,
        "manufacturer": "Conduyt",
        "model": "conduyt-bridge",
        "sw_version": cfg.bridge_version,
    }
    if cfg.configuration_url is not None:
        # HA shows it as "Visit" on the device page: the bridge's console.
        device["configuration_url"] = cfg.configuration_url
    return device


def bridge_entity(cfg: DiscoveryConfig) -> Entity:
    conf: dict[str, Any] = {
        "name": "Connectivity",
        "unique_id": f"{bridge_node_id(cfg)}_connectivity",
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "state_topic": BridgeTopics(cfg.base_topic, cfg.gateway_id).state,
        "payload_on": ONLINE,
        "payload_off": OFFLINE,
        "qos": 1,
    }
    # No availability: the Will's `offline` is exactly the state to show ("disconnected").
    return Entity("connectivity", "binary_sensor", conf)
