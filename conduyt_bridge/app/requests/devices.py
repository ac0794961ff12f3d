"""The board actions of the request API (`docs/requests.md` §3): `device/add`,
`device/remove`, `device/rename` and `device/options`.

Each one checks the request, edits the board's `[[devices]]` entry of the config file
(`conduyt_bridge.app.requests.store`) and changes the running bridge through
`commit_change`, all or nothing. Only the board concerned is started, stopped or
restarted.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from tomlkit.items import Table

from conduyt_bridge.app.config import DeviceConfig, Settings
from conduyt_bridge.app.requests.change import (
    commit_change,
    config_file,
    entry_index,
    read_text,
    validate_device,
)
from conduyt_bridge.app.requests.errors import RequestError
from conduyt_bridge.app.requests.host import BridgeControl
from conduyt_bridge.app.requests.ports import check_port
from conduyt_bridge.app.requests.store import add_entry, edit_entry, remove_entry

__all__ = ["add_device", "change_options", "remove_device", "rename_device"]

IDENTITY_KEYS = frozenset({"id", "discovery_id"})
"""Keys `device/options` does not change: a board's id changes by `device/rename`."""


def _string(payload: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = payload.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise RequestError(f"'{key}' must be a non-empty string")
    return value


def _options(payload: Mapping[str, Any]) -> dict[str, Any]:
    options = payload.get("options", {})
    if not isinstance(options, dict):
        raise RequestError("'options' must be a JSON object of [[devices]] keys")
    return dict(options)


def _set_options(target: MutableMapping[str, Any], options: Mapping[str, Any]) -> None:
    """Write `options` into a `[[devices]]` entry (a dict or its tomlkit table): `None`
    removes the key, so its default applies."""
    for name, value in options.items():
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value


def _board(bridge: BridgeControl, dev: str) -> None:
    if dev not in bridge.boards:
        known = ", ".join(repr(d) for d in bridge.boards) or "none"
        raise RequestError(f"no board with id '{dev}' (boards: {known})")


def _new_device(settings: Settings, dev: str) -> DeviceConfig:
    return next(d for d in settings.devices if d.device_id == dev)


def _summary(bridge: BridgeControl, dev: str) -> dict[str, Any]:
    board = bridge.boards[dev]
    config = board.config
    doc: dict[str, Any] = {"id": dev, "port": config.port, "state": board.state}
    if isinstance(config, DeviceConfig):
        doc["config"] = config.model_dump(mode="json", exclude_defaults=True)
    return doc


async def add_device(bridge: BridgeControl, payload: Mapping[str, Any]) -> Any:
    """`device/add`: `{"id"?, "port", "options"?}` → the new board's summary."""
    port = _string(payload, "port")
    assert port is not None
    dev_id = _string(payload, "id", required=False)
    options = _options(payload)
    clash = sorted(IDENTITY_KEYS.union({"port"}) & options.keys())
    if clash:
        raise RequestError(f"give {', '.join(clash)} beside 'options', not in it")
    entry: dict[str, Any] = {"id": dev_id} if dev_id is not None else {}
    entry |= {"port": port, **options}
    device = validate_device(entry)
    check_port(device.port, bridge.settings.bridge.allowed_ports)
    dev = device.device_id
    if dev in bridge.boards:
        raise RequestError(f"a board with id '{dev}' exists already: choose another id")
    file = config_file(bridge)
    text = add_entry(read_text(file), entry)

    async def apply(settings: Settings) -> Any:
        await bridge.add_board(_new_device(settings, dev))
        return _summary(bridge, dev)

    async def undo() -> None:
        await bridge.remove_board(dev)

    return await commit_change(bridge, file, text, apply, undo)


async def remove_device(bridge: BridgeControl, payload: Mapping[str, Any]) -> Any:
    """`device/remove`: `{"id"}` → `{"id"}`; its retained topics and discovery are
    cleared by the adapters."""
    dev = _string(payload, "id")
    assert dev is not None
    _board(bridge, dev)
    file = config_file(bridge)
    text = read_text(file)
    text = remove_entry(text, entry_index(text, dev, file.path))
    old = bridge.boards[dev].config
    assert isinstance(old, DeviceConfig)

    async def apply(settings: Settings) -> Any:
        await bridge.remove_board(dev)
        return {"id": dev}

    async def undo() -> None:
        await bridge.add_board(old)

    return await commit_change(bridge, file, text, apply, undo)


async def rename_device(bridge: BridgeControl, payload: Mapping[str, Any]) -> Any:
    """`device/rename`: `{"from", "to"}` → the board's summary under its new id. Home
    Assistant keeps its entities: `discovery_id` keeps the old key (`docs/requests.md`
    §3)."""
    old_id, new_id = _string(payload, "from"), _string(payload, "to")
    assert old_id is not None and new_id is not None
    _board(bridge, old_id)
    if new_id in bridge.boards:
        raise RequestError(f"a board with id '{new_id}' exists already: choose another id")
    old = bridge.boards[old_id].config
    assert isinstance(old, DeviceConfig)
    key = old.discovery_id or old_id
    validate_device({**old.model_dump(exclude_defaults=True), "id": new_id})
    file = config_file(bridge)
    text = read_text(file)

    def edit(table: Table) -> None:
        table["id"] = new_id
        if key == new_id:
            table.pop("discovery_id", None)
        else:
            table["discovery_id"] = key

    text = edit_entry(text, entry_index(text, old_id, file.path), edit)

    async def apply(settings: Settings) -> Any:
        await bridge.remove_board(old_id, successor=new_id)
        await bridge.add_board(_new_device(settings, new_id))
        return {**_summary(bridge, new_id), "from": old_id}

    async def undo() -> None:
        await bridge.remove_board(new_id, successor=old_id)
        await bridge.add_board(old)

    return await commit_change(bridge, file, text, apply, undo)


async def change_options(bridge: BridgeControl, payload: Mapping[str, Any]) -> Any:
    """`device/options`: `{"id", "options": {key: value or null}}` → the summary and
    whether the board was restarted; `null` removes a key (its default applies)."""
    dev = _string(payload, "id")
    assert dev is not None
    options = _options(payload)
    if not options:
        raise RequestError("'options' must name at least one [[devices]] key to change")
    clash = sorted(IDENTITY_KEYS & options.keys())
    if clash:
        raise RequestError(f"{', '.join(clash)} cannot be changed here: use device/rename")
    _board(bridge, dev)
    old = bridge.boards[dev].config
    assert isinstance(old, DeviceConfig)
    entry = {**old.model_dump(exclude_defaults=True), "id": dev}
    _set_options(entry, options)
    device = validate_device(entry)
    check_port(device.port, bridge.settings.bridge.allowed_ports)
    file = config_file(bridge)
    text = read_text(file)

    text = edit_entry(
        text, entry_index(text, dev, file.path), lambda table: _set_options(table, options)
    )

    async def apply(settings: Settings) -> Any:
        new = _new_device(settings, dev)
        restart = new != old
        if restart:
            await bridge.remove_board(dev, successor=dev)
            await bridge.add_board(new)
        return {**_summary(bridge, dev), "restarted": restart}

    async def undo() -> None:
        if bridge.boards[dev].config != old:
            await bridge.remove_board(dev, successor=dev)
            await bridge.add_board(old)

    return await commit_change(bridge, file, text, apply, undo)
