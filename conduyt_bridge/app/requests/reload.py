"""`config/reload` and SIGHUP: read the config file again and apply what changed
(`docs/requests.md` §3.6, §6).

Boards are compared by id: a board gone from the file is removed, a new one added, one
whose entry changed restarted; the others are not touched (their sessions never drop).
Of the global sections only `[bridge] allow_remote_config` and `allowed_ports` apply at
once; any other key that changed is listed in `restart_required` and keeps its running
value until the bridge restarts, rather than being half-applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from conduyt_bridge.app.config import ConfigError, DeviceConfig, Settings, load_settings
from conduyt_bridge.app.requests.change import config_file, settings_problems
from conduyt_bridge.app.requests.errors import RequestError
from conduyt_bridge.app.requests.host import BridgeControl

__all__ = ["LIVE_BRIDGE_KEYS", "reload_config", "restart_required"]

log = structlog.stdlib.get_logger(__name__)

LIVE_BRIDGE_KEYS = ("allow_remote_config", "allowed_ports")
"""`[bridge]` keys a reload applies at once (the request API reads them per request)."""


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def restart_required(running: Settings, new: Settings) -> list[str]:
    """Dotted keys outside `devices` whose value differs between `running` and `new`,
    except those a reload applies (`LIVE_BRIDGE_KEYS`); a secret is compared, not shown."""
    old_flat: dict[str, Any] = {}
    new_flat: dict[str, Any] = {}
    exclude: dict[str, Any] = {"devices": True, "bridge": set(LIVE_BRIDGE_KEYS)}
    _flatten("", running.model_dump(mode="json", exclude=exclude), old_flat)
    _flatten("", new.model_dump(mode="json", exclude=exclude), new_flat)
    if running.mqtt.resolved_password() != new.mqtt.resolved_password():
        old_flat["mqtt.password"], new_flat["mqtt.password"] = 0, 1
    keys = old_flat.keys() | new_flat.keys()
    return sorted(k for k in keys if old_flat.get(k) != new_flat.get(k))


async def reload_config(bridge: BridgeControl, payload: Mapping[str, Any] | None = None) -> Any:
    """Apply the config file as it is now; returns `{"added", "removed", "restarted",
    "unchanged", "restart_required"}` (board ids, dotted keys). Raises RequestError for
    an unreadable or invalid file (nothing changes then)."""
    file = config_file(bridge)
    try:
        new = load_settings(file.path)
    except ConfigError as exc:
        raise RequestError(
            f"the config file {file.path} is invalid, nothing was changed: "
            f"{settings_problems(exc)}"
        ) from None
    running: dict[str, DeviceConfig] = {}
    for dev, board in bridge.boards.items():
        if isinstance(board.config, DeviceConfig):
            running[dev] = board.config
    wanted = {d.device_id: d for d in new.devices}
    removed = [dev for dev in running if dev not in wanted]
    added = [dev for dev in wanted if dev not in running]
    restarted = [dev for dev in wanted if dev in running and running[dev] != wanted[dev]]
    for dev in removed:
        await bridge.remove_board(dev)
    for dev in restarted:
        await bridge.remove_board(dev, successor=dev)
        await bridge.add_board(wanted[dev])
    for dev in added:
        await bridge.add_board(wanted[dev])
    pending = restart_required(bridge.settings, new)
    live = {key: getattr(new.bridge, key) for key in LIVE_BRIDGE_KEYS}
    bridge_section = bridge.settings.bridge.model_copy(update=live)
    bridge.settings = bridge.settings.model_copy(
        update={"devices": new.devices, "bridge": bridge_section}
    )
    data = {
        "added": added,
        "removed": removed,
        "restarted": restarted,
        "unchanged": [dev for dev in wanted if dev in running and dev not in restarted],
        "restart_required": pending,
    }
    log.info("config reloaded", **data)
    return data
