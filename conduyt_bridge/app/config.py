"""Configuration: the `Settings` model, the TOML + environment loader, and the whole API.

The file is TOML (see `docs/architecture.md` §8); every key can be overridden from the
environment as `CONDUYT_BRIDGE_<SECTION>__<KEY>` (`devices` only as a whole JSON list). Every model
forbids unknown keys so that a typo such as `pasword` is reported instead of ignored.

The parts live in their own modules and are re-exported here, so callers import
everything from `conduyt_bridge.app.config`:

- `conduyt_bridge.app.config_sections`: `[bridge]`, `[mqtt]`, `[homeassistant]`, `[http]`;
- `conduyt_bridge.app.config_devices`: `[[devices]]` and the rules between devices;
- `conduyt_bridge.app.config_ports`: device `port` strings and `host:port` endpoints;
- `conduyt_bridge.app.config_errors`: `ConfigError` and the wording of every problem.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from conduyt_bridge.app.config_devices import (
    RESERVED_DEVICE_ID,
    DatastreamOptions,
    DeviceConfig,
    PinSubscription,
    device_list_problems,
)
from conduyt_bridge.app.config_errors import (
    ConfigError,
    ConfigProblems,
    convert_settings_error,
    convert_validation_error,
)
from conduyt_bridge.app.config_ports import PortKind
from conduyt_bridge.app.config_sections import (
    BridgeSection,
    HomeAssistantSection,
    HomieSection,
    HttpSection,
    MqttSection,
    SparkplugSection,
    default_client_id,
)
from conduyt_bridge.northbound.mqtt.urls import redact_url

__all__ = [
    "ENV_PREFIX",
    "RESERVED_DEVICE_ID",
    "BridgeSection",
    "ConfigError",
    "DatastreamOptions",
    "DeviceConfig",
    "HomeAssistantSection",
    "HomieSection",
    "HttpSection",
    "MqttSection",
    "PinSubscription",
    "PortKind",
    "Settings",
    "SparkplugSection",
    "load_settings",
    "redact_url",
    "redacted_dump",
]

ENV_PREFIX = "CONDUYT_BRIDGE_"
_ENV_DELIMITER = "__"


class Settings(BaseSettings):
    """The whole configuration. Use `load_settings` to read it from a file.

    Constructed directly, it reads only keyword arguments and `CONDUYT_BRIDGE_*`
    environment variables.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=_ENV_DELIMITER,
        extra="forbid",
    )

    bridge: BridgeSection = Field(default_factory=BridgeSection)
    mqtt: MqttSection = Field(default_factory=MqttSection)
    homeassistant: HomeAssistantSection = Field(default_factory=HomeAssistantSection)
    http: HttpSection = Field(default_factory=HttpSection)
    sparkplug: SparkplugSection = Field(default_factory=SparkplugSection)
    homie: HomieSection = Field(default_factory=HomieSection)
    devices: list[DeviceConfig] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Sources in precedence order: keyword arguments, then the environment."""
        return init_settings, env_settings

    @model_validator(mode="after")
    def _derive_client_id(self) -> Self:
        """`[mqtt] client_id` not set: derived from `[bridge] id` (`default_client_id`)."""
        if "client_id" not in self.mqtt.model_fields_set:
            self.mqtt.client_id = default_client_id(self.bridge.id)
        return self

    @model_validator(mode="after")
    def _check_devices(self) -> Self:
        problems = device_list_problems(self.devices)
        if problems:
            raise ConfigProblems(problems)
        return self


# --------------------------------------------------------------------------- loading


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, reading a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        # Set before super().__init__, which calls _load_env_vars.
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def load_settings(path: Path | str, env: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML config file, apply `CONDUYT_BRIDGE_*` overrides and validate.

    Args:
        path: the TOML file; it must exist.
        env: the environment to read overrides from; `None` means `os.environ`.

    Returns:
        The validated settings (an instance of a `Settings` subclass).

    Raises:
        ConfigError: the file is missing, unreadable or not TOML, or any value is
            invalid; one message per problem.
    """
    label = str(path)
    file_path = Path(path)
    environ: Mapping[str, str] = os.environ if env is None else env

    # pydantic-settings silently ignores a missing file and lets tomllib errors escape
    # unlabelled, so parse once up front for precise messages.
    try:
        tomllib.loads(file_path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(label, [("", "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError(label, [("", "is a directory, not a file")]) from None
    except OSError as exc:
        raise ConfigError(label, [("", f"cannot read file: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(label, [("", "invalid TOML: file is not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(label, [("", f"invalid TOML: {exc}")]) from None

    class _FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=file_path)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            env_source = env_settings if env is None else _MappingEnvSource(settings_cls, environ)
            return init_settings, env_source, TomlConfigSettingsSource(settings_cls)

    def env_var_for(loc: Sequence[str | int]) -> str | None:
        return _env_var_for(loc, environ)

    # `from None` throughout: a chained ValidationError prints input values, which can
    # include the password.
    try:
        return _FileSettings()
    except ValidationError as exc:
        errors, origins = convert_validation_error(exc, label, Settings, env_var_for)
        raise ConfigError(label, errors, origins) from None
    except SettingsError as exc:
        raise convert_settings_error(exc, label, env_var_for) from None
    except tomllib.TOMLDecodeError as exc:  # the file changed since it was checked
        raise ConfigError(label, [("", f"invalid TOML: {exc}")]) from None


def _env_var_for(loc: Sequence[str | int], environ: Mapping[str, str]) -> str | None:
    """The environment variable that supplied the value at `loc`, if one did."""
    names = {name.upper(): name for name in environ}
    # Longest prefix first: CONDUYT_BRIDGE_MQTT__URL beats a whole-section JSON value.
    for end in range(len(loc), 0, -1):
        candidate = ENV_PREFIX + _ENV_DELIMITER.join(str(p) for p in loc[:end]).upper()
        if candidate in names:
            return names[candidate]
    return None


def redacted_dump(settings: Settings) -> dict[str, Any]:
    """The settings as plain JSON-compatible data, for `--check` output.

    `mqtt.password` is `"***"` when set and `""` otherwise; the contents of a
    `password_file` never appear (only its path).
    """
    data = settings.model_dump(mode="json")
    data["mqtt"]["password"] = "***" if settings.mqtt.password.get_secret_value() else ""
    return data
