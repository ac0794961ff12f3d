"""The checker's entry points: a discovery topic, payload or raw MQTT message in, the list
of problems out (empty: HA would accept it)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .checks import (
    check_availability,
    check_device,
    check_entity,
    check_origin,
    expand,
    expand_tilde,
)
from .tables import (
    ABBREVIATIONS,
    DEVICE_PAYLOAD_SHARED_KEYS,
    NON_ENTITY_PLATFORMS,
    PLATFORMS,
)

__all__ = ["parse_topic", "validate_discovery", "validate_message"]

_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
"""A node, object or component id."""


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
    root = expand_tilde(root)

    if component == "device":
        for key in ("device", "origin", "components"):
            if key not in root:
                problems.append(f"root: device-based discovery requires {key!r}")
        allowed = {"device", "origin", "components"} | DEVICE_PAYLOAD_SHARED_KEYS
        for key in sorted(root.keys() - allowed):
            problems.append(f"root: {key!r} is not a shared option of a device payload")
        if "device" in root:
            problems += check_device(root["device"], "device")
        if "origin" in root:
            problems += check_origin(root["origin"], "origin")
        problems += check_availability(root, "root")
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
            conf = expand_tilde(conf)
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
            problems += check_entity(
                platform, {**shared, **conf, "device": root.get("device")}, where, True
            )
        return problems

    if component not in PLATFORMS:
        return [*problems, f"{topic}: {component!r} is not an MQTT discovery platform"]
    if "platform" in root:
        problems.append("root: 'platform' is only allowed in device-based discovery payloads")
    if "device" in root:
        problems += check_device(root["device"], "device")
    if "origin" in root:
        problems += check_origin(root["origin"], "origin")
    problems += check_entity(component, root, "root", False)
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
