"""What Home Assistant discovery is built from and what it produces, and the ids it uses.

Inputs: `DiscoveryConfig` (how and where to publish) and `BoardDiscovery` (one board's
HELLO and options, with `DatastreamHints` from the config file). Output:
`DiscoveryMessage`s, retained JSON payloads on discovery topics (`docs/topics.md` §8).
The node ids and device identifiers here name every config topic and HA device, so they
must stay stable across releases (`docs/home-assistant.md`). Nothing here does IO.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from conduyt_bridge.protocol.hello import HelloResp
from conduyt_bridge.version import __version__

__all__ = [
    "OFFLINE",
    "ONLINE",
    "BoardDiscovery",
    "DatastreamHints",
    "DiscoveryConfig",
    "DiscoveryMessage",
    "DiscoveryMode",
    "PayloadFormat",
    "board_identifiers",
    "board_node_id",
    "bridge_identifier",
    "bridge_identifiers",
    "bridge_node_id",
    "encode_payload",
    "node_config_filters",
    "sanitize_id",
    "status_topic",
]

DiscoveryMode = Literal["device", "components"]
PayloadFormat = Literal["plain", "json"]

ONLINE = "online"
OFFLINE = "offline"

_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True)
class DiscoveryConfig:
    """How and where discovery is published.

    `bridge_id` is the MQTT client id: it is unique per bridge instance, so it prefixes
    every node and unique id and two bridges on one broker never collide (kept as the
    prefix so node ids, and HA's entity ids, stay what they were before fleets).
    `gateway_id` is `[bridge] id`: the bridge's topics `{base}/bridge/{gateway_id}/...`
    (the availability of its boards) and part of its HA device's identifiers and name
    (`docs/fleet.md` §4).
    """

    prefix: str = "homeassistant"
    mode: DiscoveryMode = "device"
    base_topic: str = "conduyt"
    bridge_id: str = "conduyt-bridge"
    gateway_id: str = "conduyt-bridge"
    bridge_version: str = __version__
    payload_format: PayloadFormat = "plain"
    support_url: str = "https://github.com/conduyt/conduyt-bridge"
    configuration_url: str | None = None
    """The bridge device's `configuration_url` in HA (its console, `http://{host}:{port}/`,
    when `[http] listen` is set: `docs/home-assistant.md`, "Device names"); None: omitted."""


@dataclass(frozen=True)
class DatastreamHints:
    """Per-datastream discovery overrides (config `[devices.datastreams.<name>]`).

    `name` replaces the friendly entity name; `expire_after_s` makes HA mark the value
    unavailable when no update came for that long (sensors and binary sensors only: HA's
    number, switch and text platforms have no `expire_after`). The other fields shape the
    entity (`conduyt_bridge.northbound.homeassistant.shaping`, `docs/home-assistant.md`,
    "Shaping datastream entities"): `unit` is the display unit (the value is converted
    from the board's), `min`/`max`/`step` are in that unit; None means "not set".
    """

    name: str | None = None
    expire_after_s: int | None = None
    device_class: str | None = None
    state_class: str | None = None
    unit: str | None = None
    icon: str | None = None
    entity_category: str | None = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    enabled_by_default: bool | None = None

    @property
    def shaped(self) -> bool:
        """True when any shaping field (every field but name and expire_after_s) is set."""
        return any(
            getattr(self, f.name) is not None
            for f in fields(self)
            if f.name not in ("name", "expire_after_s")
        )


@dataclass(frozen=True)
class BoardDiscovery:
    """One board as discovery needs it: its device id (topic segment), HELLO and options.

    `hints` is keyed by datastream NAME (as in the config file), not by slug. `name` is
    the HA device name (`[[devices]] name`; None: the device id).
    """

    dev: str
    hello: HelloResp
    port: str
    read_only: bool = False
    hints: Mapping[str, DatastreamHints] = field(default_factory=dict)
    name: str | None = None
    discovery_id: str | None = None
    """`[[devices]] discovery_id`: the key of the node id, unique ids and device
    identifiers when it differs from `dev` (a renamed board keeps its HA entities,
    `docs/requests.md` §3); None: `dev`."""

    @property
    def key(self) -> str:
        """What the board's HA ids are built from: `discovery_id`, else `dev`."""
        return self.discovery_id or self.dev


@dataclass(frozen=True)
class DiscoveryMessage:
    """A message to publish: `payload` is UTF-8 JSON, or `b""` meaning "remove"."""

    topic: str
    payload: bytes
    retain: bool = True


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


def bridge_identifiers(cfg: DiscoveryConfig) -> list[str]:
    """Every HA identifier of the bridge device: `bridge_identifier`, and, when the
    bridge id differs from the client id, that one with `_{gateway_id}` (the bridge id
    in the identifiers without changing the one HA already knows, `docs/fleet.md` §4)."""
    first = bridge_identifier(cfg)
    if cfg.gateway_id == cfg.bridge_id:
        return [first]
    return [first, f"{first}_{cfg.gateway_id}"]


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


def node_config_filters(prefix: str, node: str) -> list[str]:
    """Topic filters of every discovery config of `node`, in both modes."""
    return [f"{prefix}/device/{node}/config", f"{prefix}/+/{node}/+/config"]


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """`payload` as compact UTF-8 JSON, the form of every discovery message."""
    # ensure_ascii=False: `°C` and `µg/m³` travel as UTF-8, readable in MQTT tools.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
