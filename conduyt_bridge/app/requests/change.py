"""One configuration change, all or nothing (`docs/requests.md` §4).

`commit_change` stages the new file text beside the config file, validates it exactly as
a start would (`load_settings`: the file plus the `CONDUYT_BRIDGE_*` environment), then
applies the run-time part, then renames the staged file into place. A change that is
invalid touches nothing; a run-time part that fails is undone before the staged file is
removed; a rename that fails undoes the run-time part. So the file and the running
bridge agree whatever happens.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
import tomlkit
from pydantic import ValidationError
from tomlkit.exceptions import TOMLKitError

from conduyt_bridge.app.config import ENV_PREFIX, ConfigError, DeviceConfig, Settings, load_settings
from conduyt_bridge.app.config_errors import convert_validation_error
from conduyt_bridge.app.requests.errors import RequestError
from conduyt_bridge.app.requests.host import BridgeControl
from conduyt_bridge.app.requests.store import ConfigFile
from conduyt_bridge.errors import describe_exception

__all__ = [
    "Apply",
    "commit_change",
    "config_file",
    "entry_index",
    "file_devices",
    "settings_problems",
    "validate_device",
]

log = structlog.stdlib.get_logger(__name__)

Apply = Callable[[Settings], Awaitable[Any]]
"""The run-time part of a change, given the validated new settings; returns the data of
the response. Raises RequestError (having changed nothing)."""

Undo = Callable[[], Awaitable[None]]


def config_file(bridge: BridgeControl) -> ConfigFile:
    """The bridge's config file. Raises RequestError for a bridge started without one
    and when the environment sets the devices (the file's would be ignored)."""
    if bridge.config_path is None:
        raise RequestError(
            "this bridge was started without a config file (configured from the "
            "environment only): changes cannot be saved; start it with --config FILE"
        )
    variable = f"{ENV_PREFIX}DEVICES"
    if any(name.upper() == variable for name in os.environ):
        raise RequestError(
            f"the devices are set by the environment variable {variable}, which overrides "
            "the config file: change them there"
        )
    return ConfigFile(bridge.config_path)


def read_text(file: ConfigFile) -> str:
    """The config file's text. Raises RequestError."""
    try:
        return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestError(f"cannot read the config file {file.path}: {exc}") from None


def file_devices(text: str) -> list[dict[str, Any]]:
    """The `[[devices]]` entries of a config text as plain data. Raises RequestError."""
    try:
        devices = tomlkit.parse(text).unwrap().get("devices", [])
    except TOMLKitError as exc:
        raise RequestError(f"the config file is not valid TOML: {exc}") from None
    if not isinstance(devices, list):
        raise RequestError("the config file's `devices` is not a list of [[devices]] tables")
    return [d if isinstance(d, dict) else {} for d in devices]


def entry_index(text: str, dev: str, path: Path) -> int:
    """Index of board `dev`'s entry in the config text. Raises RequestError."""
    for index, entry in enumerate(file_devices(text)):
        try:
            if DeviceConfig.model_validate(entry).device_id == dev:
                return index
        except ValidationError:
            if entry.get("id") == dev:
                return index
    raise RequestError(
        f"board '{dev}' is not in the config file {path} (it was changed since the last "
        "reload?): run config/reload first"
    )


def validate_device(entry: dict[str, Any]) -> DeviceConfig:
    """`entry` validated as a `[[devices]]` table. Raises RequestError naming each
    problem as `key: reason`."""
    try:
        return DeviceConfig.model_validate(entry)
    except ValidationError as exc:
        errors, _ = convert_validation_error(exc, "request", DeviceConfig, lambda _: None)
        text = "; ".join(f"{k}: {r}" for k, r in errors)
        raise RequestError(f"invalid device: {text}") from None
    except ValueError as exc:  # a model validator's ConfigProblems outside pydantic
        raise RequestError(f"invalid device: {exc}") from None


def settings_problems(error: ConfigError) -> str:
    """A ConfigError's problems as `key: reason; …` (the temporary file not named)."""
    return "; ".join(f"{key}: {reason}" if key else reason for key, reason in error.errors)


async def commit_change(
    bridge: BridgeControl, file: ConfigFile, text: str, apply: Apply, undo: Undo
) -> Any:
    """Stage `text`, validate it, `apply` the run-time part, then rename the staged file
    over the config file; see the module docstring. Returns what `apply` returned.
    Raises RequestError."""
    try:
        staged = file.stage(text)
    except OSError as exc:
        raise RequestError(f"cannot write beside the config file {file.path}: {exc}") from None
    try:
        settings = load_settings(staged.temp)
    except ConfigError as exc:
        staged.discard()
        raise RequestError(
            f"the change would make the configuration invalid: {settings_problems(exc)}"
        ) from None
    try:
        data = await apply(settings)
    except BaseException:
        staged.discard()
        raise
    try:
        staged.commit()
    except OSError as exc:
        log.warning("config file not written: undoing the change", error=describe_exception(exc))
        await undo()
        raise RequestError(
            f"cannot write the config file {file.path}: {exc.strerror or exc}; "
            "the change was undone"
        ) from None
    bridge.settings = bridge.settings.model_copy(update={"devices": settings.devices})
    log.info("config file written", path=str(file.path))
    return data
