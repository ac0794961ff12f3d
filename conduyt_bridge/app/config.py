"""Configuration: pydantic-settings models, the TOML + environment loader and its errors.

The file is TOML (see `docs/architecture.md` §8); every key can be overridden from the
environment as `CONDUYT_BRIDGE_<SECTION>__<KEY>` (`devices` only as a whole JSON list). Every model
forbids unknown keys so that a typo such as `pasword` is reported instead of ignored.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

__all__ = [
    "ENV_PREFIX",
    "BridgeSection",
    "ConfigError",
    "DatastreamOptions",
    "DeviceConfig",
    "HomeAssistantSection",
    "HttpSection",
    "MqttSection",
    "PinSubscription",
    "PortKind",
    "Settings",
    "load_settings",
    "redacted_dump",
]

ENV_PREFIX = "CONDUYT_BRIDGE_"
RESERVED_DEVICE_ID = "bridge"
"""No board may be called this: `{base}/bridge/...` are the bridge's own topics."""
_ENV_DELIMITER = "__"

PortKind = Literal["serial", "socket", "rfc2217", "listen", "sim"]

_DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_MCU_ID_RE = re.compile(r"^[0-9a-fA-F]{1,16}$")
_SLUG_BAD_RE = re.compile(r"[^A-Za-z0-9_-]+")
_PORT_SCHEMES: dict[str, PortKind] = {
    "socket": "socket",
    "rfc2217": "rfc2217",
    "listen": "listen",
    "sim": "sim",
}
"""URL schemes a device `port` may use; a port without `://` is a serial device path.
A new transport is one entry here (plus its `PortKind` and transport class); any other
scheme is a config error."""

_SCHEME_HINTS: dict[str, str] = {
    "tcp": (
        "a board with the Conduyt TCP transport connects to the bridge: use "
        "'listen://0.0.0.0:5000'; for a serial-over-TCP server use 'socket://host:port'"
    ),
}
"""Advice for schemes people try that mean something else here."""


class ConfigError(Exception):
    """A configuration that cannot be used.

    `str()` is one line per problem, `<origin>: <dotted.key>: <reason>`, where the
    origin is the config file or, for a value taken from the environment, `env <NAME>`.
    No line ever contains a password.

    Attributes:
        path: the config file as the caller named it.
        errors: `(dotted key, reason)` per problem; the key is `""` for a problem with
            the file as a whole (missing, unreadable, not TOML).
        origins: where each problem's value came from, parallel to `errors`.
    """

    def __init__(
        self,
        path: str | Path,
        errors: Sequence[tuple[str, str]],
        origins: Sequence[str] | None = None,
    ) -> None:
        self.path = str(path)
        self.errors: list[tuple[str, str]] = list(errors)
        self.origins: list[str] = (
            list(origins) if origins is not None else [self.path] * len(self.errors)
        )
        super().__init__(self._render())

    def _render(self) -> str:
        lines = []
        for (key, reason), origin in zip(self.errors, self.origins, strict=True):
            lines.append(f"{origin}: {key}: {reason}" if key else f"{origin}: {reason}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._render()


class _Problems(ValueError):
    """Validation problems located *below* the model whose validator raises them.

    A model validator can only fail the model as a whole; pydantic keeps the raised
    exception in the error's `ctx`, so `load_settings` reads `items` from it to point
    at the exact key (`devices[1].id`) and to report several problems at once.
    """

    def __init__(self, items: Sequence[tuple[tuple[str | int, ...], str]]) -> None:
        self.items = list(items)
        super().__init__("; ".join(reason for _, reason in self.items))


def _slugify(text: str) -> str:
    return _SLUG_BAD_RE.sub("-", text).strip("-")


def redact_url(url: str) -> str:
    """`url` with its userinfo (which may hold a password) replaced by `***`; everything
    else in a URL is safe to echo back in a log line or an error."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _topic_prefix(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} must not be empty")
    if "+" in value or "#" in value:
        raise ValueError(f"must not contain the MQTT wildcards '+' or '#' (got {value!r})")
    if value.startswith("/") or value.endswith("/"):
        raise ValueError(f"must not start or end with '/' (got {value!r})")
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _empty_to_none(value: Any) -> Any:
    # An empty env var (FOO=) or `tls_ca = ""` means "not set"; pydantic would otherwise
    # turn "" into Path(".") and silently enable TLS with the working directory as CA.
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _unreadable_file(path: Path | None) -> str | None:
    """Why `path` (if set) cannot be read, with what to check; None if it can."""
    if path is None:
        return None
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        if isinstance(exc, PermissionError):
            advice = "the user running the bridge needs read permission"
        elif isinstance(exc, FileNotFoundError):
            advice = (
                f"relative paths are taken from the working directory '{Path.cwd()}'"
                if not path.is_absolute()
                else "check the path"
            )
        else:
            advice = "it must be a PEM file"
        return f"cannot read '{path}': {exc.strerror or exc}; {advice}"
    return None


class BridgeSection(BaseModel):
    """`[bridge]`: topic root, logging and health reporting."""

    model_config = ConfigDict(extra="forbid")

    base_topic: str = "conduyt"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    health_interval_s: float = Field(default=30.0, gt=0)

    @field_validator("base_topic")
    @classmethod
    def _check_base_topic(cls, value: str) -> str:
        return _topic_prefix(value, "base topic")


class MqttSection(BaseModel):
    """`[mqtt]`: broker connection.

    Relative file paths (`password_file`, `tls_*`) are resolved against the working
    directory of the process, not the config file's directory.
    """

    model_config = ConfigDict(extra="forbid")

    url: str = "mqtt://localhost:1883"
    client_id: str = Field(default="conduyt-bridge", min_length=1)
    username: str = ""
    password: SecretStr = SecretStr("")
    password_file: Path | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    payload_format: Literal["plain", "json"] = "plain"
    keepalive_s: int = Field(default=60, ge=0, le=65535)
    session_expiry_s: int = Field(default=86400, ge=0, le=0xFFFFFFFF)
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_insecure: bool = False
    reconnect_max_s: float = Field(default=30.0, gt=0)

    # The password read from password_file at validation time, so that an unreadable file
    # fails at start (exit code 2) rather than at the first connect.
    _file_password: SecretStr | None = PrivateAttr(default=None)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip()
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            raise ValueError(
                f"port must be a number 1..65535 (got {redact_url(value)!r})"
            ) from None
        if parts.username is not None or parts.password is not None:
            # Never echo this URL: the part before '@' is likely a password.
            raise ValueError(
                "credentials in the URL are not supported: "
                "use mqtt.username and mqtt.password (or password_file)"
            )
        if parts.scheme.lower() not in ("mqtt", "mqtts") or "://" not in value:
            raise ValueError(f"scheme must be mqtt:// or mqtts:// (got {value!r})")
        if not parts.hostname:
            raise ValueError(f"host is missing (got {value!r})")
        if port == 0:
            raise ValueError(f"port must be a number 1..65535 (got {value!r})")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"must be scheme://host[:port] with nothing after it (got {value!r})")
        return value

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_number(cls, value: Any) -> Any:
        # `protocol = 5` (a TOML integer) is the obvious spelling; accept it.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("password_file", "tls_ca", "tls_cert", "tls_key", mode="before")
    @classmethod
    def _optional_path(cls, value: Any) -> Any:
        return _empty_to_none(value)

    @model_validator(mode="after")
    def _check_secrets(self) -> Self:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.tls_key is not None and self.tls_cert is None:
            problems.append((("tls_key",), "tls_key needs tls_cert"))
        for key in ("tls_ca", "tls_cert", "tls_key"):
            reason = _unreadable_file(getattr(self, key))
            if reason is not None:
                problems.append(((key,), reason))
        if self.password_file is not None:
            if self.password.get_secret_value():
                problems.append(
                    (("password_file",), "set either password or password_file, not both")
                )
            else:
                try:
                    text = self.password_file.read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                    problems.append(
                        (("password_file",), f"cannot read '{self.password_file}': {reason}")
                    )
                else:
                    if text:
                        self._file_password = SecretStr(text)
                    else:
                        problems.append((("password_file",), f"'{self.password_file}' is empty"))
        if problems:
            raise _Problems(problems)
        return self

    @property
    def host(self) -> str:
        """Broker host name or address (IPv6 without brackets)."""
        return urlsplit(self.url).hostname or ""

    @property
    def tls(self) -> bool:
        """True when the connection uses TLS: an `mqtts://` URL or `tls_ca` set."""
        return urlsplit(self.url).scheme.lower() == "mqtts" or self.tls_ca is not None

    @property
    def port(self) -> int:
        """Broker TCP port: from the URL, else 8883 with TLS and 1883 without."""
        port = urlsplit(self.url).port
        if port is not None:
            return port
        return 8883 if self.tls else 1883

    def resolved_password(self) -> str:
        """The password to send: the contents of `password_file` if set, else `password`.

        Returns `""` when neither is set. The file was read (and stripped) when the
        settings were validated; it is not re-read here.
        """
        if self._file_password is not None:
            return self._file_password.get_secret_value()
        return self.password.get_secret_value()


class HomeAssistantSection(BaseModel):
    """`[homeassistant]`: MQTT discovery."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    discovery_prefix: str = "homeassistant"
    discovery_mode: Literal["device", "components"] = "device"

    @field_validator("discovery_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return _topic_prefix(value, "discovery prefix")


class HttpSection(BaseModel):
    """`[http]`: the health/metrics endpoint; `listen = ""` (the default) turns it off."""

    model_config = ConfigDict(extra="forbid")

    listen: str = ""

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        value = value.strip()
        if value:
            _split_host_port(value)
        return value

    @property
    def enabled(self) -> bool:
        """True when `listen` is set."""
        return bool(self.listen)

    @property
    def host(self) -> str:
        """Address to bind (`""` = all interfaces; IPv6 without brackets).

        Raises:
            ValueError: the endpoint is off (`listen` is empty).
        """
        return _split_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        """TCP port to bind, 1..65535.

        Raises:
            ValueError: the endpoint is off (`listen` is empty).
        """
        return _split_host_port(self.listen)[1]


def _split_host_port(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"must be 'host:port', e.g. '0.0.0.0:9100' (got {text!r})")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address must be in brackets, e.g. '[::]:9100' (got {text!r})")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number 1..65535 (got {text!r})")
    return host, int(port_text)


class PinSubscription(BaseModel):
    """One `[[devices.pins]]` entry: a pin subscription set up after each handshake."""

    model_config = ConfigDict(extra="forbid")

    pin: int = Field(ge=0, le=255)
    mode: Literal["change", "rising", "falling", "analog_poll"]
    interval_ms: int = Field(default=100, ge=1, le=65535)
    threshold: int = Field(default=0, ge=0, le=65535)


class DatastreamOptions(BaseModel):
    """Per-datastream overrides, `[devices.datastreams.<name>]`."""

    model_config = ConfigDict(extra="forbid")

    expire_after_s: int | None = Field(default=None, gt=0)
    name: str | None = Field(default=None, min_length=1)


class _ParsedPort(typing.NamedTuple):
    kind: PortKind
    host: str  # network kinds only
    number: int  # network kinds only, else 0
    profile: str  # sim only


def _unknown_scheme_reason(scheme: str) -> str:
    known = ", ".join(f"'{name}://'" for name in sorted(_PORT_SCHEMES))
    reason = (
        f"unknown port scheme '{scheme}://': use one of {known} "
        "or a serial device path (e.g. '/dev/ttyUSB0')"
    )
    hint = _SCHEME_HINTS.get(scheme)
    if hint is None:
        close = difflib.get_close_matches(scheme, list(_PORT_SCHEMES), n=1)
        hint = f"did you mean '{close[0]}://'?" if close else None
    return f"{reason}; {hint}" if hint else reason


def _check_sim_profile(profile: str) -> None:
    """Raises ValueError for a profile the simulator does not have, with the closest one."""
    from conduyt_bridge.simulator.profiles import PROFILES

    if profile in PROFILES:
        return
    known = ", ".join(sorted(PROFILES))
    close = difflib.get_close_matches(profile, list(PROFILES), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ValueError(f"unknown simulator profile '{profile}'{hint}; profiles: {known}")


def _parse_port(port: str) -> _ParsedPort:
    """Classify a device port string.

    Raises:
        ValueError: the port is empty, its scheme is unknown, a network/sim URL is
            incomplete, or the simulator has no such profile.
    """
    if not port:
        raise ValueError("must not be empty")
    scheme, sep, rest = port.partition("://")
    scheme = scheme.lower() if sep else ""
    if not sep:
        return _ParsedPort("serial", "", 0, "")
    kind = _PORT_SCHEMES.get(scheme)
    if kind is None:
        raise ValueError(_unknown_scheme_reason(scheme))
    if kind == "sim":
        profile = rest.strip("/")
        if not profile:
            raise ValueError(f"sim:// needs a profile name, e.g. 'sim://thermostat' (got {port!r})")
        _check_sim_profile(profile)
        return _ParsedPort("sim", "", 0, profile)
    # The network kinds (socket, rfc2217, listen) need host:port.
    example = "listen://0.0.0.0:5000" if kind == "listen" else f"{scheme}://192.0.2.7:4000"
    try:
        parts = urlsplit(port)
        number = parts.port
    except ValueError:
        number = None
    if number is None or not 1 <= number <= 65535:
        raise ValueError(
            f"{scheme}:// needs a port number 1..65535, e.g. '{example}' (got {port!r})"
        )
    host = parts.hostname or ""
    # A listener may bind all interfaces with an empty host; a client needs a peer.
    if not host and kind != "listen":
        raise ValueError(f"{scheme}:// needs a host, e.g. '{example}' (got {port!r})")
    return _ParsedPort(kind, host, number, "")


class DeviceConfig(BaseModel):
    """One `[[devices]]` entry: a board and how to reach it."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    port: str
    baudrate: int = Field(default=115200, gt=0)
    mcu_id: str | None = None
    read_only: bool = False
    allow_raw: bool = True
    raw_mirror: bool = False
    allow_ota: bool = False
    pins: list[PinSubscription] = Field(default_factory=list)
    datastreams: dict[str, DatastreamOptions] = Field(default_factory=dict)
    command_timeout_ms: int = Field(default=1000, gt=0)
    hello_timeout_ms: int = Field(default=1000, gt=0)
    keepalive_s: float = Field(default=5.0, ge=0)
    keepalive_misses: int = Field(default=3, ge=1)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    string_encoding: Literal["u16_prefix", "raw", "nul"] = "u16_prefix"

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str | None) -> str | None:
        if value is not None and not _DEVICE_ID_RE.match(value):
            raise ValueError(
                "must be 1-64 letters, digits, '_' or '-', starting with a letter or digit "
                f"(got {value!r})"
            )
        return value

    @field_validator("port")
    @classmethod
    def _check_port(cls, value: str) -> str:
        value = value.strip()
        _parse_port(value)
        return value

    @field_validator("mcu_id", mode="before")
    @classmethod
    def _mcu_id_empty(cls, value: Any) -> Any:
        return _empty_to_none(value)

    @field_validator("mcu_id")
    @classmethod
    def _check_mcu_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not _MCU_ID_RE.match(value):
            raise ValueError(
                f"must be a hex string of 1-16 digits, e.g. 'a1b2c3d4' (got {value!r})"
            )
        # The board reports raw bytes; comparing lowercase hex makes 'ABCD' match 'abcd'.
        return value.lower()

    @field_validator("datastreams")
    @classmethod
    def _check_datastream_names(
        cls, value: dict[str, DatastreamOptions]
    ) -> dict[str, DatastreamOptions]:
        if "" in value:
            raise ValueError("datastream names must not be empty")
        return value

    @model_validator(mode="after")
    def _check_device(self) -> Self:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.reconnect_max_s < self.reconnect_min_s:
            problems.append(
                (
                    ("reconnect_max_s",),
                    f"must be >= reconnect_min_s ({self.reconnect_min_s:g})",
                )
            )
        seen: dict[int, int] = {}
        for index, sub in enumerate(self.pins):
            if sub.pin in seen:
                problems.append(
                    (
                        ("pins", index, "pin"),
                        f"pin {sub.pin} is already subscribed by pins[{seen[sub.pin]}]",
                    )
                )
            else:
                seen[sub.pin] = index
        if self.id is None and not self.device_id:
            problems.append(
                (("port",), f"cannot derive a device id from port {self.port!r}: set id")
            )
        if problems:
            raise _Problems(problems)
        return self

    @property
    def port_kind(self) -> PortKind:
        """How the board is reached: a serial device path or one of the URL schemes."""
        return _parse_port(self.port).kind

    @property
    def net_address(self) -> tuple[str, int] | None:
        """`(host, port)` for socket://, rfc2217:// and listen:// ports, else None.

        For listen:// an empty host means all interfaces.
        """
        parsed = _parse_port(self.port)
        if parsed.kind in ("socket", "rfc2217", "listen"):
            return parsed.host, parsed.number
        return None

    @property
    def sim_profile(self) -> str | None:
        """The simulator profile name for a `sim://<profile>` port, else None."""
        parsed = _parse_port(self.port)
        return parsed.profile if parsed.kind == "sim" else None

    @property
    def device_id(self) -> str:
        """The id used in topics: `id` if set, else a slug derived from the port.

        Never derived from `mcu_id` alone (boards of one AVR model share it), except for
        listen:// ports, where the port says nothing about which board connected.
        Returns `""` only when nothing usable can be derived (validation rejects that).
        """
        if self.id is not None:
            return self.id
        parsed = _parse_port(self.port)
        if parsed.kind == "sim":
            return _slugify(parsed.profile)
        if parsed.kind == "listen":
            return f"mcu-{self.mcu_id}" if self.mcu_id else f"listen-{parsed.number}"
        if parsed.kind in ("socket", "rfc2217"):
            authority = self.port.partition("://")[2].split("?", 1)[0].split("/", 1)[0]
            return _slugify(authority)
        # Serial: the last path component is what users recognise (ttyUSB0, COM3, by-id name).
        last = re.split(r"[/\\]", self.port.rstrip("/\\"))[-1]
        return _slugify(last)


def _port_identity(device: DeviceConfig) -> tuple[str, ...]:
    """A key under which two devices would fight over the same port."""
    parsed = _parse_port(device.port)
    if parsed.kind in ("socket", "rfc2217"):
        # socket:// and rfc2217:// to one endpoint are still one TCP peer.
        return ("tcp", parsed.host.lower(), str(parsed.number))
    if parsed.kind == "listen":
        return ("listen", parsed.host.lower(), str(parsed.number))
    if parsed.kind == "sim":
        return ("sim", parsed.profile)
    return ("serial", device.port)


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
    def _check_devices(self) -> Self:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, device in enumerate(self.devices):
            groups.setdefault(_port_identity(device), []).append(index)
        for key, members in groups.items():
            if len(members) < 2 or key[0] == "sim":
                # Simulated boards share nothing: any number may run one profile.
                continue
            if key[0] == "listen":
                problems.extend(self._shared_listen_problems(members))
                continue
            for index in members[1:]:
                problems.append(
                    (
                        ("devices", index, "port"),
                        f"port {self.devices[index].port!r} is already used by "
                        f"devices[{members[0]}]",
                    )
                )
        # A derived id collides whenever the port does; one message per cause is enough.
        flagged = {loc[1] for loc, _ in problems}

        ids: dict[str, int] = {}
        for index, device in enumerate(self.devices):
            device_id = device.device_id
            if device_id == RESERVED_DEVICE_ID:
                # `{base}/bridge/...` are the bridge's own topics.
                field = "id" if device.id is not None else "port"
                problems.append(
                    (
                        ("devices", index, field),
                        "device id 'bridge' is reserved for {base}/bridge/ topics: "
                        "choose another id",
                    )
                )
                continue
            first = ids.setdefault(device_id, index)
            if first == index:
                continue
            if device.id is not None:
                problems.append(
                    (
                        ("devices", index, "id"),
                        f"duplicate device id {device_id!r}: also used by devices[{first}]",
                    )
                )
            elif index not in flagged:
                problems.append(
                    (
                        ("devices", index, "port"),
                        f"device id {device_id!r} derived from port {device.port!r} is also "
                        f"used by devices[{first}]: set a unique id",
                    )
                )
        if problems:
            problems.sort(key=lambda item: (item[0][1], str(item[0][2:])))
            raise _Problems(problems)
        return self

    def _shared_listen_problems(
        self, members: list[int]
    ) -> list[tuple[tuple[str | int, ...], str]]:
        # Boards on one listener are told apart only by the mcu_id in their HELLO_RESP.
        problems: list[tuple[tuple[str | int, ...], str]] = []
        mcu_ids: dict[str, int] = {}
        for index in members:
            device = self.devices[index]
            others = ", ".join(f"devices[{other}]" for other in members if other != index)
            if device.mcu_id is None:
                problems.append(
                    (
                        ("devices", index, "mcu_id"),
                        f"port {device.port!r} is shared with {others}: every device on a "
                        "shared listen port needs an mcu_id",
                    )
                )
                continue
            first = mcu_ids.setdefault(device.mcu_id, index)
            if first != index:
                problems.append(
                    (
                        ("devices", index, "mcu_id"),
                        f"mcu_id {device.mcu_id!r} is also used by devices[{first}] "
                        f"on the same listen port",
                    )
                )
                continue
            # A configured mcu_id matches every board whose id starts with it, so a prefix
            # of another device's mcu_id would claim that device's board too.
            shorter = next(
                (
                    (other_id, other)
                    for other_id, other in mcu_ids.items()
                    if other != index
                    and (device.mcu_id.startswith(other_id) or other_id.startswith(device.mcu_id))
                ),
                None,
            )
            if shorter is not None:
                other_id, other = shorter
                problems.append(
                    (
                        ("devices", index, "mcu_id"),
                        f"mcu_id {device.mcu_id!r} and {other_id!r} of devices[{other}] on the "
                        "same listen port are ambiguous: one is a prefix of the other",
                    )
                )
        return problems


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

    # `from None` throughout: a chained ValidationError prints input values, which can
    # include the password.
    try:
        return _FileSettings()
    except ValidationError as exc:
        errors, origins = _convert_validation_error(exc, label, environ)
        raise ConfigError(label, errors, origins) from None
    except SettingsError as exc:
        raise _convert_settings_error(exc, label, environ) from None
    except tomllib.TOMLDecodeError as exc:  # the file changed since it was checked
        raise ConfigError(label, [("", f"invalid TOML: {exc}")]) from None


def _format_key(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            quoted = '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
            out += f".{quoted}" if out else quoted
    return out


def _env_var_for(loc: Sequence[str | int], environ: Mapping[str, str]) -> str | None:
    """The environment variable that supplied the value at `loc`, if one did."""
    names = {name.upper(): name for name in environ}
    # Longest prefix first: CONDUYT_BRIDGE_MQTT__URL beats a whole-section JSON value.
    for end in range(len(loc), 0, -1):
        candidate = ENV_PREFIX + _ENV_DELIMITER.join(str(p) for p in loc[:end]).upper()
        if candidate in names:
            return names[candidate]
    return None


def _unwrap_model(annotation: Any, step: str | int) -> Any:
    """The type found one step (field name, list index or dict key) below `annotation`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                return _unwrap_model(arg, step)
        return None
    if origin is list:
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(step))
        return field.annotation if field is not None else None
    return None


def _unknown_key_reason(loc: Sequence[str | int]) -> str:
    """Reason for an unknown key, with the closest allowed key when there is one."""
    current: Any = Settings
    for step in loc[:-1]:
        current = _unwrap_model(current, step)
    while typing.get_origin(current) in (typing.Union, types.UnionType):
        current = next(a for a in typing.get_args(current) if a is not type(None))
    if isinstance(current, type) and issubclass(current, BaseModel) and loc:
        close = difflib.get_close_matches(str(loc[-1]), list(current.model_fields), n=1)
        if close:
            return f"unknown key (did you mean {close[0]!r}?)"
    return "unknown key"


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key_reason(error["loc"])
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a table"
    if kind == "value_error" and "error" in error.get("ctx", {}):
        # Our own messages, without pydantic's "Value error, " prefix.
        return str(error["ctx"]["error"])
    return str(error["msg"])


def _convert_validation_error(
    exc: ValidationError, label: str, environ: Mapping[str, str]
) -> tuple[list[tuple[str, str]], list[str]]:
    errors: list[tuple[str, str]] = []
    origins: list[str] = []
    for error in exc.errors(include_url=False):
        loc: tuple[str | int, ...] = tuple(error["loc"])
        problem = error.get("ctx", {}).get("error")
        items = (
            [(loc + sub, reason) for sub, reason in problem.items]
            if isinstance(problem, _Problems)
            else [(loc, _reason(error))]
        )
        for item_loc, reason in items:
            var = _env_var_for(item_loc, environ)
            errors.append((_format_key(item_loc), reason))
            origins.append(f"env {var}" if var else label)
    return errors, origins


def _convert_settings_error(
    exc: SettingsError, label: str, environ: Mapping[str, str]
) -> ConfigError:
    # pydantic-settings raises this (not a ValidationError) when a list or table value
    # from the environment is not valid JSON; only the field name is in the message.
    match = re.search(r'field "([^"]+)"', str(exc))
    field = match.group(1) if match else ""
    var = _env_var_for((field,), environ) if field else None
    reason = "cannot parse the value from the environment (a list or table must be JSON)"
    return ConfigError(label, [(field, reason)], [f"env {var}" if var else "environment"])


def redacted_dump(settings: Settings) -> dict[str, Any]:
    """The settings as plain JSON-compatible data, for `--check` output.

    `mqtt.password` is `"***"` when set and `""` otherwise; the contents of a
    `password_file` never appear (only its path).
    """
    data = settings.model_dump(mode="json")
    data["mqtt"]["password"] = "***" if settings.mqtt.password.get_secret_value() else ""
    return data
