"""The `[bridge]`, `[mqtt]`, `[homeassistant]` and `[http]` sections of the configuration.

Keys and defaults are documented in `docs/architecture.md` §8 and the README. Every
model forbids unknown keys so that a typo such as `pasword` is reported instead of
ignored; file paths (`password_file`, `tls_*`) are read at validation time so that an
unreadable one fails at start (exit code 2) rather than at the first connect.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from conduyt_bridge.app.config_errors import ConfigProblems, Location
from conduyt_bridge.app.config_ports import split_host_port
from conduyt_bridge.northbound.conduyt.topics import bridge_id_problem, default_bridge_id
from conduyt_bridge.northbound.mqtt.urls import redact_url

__all__ = [
    "CLIENT_ID_PREFIX",
    "DEFAULT_ALLOWED_PORTS",
    "BridgeSection",
    "HomeAssistantSection",
    "HomieSection",
    "HttpSection",
    "MqttSection",
    "SparkplugSection",
    "default_client_id",
    "empty_to_none",
]


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


def empty_to_none(value: Any) -> Any:
    """None for a blank string (an optional key left empty), else `value` as it is."""
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


DEFAULT_ALLOWED_PORTS = ("/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*", "sim://*")
"""`[bridge] allowed_ports` by default: USB serial adapters, USB-CDC boards and simulated
boards; network ports (`tcp://`, `socket://`, `rfc2217://`, `listen://`) only when listed."""


class BridgeSection(BaseModel):
    """`[bridge]`: this bridge's id in a fleet, topic root, logging and health reporting.

    `id` names the bridge's own topics `{base}/bridge/{id}/...` and its claims on boards
    (`docs/fleet.md` §1, §2): 1-64 characters of `[A-Za-z0-9_-]`, not `owned`; default the
    host name made topic-safe (`socket.gethostname()`). Raises pydantic's
    `ValidationError` for an invalid id.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=default_bridge_id)
    base_topic: str = "conduyt"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    health_interval_s: float = Field(default=30.0, gt=0)
    allow_remote_config: bool = True
    """Whether the request API may change the configuration (`docs/requests.md` §5); the
    broker's ACL on `{base}/bridge/+/request/#` is the access control."""
    allowed_ports: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_PORTS))
    """`fnmatch` globs of the ports `device/add` and `device/options` may open
    (`docs/requests.md` §5); a port matching none is refused."""

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        problem = bridge_id_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("base_topic")
    @classmethod
    def _check_base_topic(cls, value: str) -> str:
        return _topic_prefix(value, "base topic")


CLIENT_ID_PREFIX = "conduyt-bridge"
"""`[mqtt] client_id` when not set: `conduyt-bridge-{[bridge] id}` in `Settings`
(`default_client_id`), so two bridges left at their defaults never share a client id."""


def default_client_id(bridge_id: str) -> str:
    """The client id of a bridge whose `[mqtt] client_id` is not set (`docs/fleet.md` §1)."""
    return f"{CLIENT_ID_PREFIX}-{bridge_id}"


class MqttSection(BaseModel):
    """`[mqtt]`: broker connection.

    `client_id` left unset (neither in the file nor in the environment) becomes
    `default_client_id([bridge] id)` once the whole `Settings` is validated; alone, this
    model defaults it to `CLIENT_ID_PREFIX`. Relative file paths (`password_file`,
    `tls_*`) are resolved against the working directory of the process, not the config
    file's directory.
    """

    model_config = ConfigDict(extra="forbid")

    url: str = "mqtt://localhost:1883"
    client_id: str = Field(default=CLIENT_ID_PREFIX, min_length=1)
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
        return empty_to_none(value)

    @model_validator(mode="after")
    def _check_secrets(self) -> Self:
        problems: list[tuple[Location, str]] = []
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
            raise ConfigProblems(problems)
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


MIN_TOKEN_CHARS = 16
"""Shortest `[http] token` accepted: a guessable token guards nothing."""


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1); False for `""`
    (all interfaces) and every other name or address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpSection(BaseModel):
    """`[http]`: the health/metrics endpoint and the web console; `listen = ""` (the
    default) turns it off. `token` (at least `MIN_TOKEN_CHARS` characters) guards the
    console and `/api/status`; any `listen` address that is not loopback requires one
    (`docs/console.md` §4)."""

    model_config = ConfigDict(extra="forbid")

    listen: str = ""
    token: SecretStr = SecretStr("")

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        value = value.strip()
        if value:
            split_host_port(value)
        return value

    @model_validator(mode="after")
    def _check_token(self) -> Self:
        token = self.token.get_secret_value()
        if token and len(token) < MIN_TOKEN_CHARS:
            raise ConfigProblems(
                [
                    (
                        ("token",),
                        f"must be at least {MIN_TOKEN_CHARS} characters "
                        "(e.g. the output of `openssl rand -hex 16`)",
                    )
                ]
            )
        if self.listen and not token and not is_loopback_host(self.host):
            shown = self.host or "all interfaces"
            raise ConfigProblems(
                [
                    (
                        ("token",),
                        f"listen address {shown!r} is reachable from other hosts: set "
                        "[http] token (or listen on 127.0.0.1)",
                    )
                ]
            )
        return self

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
        return split_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        """TCP port to bind, 1..65535.

        Raises:
            ValueError: the endpoint is off (`listen` is empty).
        """
        return split_host_port(self.listen)[1]


class SparkplugSection(BaseModel):
    """`[sparkplug]`: the Sparkplug B edge node (`docs/sparkplug.md` §1); off by default.

    `group_id`, `edge_node_id` and `primary_host_id` are Sparkplug ids: UTF-8 without `/`,
    `+`, `#` (Sparkplug 3.0 §4.1.1); `edge_node_id` unset (None) means `[bridge] id`, so
    every bridge of a fleet is its own edge node (`docs/sparkplug.md` §1);
    `primary_host_id = ""` means no primary host (the node is born at once);
    `stats_interval_s` is how often changed node counters go out (s).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    group_id: str = "conduyt"
    edge_node_id: str | None = None
    primary_host_id: str = ""
    stats_interval_s: float = Field(default=30.0, gt=0)

    @field_validator("group_id", "edge_node_id", "primary_host_id")
    @classmethod
    def _check_ids(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or (info.field_name == "primary_host_id" and not value):
            return value
        if not value:
            raise ValueError("must not be empty")
        if any(c in value for c in "/+#\x00"):
            raise ValueError(f"must not contain '/', '+', '#' or NUL (got {value!r})")
        return value


_HOMIE_ID = re.compile(r"[a-z0-9-]+")


class HomieSection(BaseModel):
    """`[homie]`: the Homie 5 root device and its children (`docs/homie.md` §1); off by
    default.

    `prefix` is the Homie domain (the first topic level, `homie/5/…`); `device_id` the
    root device's ID (`""`: the MQTT client id made a Homie ID). Both are Homie IDs:
    only `a`-`z`, `0`-`9` and `-` (the Homie convention, "Topic IDs").
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    prefix: str = "homie"
    device_id: str = ""

    @field_validator("prefix", "device_id")
    @classmethod
    def _check_homie_id(cls, value: str, info: ValidationInfo) -> str:
        if info.field_name == "device_id" and not value:
            return value
        if not _HOMIE_ID.fullmatch(value):
            raise ValueError(
                f"must be a Homie ID: only a-z, 0-9 and '-', not empty (got {value!r})"
            )
        return value
