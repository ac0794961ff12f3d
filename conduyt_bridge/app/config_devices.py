"""The `[[devices]]` entries of the configuration: one board each, and the rules between them.

Keys and defaults are documented in `docs/architecture.md` §8 and the README; the `port`
forms are in `docs/architecture.md` §1 (parsed by `conduyt_bridge.app.config_ports`).
`device_list_problems` checks the list as a whole: no two devices on one port (except
on a shared `listen://` port, where every board needs a distinct `mcu_id`) and no two
devices with one id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from conduyt_bridge.app.config_entities import READ_ONLY_ENTITIES, EntityList, entity_specs
from conduyt_bridge.app.config_errors import ConfigProblems, Location
from conduyt_bridge.app.config_ports import PortKind, parse_port, port_identity, slugify
from conduyt_bridge.app.config_sections import empty_to_none
from conduyt_bridge.core.entities.spec import EntitySpec
from conduyt_bridge.device.session_config import MAX_READ_COALESCE_MS
from conduyt_bridge.northbound.homeassistant.classes import EntityCategory, StateClass
from conduyt_bridge.northbound.homeassistant.shaping import datastream_problems, option_problems

__all__ = [
    "RESERVED_DEVICE_ID",
    "DatastreamOptions",
    "DeviceConfig",
    "PinSubscription",
    "device_list_problems",
]

RESERVED_DEVICE_ID = "bridge"
"""No board may be called this: `{base}/bridge/...` are the bridge's own topics."""

_DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_MCU_ID_RE = re.compile(r"^[0-9a-fA-F]{1,16}$")


class PinSubscription(BaseModel):
    """One `[[devices.pins]]` entry: a pin subscription set up after each handshake."""

    model_config = ConfigDict(extra="forbid")

    pin: int = Field(ge=0, le=255)
    mode: Literal["change", "rising", "falling", "analog_poll"]
    interval_ms: int = Field(default=100, ge=1, le=65535)
    threshold: int = Field(default=0, ge=0, le=65535)


_ICON_RE = re.compile(r"^mdi:[a-z0-9]+(?:-[a-z0-9]+)*$")


class DatastreamOptions(BaseModel):
    """Per-datastream overrides, `[devices.datastreams.<name>]`: the HA entity's name,
    `expire_after_s` and its shaping (`docs/home-assistant.md`, "Shaping datastream
    entities"; checked here whatever the board by `shaping.option_problems`, and against
    the board's datastream by `DeviceConfig` for `sim://` boards and by discovery)."""

    model_config = ConfigDict(extra="forbid")

    expire_after_s: int | None = Field(default=None, gt=0)
    name: str | None = Field(default=None, min_length=1)
    device_class: str | None = Field(default=None, min_length=1)
    state_class: StateClass | None = None
    unit: str | None = Field(default=None, min_length=1, max_length=32)
    icon: str | None = None
    entity_category: EntityCategory | None = None
    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)
    # HA's smallest number step (number.mqtt docs).
    step: float | None = Field(default=None, ge=0.001, allow_inf_nan=False)
    enabled_by_default: bool | None = None

    @field_validator("icon")
    @classmethod
    def _check_icon(cls, value: str | None) -> str | None:
        if value is not None and not _ICON_RE.match(value):
            raise ValueError(
                "must be a Material Design Icons name 'mdi:<name>' in lowercase letters, "
                f"digits and '-', e.g. 'mdi:thermometer' (got {value!r})"
            )
        return value

    @model_validator(mode="after")
    def _check_shaping(self) -> Self:
        problems = option_problems(self)
        if problems:
            raise ConfigProblems([((key,), message) for key, message in problems])
        return self


class DeviceConfig(BaseModel):
    """One `[[devices]]` entry: a board and how to reach it."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    name: str | None = Field(default=None, min_length=1, max_length=64)
    discovery_id: str | None = None
    port: str
    baudrate: int = Field(default=115200, gt=0)
    mcu_id: str | None = None
    read_only: bool = False
    allow_raw: bool = True
    raw_mirror: bool = False
    allow_ota: bool = False
    pins: list[PinSubscription] = Field(default_factory=list)
    datastreams: dict[str, DatastreamOptions] = Field(default_factory=dict)
    entities: EntityList = Field(default_factory=list)
    """`[[devices.entities]]`: pins and modules as entities (`docs/entities.md`)."""
    command_timeout_ms: int = Field(default=1000, gt=0)
    hello_timeout_ms: int = Field(default=1000, gt=0)
    keepalive_s: float = Field(default=5.0, ge=0)
    keepalive_misses: int = Field(default=3, ge=1)
    read_coalesce_ms: float = Field(default=1.0, ge=0, le=MAX_READ_COALESCE_MS)
    """While the board streams, pause reading its link this many ms after a small read
    (0: never; `conduyt_bridge.device.coalescing`)."""
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    string_encoding: Literal["u16_prefix", "raw", "nul"] = "u16_prefix"

    @field_validator("id", "discovery_id")
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
        parse_port(value)
        return value

    @field_validator("mcu_id", mode="before")
    @classmethod
    def _mcu_id_empty(cls, value: Any) -> Any:
        return empty_to_none(value)

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
        problems: list[tuple[Location, str]] = []
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
        if self.read_only and self.entities:
            problems.append((("entities",), READ_ONLY_ENTITIES))
        if self.id is None and not self.device_id:
            problems.append(
                (("port",), f"cannot derive a device id from port {self.port!r}: set id")
            )
        problems += self._sim_shaping_problems()
        if problems:
            raise ConfigProblems(problems)
        return self

    def _sim_shaping_problems(self) -> list[tuple[Location, str]]:
        """The datastream options checked against a `sim://` board's datastreams (its
        HELLO is known now; a real board's is checked when it connects)."""
        profile = self.sim_profile
        if profile is None or not self.datastreams:
            return []
        from conduyt_bridge.simulator.profiles import get_profile

        declared = {ds.name: ds for ds in get_profile(profile).hello.datastreams}
        problems: list[tuple[Location, str]] = []
        for name, options in self.datastreams.items():
            ds = declared.get(name)
            if ds is not None:
                problems += [
                    (("datastreams", name, key), message)
                    for key, message in datastream_problems(ds, options, self.read_only)
                ]
        return problems

    @property
    def port_kind(self) -> PortKind:
        """How the board is reached: a serial device path or one of the URL schemes."""
        return parse_port(self.port).kind

    @property
    def net_address(self) -> tuple[str, int] | None:
        """`(host, port)` for socket://, rfc2217://, tcp:// and listen:// ports, else None.

        For listen:// an empty host means all interfaces.
        """
        parsed = parse_port(self.port)
        if parsed.kind in ("socket", "rfc2217", "tcp", "listen"):
            return parsed.host, parsed.number
        return None

    @property
    def entity_specs(self) -> tuple[EntitySpec, ...]:
        """The declared entities as the core reads them (`docs/entities.md`)."""
        return entity_specs(self.entities)

    @property
    def sim_profile(self) -> str | None:
        """The simulator profile name for a `sim://<profile>` port, else None."""
        parsed = parse_port(self.port)
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
        parsed = parse_port(self.port)
        if parsed.kind == "sim":
            return slugify(parsed.profile)
        if parsed.kind == "listen":
            return f"mcu-{self.mcu_id}" if self.mcu_id else f"listen-{parsed.number}"
        if parsed.kind in ("socket", "rfc2217", "tcp"):
            authority = self.port.partition("://")[2].split("?", 1)[0].split("/", 1)[0]
            return slugify(authority)
        # Serial: the last path component is what users recognise (ttyUSB0, COM3, by-id name).
        last = re.split(r"[/\\]", self.port.rstrip("/\\"))[-1]
        return slugify(last)


def device_list_problems(devices: Sequence[DeviceConfig]) -> list[tuple[Location, str]]:
    """What is wrong with `devices` as a whole, located as `("devices", index, key)` and
    in device order: shared ports, duplicate or reserved device ids, and `mcu_id`s that
    cannot tell apart the boards on a shared `listen://` port."""
    problems: list[tuple[Location, str]] = []
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, device in enumerate(devices):
        groups.setdefault(port_identity(device.port), []).append(index)
    for key, members in groups.items():
        if len(members) < 2 or key[0] == "sim":
            # Simulated boards share nothing: any number may run one profile.
            continue
        if key[0] == "listen":
            problems.extend(_shared_listen_problems(devices, members))
            continue
        for index in members[1:]:
            problems.append(
                (
                    ("devices", index, "port"),
                    f"port {devices[index].port!r} is already used by devices[{members[0]}]",
                )
            )
    # A derived id collides whenever the port does; one message per cause is enough.
    flagged = {loc[1] for loc, _ in problems}

    ids: dict[str, int] = {}
    for index, device in enumerate(devices):
        device_id = device.device_id
        if device_id == RESERVED_DEVICE_ID:
            # `{base}/bridge/...` are the bridge's own topics.
            field = "id" if device.id is not None else "port"
            problems.append(
                (
                    ("devices", index, field),
                    "device id 'bridge' is reserved for {base}/bridge/ topics: choose another id",
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
    problems.extend(_discovery_id_problems(devices))
    problems.sort(key=lambda item: (item[0][1], str(item[0][2:])))
    return problems


def _discovery_id_problems(devices: Sequence[DeviceConfig]) -> list[tuple[Location, str]]:
    # Home Assistant's node and unique ids are built from `discovery_id or device_id`
    # (`docs/requests.md` §3): two boards with one would share their HA entities.
    problems: list[tuple[Location, str]] = []
    keys: dict[str, int] = {}
    for index, device in enumerate(devices):
        key = device.discovery_id or device.device_id
        first = keys.setdefault(key, index)
        if first != index and device.discovery_id is not None:
            problems.append(
                (
                    ("devices", index, "discovery_id"),
                    f"discovery_id {key!r} is also the Home Assistant id of devices[{first}]",
                )
            )
        elif first != index and devices[first].discovery_id is not None:
            problems.append(
                (
                    ("devices", index, "id"),
                    f"device id {key!r} is the discovery_id of devices[{first}] (a board "
                    "renamed from it keeps its Home Assistant entities): choose another id",
                )
            )
    return problems


def _shared_listen_problems(
    devices: Sequence[DeviceConfig], members: list[int]
) -> list[tuple[Location, str]]:
    # Boards on one listener are told apart only by the mcu_id in their HELLO_RESP.
    problems: list[tuple[Location, str]] = []
    mcu_ids: dict[str, int] = {}
    for index in members:
        device = devices[index]
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
