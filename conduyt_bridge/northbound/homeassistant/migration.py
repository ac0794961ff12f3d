"""Changing what is announced: removing vanished entities, clearing a node, and handing a
node over between the two discovery forms.

Removal is part of the discovery contract (`docs/topics.md` §8): `removal_messages`
computes what makes vanished entities disappear, `clear_messages` what removes
everything, and `handover_messages` what moves a node between the device and components
forms with HA's `migrate_discovery`, so entity ids, areas and renames survive
(`docs/home-assistant.md`). Nothing here does IO.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from conduyt_bridge.northbound.homeassistant.model import (
    DiscoveryConfig,
    DiscoveryMessage,
    DiscoveryMode,
    encode_payload,
)

__all__ = ["MIGRATE_PAYLOAD", "clear_messages", "handover_messages", "removal_messages"]

MIGRATE_PAYLOAD = b'{"migrate_discovery":true}'
"""HA's hand-over between discovery forms (HA 2024.11, with device-based discovery): on
an old config topic it unloads the item but keeps its registry entries (entity ids, areas,
renames) for the config that replaces it on the other form's topic."""


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
        out.append(DiscoveryMessage(message.topic, encode_payload(interim)))
    return out


def clear_messages(old: Sequence[DiscoveryMessage]) -> list[DiscoveryMessage]:
    """An empty retained payload for every distinct topic of `old` (discovery disabled,
    or the bridge removing everything it announced)."""
    topics = dict.fromkeys(m.topic for m in old)
    return [DiscoveryMessage(topic, b"") for topic in topics]


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
