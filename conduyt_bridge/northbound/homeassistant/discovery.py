"""Home Assistant MQTT discovery payloads (pure): `docs/topics.md` §8.

Every board becomes one HA device; each datastream becomes one entity of it, and the
bridge announces itself as a device too (the boards hang below it through `via_device`).
Two publishing styles, chosen by `DiscoveryConfig.mode`:

* `"device"` (HA 2024.11 and later): one retained message per board on
  `{prefix}/device/{node}/config` holding `dev`, `o` (origin) and `cmps`.
* `"components"` (older HA): the same entities, one retained message per entity on
  `{prefix}/{platform}/{node}/{object}/config`.

Mapping of a datastream (`DatastreamType`, writable flag) to an HA platform:

* BOOL: `binary_sensor` (read-only) / `switch` (writable);
* integers and FLOAT32: `sensor` (read-only, with unit, device_class and state_class
  from `classify_unit`) / `number` (writable; min/max are exactly what the bridge accepts,
  `conduyt_bridge.protocol.values.write_range`: the type's range, 0..100 for an integer `%`,
  ±1e9 for FLOAT32);
* STRING and BYTES (base64 text): `sensor` (read-only) / `text` (writable);
* a type code the protocol does not define: no entity.

Boards configured `read_only` get read-only entities only: the bridge would refuse every
write anyway, and a control in HA that can never work is worse than none.

Nothing here does IO: the functions return `DiscoveryMessage`s that the MQTT client
publishes (retained). Removal is part of the contract: `removal_messages` computes what
makes vanished entities disappear, `clear_messages` what removes everything, and
`handover_messages` what moves a node between the two styles with HA's
`migrate_discovery` so entity ids, areas and renames survive (`docs/home-assistant.md`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from conduyt_bridge.northbound.conduyt.topics import BridgeTopics, datastream_slugs
from conduyt_bridge.protocol.constants import INTEGER_RANGES, DatastreamType
from conduyt_bridge.protocol.hello import DatastreamDescriptor, HelloResp
from conduyt_bridge.protocol.values import FLOAT_WRITE_LIMIT, write_range
from conduyt_bridge.version import __version__

DiscoveryMode = Literal["device", "components"]
PayloadFormat = Literal["plain", "json"]

ONLINE = "online"
OFFLINE = "offline"

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
_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]")
_NAME_WORDS = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class DiscoveryConfig:
    """How and where discovery is published.

    `bridge_id` is the MQTT client id: it is unique per bridge instance, so it prefixes
    every node and unique id and two bridges on one broker never collide.
    """

    prefix: str = "homeassistant"
    mode: DiscoveryMode = "device"
    base_topic: str = "conduyt"
    bridge_id: str = "conduyt-bridge"
    bridge_version: str = __version__
    payload_format: PayloadFormat = "plain"
    support_url: str = "https://github.com/conduyt/conduyt-bridge"


@dataclass(frozen=True)
class DatastreamHints:
    """Per-datastream discovery overrides (config `[devices.datastreams.<name>]`).

    `name` replaces the friendly entity name; `expire_after_s` makes HA mark the value
    unavailable when no update came for that long (sensors and binary sensors only: HA's
    number, switch and text platforms have no `expire_after`).
    """

    name: str | None = None
    expire_after_s: int | None = None


@dataclass(frozen=True)
class BoardDiscovery:
    """One board as discovery needs it: its device id (topic segment), HELLO and options.

    `hints` is keyed by datastream NAME (as in the config file), not by slug.
    """

    dev: str
    hello: HelloResp
    port: str
    read_only: bool = False
    hints: Mapping[str, DatastreamHints] = field(default_factory=dict)


@dataclass(frozen=True)
class DiscoveryMessage:
    """A message to publish: `payload` is UTF-8 JSON, or `b""` meaning "remove"."""

    topic: str
    payload: bytes
    retain: bool = True


@dataclass(frozen=True, slots=True)
class UnitClass:
    """What HA gets for a numeric datastream's unit: unit_of_measurement (None: omit),
    device_class (None: omit) and state_class."""

    unit: str | None
    device_class: str | None = None
    state_class: str = "measurement"


# Unit text from HELLO, lower-cased, → (HA unit, device_class, state_class).
# HA rejects a discovery config whose unit is not one of the device class's units
# ("The unit of measurement ... is not valid together with device class ..."), so every
# unit here is spelled exactly as HA's DEVICE_CLASS_UNITS spells it (`°C`, `µg/m³`, `L`).
# Lower-casing merges milli and mega (`mW`/`MW`): on a microcontroller milli is the
# plausible one. Volumes (L, mL) get no device class: HA's `volume` class only allows
# total/total_increasing, and a board reporting litres is far more often a tank level
# than a meter; rpm has no HA device class at all; `g` is left alone because on a board
# it is as likely an accelerometer's g-force as a weight in grams.
_M = "measurement"
_UNIT_TABLE: dict[str, tuple[str | None, str | None, str]] = {
    "°c": ("°C", "temperature", _M),
    "ºc": ("°C", "temperature", _M),  # ordinal indicator, a common typo for the degree sign
    "c": ("°C", "temperature", _M),
    "degc": ("°C", "temperature", _M),
    "deg c": ("°C", "temperature", _M),
    "celsius": ("°C", "temperature", _M),
    "°f": ("°F", "temperature", _M),
    "ºf": ("°F", "temperature", _M),
    "degf": ("°F", "temperature", _M),
    "fahrenheit": ("°F", "temperature", _M),
    "kelvin": ("K", "temperature", _M),
    "v": ("V", "voltage", _M),
    "volt": ("V", "voltage", _M),
    "mv": ("mV", "voltage", _M),
    "a": ("A", "current", _M),
    "amp": ("A", "current", _M),
    "ma": ("mA", "current", _M),
    "w": ("W", "power", _M),
    "watt": ("W", "power", _M),
    "mw": ("mW", "power", _M),
    "kw": ("kW", "power", _M),
    "va": ("VA", "apparent_power", _M),
    # Energy on a board is a counter that restarts at 0 when the board reboots:
    # total_increasing is the state class whose semantics (a drop = a reset) match that,
    # and HA allows only total/total_increasing for the energy class.
    "wh": ("Wh", "energy", "total_increasing"),
    "kwh": ("kWh", "energy", "total_increasing"),
    "pa": ("Pa", "pressure", _M),
    "hpa": ("hPa", "pressure", _M),
    "kpa": ("kPa", "pressure", _M),
    "bar": ("bar", "pressure", _M),
    "mbar": ("mbar", "pressure", _M),
    "psi": ("psi", "pressure", _M),
    "lx": ("lx", "illuminance", _M),
    "lux": ("lx", "illuminance", _M),
    "dbm": ("dBm", "signal_strength", _M),
    "dba": ("dBA", "sound_pressure", _M),
    "hz": ("Hz", "frequency", _M),
    "khz": ("kHz", "frequency", _M),
    "s": ("s", "duration", _M),
    "sec": ("s", "duration", _M),
    "ms": ("ms", "duration", _M),
    "min": ("min", "duration", _M),
    "h": ("h", "duration", _M),
    "m": ("m", "distance", _M),
    "cm": ("cm", "distance", _M),
    "mm": ("mm", "distance", _M),
    "km": ("km", "distance", _M),
    "km/h": ("km/h", "speed", _M),
    "kmh": ("km/h", "speed", _M),
    "m/s": ("m/s", "speed", _M),
    "kg": ("kg", "weight", _M),
    "w/m2": ("W/m²", "irradiance", _M),
    "w/m²": ("W/m²", "irradiance", _M),
    "l/min": ("L/min", "volume_flow_rate", _M),
    "µs/cm": ("µS/cm", "conductivity", _M),
    "us/cm": ("µS/cm", "conductivity", _M),
    "l": ("L", None, _M),
    "ml": ("mL", None, _M),
    "rpm": ("rpm", None, _M),
    "°": ("°", None, _M),
    "deg": ("°", None, _M),
    # Unit-less device classes: HA wants no unit_of_measurement for these.
    "ph": (None, "ph", _M),
    "aqi": (None, "aqi", _M),
}
_MICROGRAMS_PER_M3 = frozenset({"µg/m³", "µg/m3", "ug/m³", "ug/m3", "μg/m³", "μg/m3", "mcg/m3"})


def classify_unit(name: str, unit: str) -> UnitClass:
    """HA unit_of_measurement, device_class and state_class of a numeric datastream.

    `unit` is the HELLO unit text (matched case-insensitively, `celsius`, `°C`, `degc`
    all → `°C`/temperature); `name` disambiguates units several classes share: `%` is
    humidity when the name contains "humid", battery with "batt", moisture with "moist"
    or "soil", else a plain percentage; `ppm` is CO₂ with "co2" in the name; `µg/m³` is
    PM2.5 with "pm2" (PM10, PM1 likewise); `dB` is signal strength for rssi/snr/signal
    names, else sound pressure. An unknown unit is passed through with no device class.
    """
    text = unit.strip()
    key = text.lower()
    lname = name.lower()
    words = set(_NAME_WORDS.split(lname))
    if not key:
        return UnitClass(None)
    if key == "%":
        if "humid" in lname or "rh" in words:
            return UnitClass("%", "humidity")
        if "batt" in lname:
            return UnitClass("%", "battery")
        if "moist" in lname or "soil" in lname:
            return UnitClass("%", "moisture")
        return UnitClass("%")
    if key == "ppm":
        if "co2" in lname:
            return UnitClass("ppm", "carbon_dioxide")
        if "voc" in lname:
            return UnitClass("ppm", "volatile_organic_compounds_parts")
        if "co" in words:
            return UnitClass("ppm", "carbon_monoxide")
        return UnitClass("ppm")
    if key == "ppb":
        return UnitClass("ppb", "volatile_organic_compounds_parts" if "voc" in lname else None)
    if key in _MICROGRAMS_PER_M3:
        # Order matters: "pm10" contains "pm1".
        for hint, pm_class in (("pm10", "pm10"), ("pm2", "pm25"), ("pm1", "pm1")):
            if hint in lname:
                return UnitClass("µg/m³", pm_class)
        if "voc" in lname:
            return UnitClass("µg/m³", "volatile_organic_compounds")
        return UnitClass("µg/m³")
    if key == "db":
        if words & {"rssi", "snr", "signal", "link"}:
            return UnitClass("dB", "signal_strength")
        return UnitClass("dB", "sound_pressure")
    if key in _UNIT_TABLE:
        ha_unit, device_class, state_class = _UNIT_TABLE[key]
        return UnitClass(ha_unit, device_class, state_class)
    return UnitClass(text)


def status_topic(cfg: DiscoveryConfig) -> str:
    """HA's birth/will topic, `{prefix}/status`: `online` there means "publish discovery
    again" (HA forgets non-retained configs when it restarts)."""
    return f"{cfg.prefix}/status"


def sanitize_id(text: str) -> str:
    """`text` with every character outside `[a-zA-Z0-9_-]` replaced by `_`: the only
    characters HA allows in the node and object ids of a discovery topic."""
    return _ID_BAD.sub("_", text) or "_"


def bridge_node_id(cfg: DiscoveryConfig) -> str:
    """Node id of the bridge's own HA device. A board's node is `{bridge_id}_{dev}` and
    no board can be called `bridge` (topics reserve `{base}/bridge/`), so they never
    clash."""
    return sanitize_id(f"{cfg.bridge_id}_bridge")


def board_node_id(cfg: DiscoveryConfig, dev: str) -> str:
    """Node id of board `dev`: `{bridge_id}_{dev}`, unique per broker because client ids
    and device ids are."""
    return sanitize_id(f"{cfg.bridge_id}_{dev}")


def bridge_identifier(cfg: DiscoveryConfig) -> str:
    """The bridge device's HA identifier (what boards name in `via_device`)."""
    return f"conduyt_bridge_{cfg.bridge_id}"


def board_identifiers(cfg: DiscoveryConfig, dev: str, mcu_id_hex: str = "") -> list[str]:
    """HA device identifiers of board `dev`: the configured id, and the configured id
    combined with the board's mcu_id when it has one.

    Never the mcu_id alone: HA merges devices that share ANY identifier, and mcu_id is not
    unique (AVR boards of one model share the chip signature, `docs/topics.md` §1), so an
    identifier of mcu_id alone would fold two Unos into one HA device. The first
    identifier stays the same when another board takes the port, so HA keeps the device
    (and its entity ids) and updates it. The mcu_id is also the device's serial number.
    """
    ids = [f"conduyt_{cfg.bridge_id}_{dev}"]
    if mcu_id_hex.strip("0"):
        ids.append(f"conduyt_{cfg.bridge_id}_{dev}_{mcu_id_hex}")
    return ids


def _origin(cfg: DiscoveryConfig) -> dict[str, Any]:
    return {"name": "conduyt-bridge", "sw": cfg.bridge_version, "url": cfg.support_url}


def _availability(cfg: DiscoveryConfig, *topics: str) -> dict[str, Any]:
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


def _pretty(name: str) -> str:
    text = name.replace("_", " ").strip() or "Datastream"
    return text[0].upper() + text[1:]


def _bool_template() -> str:
    # value_json.value is a JSON boolean, which Jinja prints as True/False; map it to the
    # same true/false text the plain format uses so payload_on/state_on stay one pair.
    return "{{ 'true' if value_json.value else 'false' }}"


_JSON_VALUE_TEMPLATE = "{{ value_json.value }}"
# HA text entities send what the user typed as is. Wrapping it as {"value": ...} keeps
# text that happens to parse as JSON (`123`, `true`, `{...}`) a string for the bridge's
# command parser, which would otherwise take it for a number or an object.
_TEXT_COMMAND_TEMPLATE = "{{ {'value': value} | to_json }}"


@dataclass(frozen=True, slots=True)
class _Entity:
    key: str  # component id in `cmps`; object id of the per-component topic
    platform: str
    config: dict[str, Any]


def _datastream_entity(
    cfg: DiscoveryConfig,
    board: BoardDiscovery,
    key: str,
    slug: str,
    ds: DatastreamDescriptor,
) -> _Entity | None:
    ds_type = ds.known_type
    if ds_type is None:
        return None  # an undefined type code: no value the bridge could publish
    topics = BridgeTopics(cfg.base_topic)
    dev_topics = topics.device(board.dev)
    hints = board.hints.get(ds.name, DatastreamHints())
    writable = ds.writable and not board.read_only
    is_json = cfg.payload_format == "json"

    conf: dict[str, Any] = {
        "name": hints.name or _pretty(ds.name),
        "unique_id": f"{board_node_id(cfg, board.dev)}_{key}",
        "state_topic": dev_topics.ds(slug),
    }
    if writable:
        conf["command_topic"] = dev_topics.ds_set(slug)
        # Commands are QoS 1 (`docs/topics.md` §8) and never retained: the bridge refuses
        # retained commands, so a retained /set from HA would only produce an error.
        conf["retain"] = False
    conf["qos"] = 1
    conf.update(_availability(cfg, topics.state, dev_topics.status))

    if ds_type is DatastreamType.BOOL:
        platform = "switch" if writable else "binary_sensor"
        conf["payload_on"] = "true"
        conf["payload_off"] = "false"
        if writable:
            conf["state_on"] = "true"
            conf["state_off"] = "false"
        if is_json:
            conf["value_template"] = _bool_template()
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
            conf["value_template"] = _JSON_VALUE_TEMPLATE
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
            conf["value_template"] = _JSON_VALUE_TEMPLATE

    if hints.expire_after_s and platform in ("sensor", "binary_sensor"):
        conf["expire_after"] = int(hints.expire_after_s)
    return _Entity(key, platform, conf)


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


def _board_status_entity(cfg: DiscoveryConfig, dev: str) -> _Entity:
    topics = BridgeTopics(cfg.base_topic)
    conf: dict[str, Any] = {
        "name": "Connectivity",
        "unique_id": f"{board_node_id(cfg, dev)}_status",
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "state_topic": topics.device(dev).status,
        "payload_on": ONLINE,
        "payload_off": OFFLINE,
        "qos": 1,
    }
    # Only the bridge's state gates this one: a board that is offline must show as
    # "disconnected", not vanish into "unavailable".
    conf.update(_availability(cfg, topics.state))
    return _Entity("status", "binary_sensor", conf)


def _board_entities(cfg: DiscoveryConfig, board: BoardDiscovery) -> list[_Entity]:
    entities = [_board_status_entity(cfg, board.dev)]
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


def _board_device(cfg: DiscoveryConfig, board: BoardDiscovery) -> dict[str, Any]:
    hello = board.hello
    device: dict[str, Any] = {
        "identifiers": board_identifiers(cfg, board.dev, board.hello.mcu_id_hex),
        "name": board.dev,
        "manufacturer": "Conduyt",
        "model": hello.firmware_name or "Conduyt board",
        "sw_version": hello.version_string,
        "via_device": bridge_identifier(cfg),
    }
    if any(hello.mcu_id):
        device["serial_number"] = hello.mcu_id_hex
    return device


def _bridge_device(cfg: DiscoveryConfig) -> dict[str, Any]:
    default = DiscoveryConfig.bridge_id
    name = "Conduyt bridge" if cfg.bridge_id == default else f"Conduyt bridge {cfg.bridge_id}"
    return {
        "identifiers": [bridge_identifier(cfg)],
        "name": name,
        "manufacturer": "Conduyt",
        "model": "conduyt-bridge",
        "sw_version": cfg.bridge_version,
    }


def _bridge_entity(cfg: DiscoveryConfig) -> _Entity:
    conf: dict[str, Any] = {
        "name": "Connectivity",
        "unique_id": f"{bridge_node_id(cfg)}_connectivity",
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "state_topic": BridgeTopics(cfg.base_topic).state,
        "payload_on": ONLINE,
        "payload_off": OFFLINE,
        "qos": 1,
    }
    # No availability: the Will's `offline` is exactly the state to show ("disconnected").
    return _Entity("connectivity", "binary_sensor", conf)


def _encode(payload: Mapping[str, Any]) -> bytes:
    # ensure_ascii=False: `°C` and `µg/m³` travel as UTF-8, readable in MQTT tools.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _messages(
    cfg: DiscoveryConfig, node: str, device: dict[str, Any], entities: Sequence[_Entity]
) -> list[DiscoveryMessage]:
    origin = _origin(cfg)
    if cfg.mode == "device":
        payload = {
            "dev": device,
            "o": origin,
            "cmps": {e.key: {"p": e.platform, **e.config} for e in entities},
        }
        return [DiscoveryMessage(f"{cfg.prefix}/device/{node}/config", _encode(payload))]
    return [
        DiscoveryMessage(
            f"{cfg.prefix}/{e.platform}/{node}/{e.key}/config",
            _encode({**e.config, "dev": device, "o": origin}),
        )
        for e in entities
    ]


def bridge_messages(cfg: DiscoveryConfig) -> list[DiscoveryMessage]:
    """Discovery of the bridge as its own HA device, with a diagnostic connectivity
    binary_sensor on `{base}/bridge/state` (`online`/`offline`, the Will)."""
    return _messages(cfg, bridge_node_id(cfg), _bridge_device(cfg), [_bridge_entity(cfg)])


def board_messages(cfg: DiscoveryConfig, board: BoardDiscovery) -> list[DiscoveryMessage]:
    """Discovery of one board: in device mode one message on
    `{prefix}/device/{bridge_id}_{dev}/config`; in components mode one per entity.

    Entities: a diagnostic connectivity binary_sensor on `{base}/{dev}/status`, then one
    per datastream with a defined type (see the module docstring for the mapping).
    Datastream entities are available while bridge and board both say `online`.
    """
    return _messages(
        cfg, board_node_id(cfg, board.dev), _board_device(cfg, board), _board_entities(cfg, board)
    )


def _decode(message: DiscoveryMessage) -> dict[str, Any] | None:
    if not message.payload:
        return None
    try:
        doc = json.loads(message.payload)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _components(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    cmps = doc.get("cmps", doc.get("components"))
    return cmps if isinstance(cmps, dict) else None


def _platform_of(component: Any) -> str | None:
    if isinstance(component, dict):
        platform = component.get("p", component.get("platform"))
        return platform if isinstance(platform, str) else None
    return None


def removal_messages(
    cfg: DiscoveryConfig, old: Sequence[DiscoveryMessage], new: Sequence[DiscoveryMessage]
) -> list[DiscoveryMessage]:
    """What to publish so that entities in `old` but not in `new` disappear from HA.

    * A config topic of `old` that `new` does not have: an empty retained payload (HA
      deletes the entity, or the whole device for a device topic, and the broker drops
      the retained config so it cannot come back as a ghost).
    * A device topic in both whose `cmps` lost components (or whose component changed
      platform): that device config as `new` has it, plus `{"p": <old platform>}` for each
      vanished component, which is HA's documented way to remove one component of a
      device. HA then wants the clean config again: publish these messages BEFORE `new`,
      so the retained config ends up without the placeholders.

    Works across a mode change too (every old topic that `new` lacks is emptied).
    `cfg` is accepted for symmetry with the other builders.
    """
    new_by_topic = {m.topic: m for m in new}
    out: list[DiscoveryMessage] = []
    done: set[str] = set()
    for message in old:
        if message.topic in done or not message.payload:
            continue
        done.add(message.topic)
        current = new_by_topic.get(message.topic)
        if current is None or not current.payload:
            if current is None:
                out.append(DiscoveryMessage(message.topic, b""))
            continue
        old_doc, new_doc = _decode(message), _decode(current)
        if old_doc is None or new_doc is None:
            continue
        old_cmps, new_cmps = _components(old_doc), _components(new_doc)
        if old_cmps is None or new_cmps is None:
            continue
        gone: dict[str, Any] = {}
        for key, component in old_cmps.items():
            platform = _platform_of(component)
            if platform is None:
                continue
            if len(component) == 1:
                continue  # already a removal placeholder
            if key not in new_cmps or _platform_of(new_cmps[key]) != platform:
                gone[key] = {"p": platform}
        if not gone:
            continue
        # A component whose platform changed is removed first and re-added by `new`.
        merged = {k: v for k, v in new_cmps.items() if k not in gone}
        merged.update(gone)
        interim = {k: v for k, v in new_doc.items() if k not in ("cmps", "components")}
        interim["cmps"] = merged
        out.append(DiscoveryMessage(message.topic, _encode(interim)))
    return out


def clear_messages(old: Sequence[DiscoveryMessage]) -> list[DiscoveryMessage]:
    """An empty retained payload for every distinct topic of `old` (discovery disabled,
    or the bridge removing everything it announced)."""
    topics = dict.fromkeys(m.topic for m in old)
    return [DiscoveryMessage(topic, b"") for topic in topics]


MIGRATE_PAYLOAD = b'{"migrate_discovery":true}'
"""HA's hand-over between discovery forms (HA 2024.11, with device-based discovery): on
an old config topic it unloads the item but keeps its registry entries (entity ids, areas,
renames) for the config that replaces it on the other form's topic."""


def node_config_filters(prefix: str, node: str) -> list[str]:
    """Topic filters of every discovery config of `node`, in both modes."""
    return [f"{prefix}/device/{node}/config", f"{prefix}/+/{node}/+/config"]


def _topic_mode(prefix: str, topic: str) -> DiscoveryMode | None:
    parts = topic[len(prefix) + 1 :].split("/") if topic.startswith(prefix + "/") else []
    if len(parts) == 3 and parts[0] == "device" and parts[2] == "config":
        return "device"
    if len(parts) == 4 and parts[3] == "config":
        return "components"
    return None


def handover_messages(
    cfg: DiscoveryConfig, found: Mapping[str, bytes], new: Sequence[DiscoveryMessage]
) -> tuple[list[DiscoveryMessage], list[DiscoveryMessage]]:
    """What to publish around a node's first announcement `new`, given the retained
    configs `found` for that node (topic → payload): `(before, after)`.

    HA's documented migration between the two discovery forms: `before` puts
    `{"migrate_discovery": true}` (retained) on each old-form config whose entity `new`
    announces again (components → device: the component key and platform reappear in
    `cmps`; device → components: any old device config, when `new` is not empty), then
    `new` is published, then `after` empties every found topic `new` does not use
    (migrated ones included, as the docs' last step says). A found topic of the current
    form that `new` lacks is a leftover of an earlier run and is only emptied.
    """
    keep = {m.topic for m in new}
    new_cmps: dict[str, str | None] = {}
    for message in new:
        doc = _decode(message)
        cmps = _components(doc) if doc is not None else None
        for key, component in (cmps or {}).items():
            new_cmps[key] = _platform_of(component)
    before: list[DiscoveryMessage] = []
    after: list[DiscoveryMessage] = []
    for topic in found:
        if topic in keep:
            continue
        mode = _topic_mode(cfg.prefix, topic)
        if mode is not None and mode != cfg.mode and new:
            if mode == "device":
                before.append(DiscoveryMessage(topic, MIGRATE_PAYLOAD))
            else:
                platform, _node, key = topic[len(cfg.prefix) + 1 :].split("/")[:3]
                if key in new_cmps and new_cmps[key] == platform:
                    before.append(DiscoveryMessage(topic, MIGRATE_PAYLOAD))
        after.append(DiscoveryMessage(topic, b""))
    return before, after
