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

This module builds the messages and is the one to import from; the parts live beside it:
`model` (inputs, messages, node ids and device identifiers), `units` (`classify_unit`),
`entities` (entity and device configs) and `migration` (removal, clearing, hand-over).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conduyt_bridge.northbound.homeassistant.entities import (
    FLOAT_NUMBER_LIMIT,
    FLOAT_NUMBER_STEP,
    TEXT_MAX,
    Entity,
    board_device,
    board_entities,
    bridge_device,
    bridge_entity,
)
from conduyt_bridge.northbound.homeassistant.migration import (
    MIGRATE_PAYLOAD,
    clear_messages,
    handover_messages,
    removal_messages,
)
from conduyt_bridge.northbound.homeassistant.model import (
    OFFLINE,
    ONLINE,
    BoardDiscovery,
    DatastreamHints,
    DiscoveryConfig,
    DiscoveryMessage,
    DiscoveryMode,
    PayloadFormat,
    board_identifiers,
    board_node_id,
    bridge_identifier,
    bridge_identifiers,
    bridge_node_id,
    encode_payload,
    node_config_filters,
    sanitize_id,
    status_topic,
)
from conduyt_bridge.northbound.homeassistant.units import (
    _UNIT_TABLE as _UNIT_TABLE,  # the unit table's tests read it here
)
from conduyt_bridge.northbound.homeassistant.units import UnitClass, classify_unit

__all__ = [
    "FLOAT_NUMBER_LIMIT",
    "FLOAT_NUMBER_STEP",
    "MIGRATE_PAYLOAD",
    "OFFLINE",
    "ONLINE",
    "TEXT_MAX",
    "BoardDiscovery",
    "DatastreamHints",
    "DiscoveryConfig",
    "DiscoveryMessage",
    "DiscoveryMode",
    "PayloadFormat",
    "UnitClass",
    "board_identifiers",
    "board_messages",
    "board_node_id",
    "bridge_identifier",
    "bridge_identifiers",
    "bridge_messages",
    "bridge_node_id",
    "classify_unit",
    "clear_messages",
    "handover_messages",
    "node_config_filters",
    "removal_messages",
    "sanitize_id",
    "status_topic",
]


def _origin(cfg: DiscoveryConfig) -> dict[str, Any]:
    return {"name": "conduyt-bridge", "sw": cfg.bridge_version, "url": cfg.support_url}


def _messages(
    cfg: DiscoveryConfig, node: str, device: dict[str, Any], entities: Sequence[Entity]
) -> list[DiscoveryMessage]:
    origin = _origin(cfg)
    if cfg.mode == "device":
        payload = {
            "dev": device,
            "o": origin,
            "cmps": {e.key: {"p": e.platform, **e.config} for e in entities},
        }
        return [DiscoveryMessage(f"{cfg.prefix}/device/{node}/config", encode_payload(payload))]
    return [
        DiscoveryMessage(
            f"{cfg.prefix}/{e.platform}/{node}/{e.key}/config",
            encode_payload({**e.config, "dev": device, "o": origin}),
        )
        for e in entities
    ]


def bridge_messages(cfg: DiscoveryConfig) -> list[DiscoveryMessage]:
    """Discovery of the bridge as its own HA device, with a diagnostic connectivity
    binary_sensor on `{base}/bridge/{gateway_id}/state` (`online`/`offline`, the Will)."""
    return _messages(cfg, bridge_node_id(cfg), bridge_device(cfg), [bridge_entity(cfg)])


def board_messages(
    cfg: DiscoveryConfig, board: BoardDiscovery, extra: Sequence[Entity] = ()
) -> list[DiscoveryMessage]:
    """Discovery of one board: in device mode one message on
    `{prefix}/device/{bridge_id}_{dev}/config`; in components mode one per entity.

    Entities: a diagnostic connectivity binary_sensor on `{base}/{dev}/status`, then one
    per datastream with a defined type (see the module docstring for the mapping).
    Datastream entities are available while the board's own bridge
    (`{base}/bridge/{gateway_id}/state`) and the board both say `online`. `extra`: more
    components of the board (its declared entities, `declared.declared_entities`).
    """
    entities = [*board_entities(cfg, board), *extra]
    return _messages(cfg, board_node_id(cfg, board.key), board_device(cfg, board), entities)
