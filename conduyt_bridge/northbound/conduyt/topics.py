"""MQTT topic names (pure): layout per `docs/topics.md`.

`{base}/{dev}/...` for boards, `{base}/bridge/...` for the bridge itself. Datastream slugs
are built from name and unit; module names from HELLO_RESP, suffixed with the module id
when two modules share a name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from conduyt_bridge.protocol.hello import DatastreamDescriptor, ModuleDescriptor

_UNIT_WORDS = {"%": "percent", "°": "deg", "/": "_per_"}
_SLUG_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def slug_part(text: str) -> str:
    """`text` with `%`→`percent`, `°`→`deg`, `/`→`_per_`, and any other character outside
    `[A-Za-z0-9_.-]` → `_` (`docs/topics.md` §1)."""
    for char, word in _UNIT_WORDS.items():
        text = text.replace(char, word)
    return _SLUG_BAD.sub("_", text)


def datastream_slug(name: str, unit: str) -> str:
    """Topic slug of a datastream: name, then `_` and the unit when the unit is not empty.

    `("temperature", "celsius")` → `temperature_celsius`; `("humidity", "%")` →
    `humidity_percent`; `("setpoint", "")` → `setpoint`.
    """
    return slug_part(name) + (f"_{slug_part(unit)}" if unit else "")


def datastream_slugs(
    datastreams: Iterable[DatastreamDescriptor],
) -> dict[str, DatastreamDescriptor]:
    """Slug → datastream for a board; a slug that repeats gets `_<index>` appended."""
    out: dict[str, DatastreamDescriptor] = {}
    items = list(datastreams)
    counts: dict[str, int] = {}
    for ds in items:
        slug = datastream_slug(ds.name, ds.unit)
        counts[slug] = counts.get(slug, 0) + 1
    for ds in items:
        slug = datastream_slug(ds.name, ds.unit)
        out[f"{slug}_{ds.index}" if counts[slug] > 1 else slug] = ds
    return out


def module_slugs(modules: Iterable[ModuleDescriptor]) -> dict[str, ModuleDescriptor]:
    """Topic name → module: the HELLO name, or `name_<module_id>` when names repeat."""
    items = list(modules)
    counts: dict[str, int] = {}
    for m in items:
        counts[m.name] = counts.get(m.name, 0) + 1
    out: dict[str, ModuleDescriptor] = {}
    for m in items:
        name = slug_part(m.name) or f"module{m.module_id}"
        out[f"{name}_{m.module_id}" if counts[m.name] > 1 else name] = m
    return out


def find_module(slugs: Mapping[str, ModuleDescriptor], ref: str) -> ModuleDescriptor | None:
    """Module by topic name, or by its numeric module id (`"2"`), `docs/topics.md` §1."""
    if ref in slugs:
        return slugs[ref]
    if ref.isdigit():
        return next((m for m in slugs.values() if m.module_id == int(ref)), None)
    return None


@dataclass(frozen=True, slots=True)
class BridgeTopics:
    """Topics of the bridge itself under `{base}/bridge/`."""

    base: str

    @property
    def state(self) -> str:
        """`online`/`offline` retained; `offline` is the MQTT Will."""
        return f"{self.base}/bridge/state"

    @property
    def devices(self) -> str:
        """Retained JSON inventory of boards."""
        return f"{self.base}/bridge/devices"

    @property
    def health(self) -> str:
        """Periodic JSON health report."""
        return f"{self.base}/bridge/health"

    def device(self, dev: str) -> DeviceTopics:
        """Topics of board `dev`."""
        return DeviceTopics(self.base, dev)


@dataclass(frozen=True, slots=True)
class DeviceTopics:
    """Topics of one board, `{base}/{dev}/...` (`docs/topics.md` §3)."""

    base: str
    dev: str

    @property
    def prefix(self) -> str:
        """`{base}/{dev}`."""
        return f"{self.base}/{self.dev}"

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def hello(self) -> str:
        return f"{self.prefix}/hello"

    @property
    def meta(self) -> str:
        return f"{self.prefix}/meta"

    @property
    def error(self) -> str:
        return f"{self.prefix}/error"

    @property
    def log(self) -> str:
        """Text lines the board printed between frames (`docs/serial-text.md`)."""
        return f"{self.prefix}/log"

    def ds(self, slug: str) -> str:
        return f"{self.prefix}/ds/{slug}"

    def ds_set(self, slug: str) -> str:
        return f"{self.prefix}/ds/{slug}/set"

    def pin(self, n: int) -> str:
        return f"{self.prefix}/pin/{n}"

    def pin_set(self, n: int) -> str:
        return f"{self.prefix}/pin/{n}/set"

    def pin_mode_set(self, n: int) -> str:
        return f"{self.prefix}/pin/{n}/mode/set"

    def pin_get(self, n: int) -> str:
        return f"{self.prefix}/pin/{n}/get"

    def pin_subscribe_set(self, n: int) -> str:
        return f"{self.prefix}/pin/{n}/subscribe/set"

    def module_command(self, mod: str, command: str) -> str:
        return f"{self.prefix}/module/{mod}/{command}"

    def module_result(self, mod: str, command: str) -> str:
        return f"{self.prefix}/module/{mod}/{command}/result"

    def module_event(self, mod: str, event: str) -> str:
        return f"{self.prefix}/module/{mod}/event/{event}"

    def cmd(self, type_: int | None = None) -> str:
        """Raw command topic; `type_` as two lower-case hex digits, or the bare form."""
        return f"{self.prefix}/cmd" if type_ is None else f"{self.prefix}/cmd/{type_:02x}"

    def evt(self, type_: int) -> str:
        """Raw event topic, TYPE as two lower-case hex digits (§9.1 of the protocol doc)."""
        return f"{self.prefix}/evt/{type_:02x}"

    def command_filters(self) -> list[str]:
        """Subscription filters for every command topic of this board."""
        p = self.prefix
        return [
            f"{p}/ds/+/set",
            f"{p}/pin/+/set",
            f"{p}/pin/+/mode/set",
            f"{p}/pin/+/get",
            f"{p}/pin/+/subscribe/set",
            f"{p}/module/+/+",
            f"{p}/cmd",
            f"{p}/cmd/+",
        ]


class CommandKind(StrEnum):
    """The kinds of command topic (`docs/topics.md` §4)."""

    DS_SET = "ds_set"
    PIN_SET = "pin_set"
    PIN_MODE = "pin_mode"
    PIN_GET = "pin_get"
    PIN_SUBSCRIBE = "pin_subscribe"
    MODULE = "module"
    RAW = "raw"


@dataclass(frozen=True, slots=True)
class CommandTopic:
    """A parsed command topic: board, kind and its parts.

    `target` is the datastream slug (DS_SET), the pin text (PIN_*), the module reference
    (MODULE) or the type hex text, possibly empty (RAW); `command` is the module command.
    """

    dev: str
    kind: CommandKind
    target: str = ""
    command: str = ""


def parse_command_topic(base: str, topic: str) -> CommandTopic | None:
    """Parse `topic` under `base` into a CommandTopic; None if it is no command topic."""
    if not topic.startswith(base + "/"):
        return None
    parts = topic[len(base) + 1 :].split("/")
    if len(parts) < 2 or not parts[0] or parts[0] == "bridge":
        return None
    dev, rest = parts[0], parts[1:]
    match rest:
        case ["ds", slug, "set"]:
            return CommandTopic(dev, CommandKind.DS_SET, slug)
        case ["pin", n, "set"]:
            return CommandTopic(dev, CommandKind.PIN_SET, n)
        case ["pin", n, "mode", "set"]:
            return CommandTopic(dev, CommandKind.PIN_MODE, n)
        case ["pin", n, "get"]:
            return CommandTopic(dev, CommandKind.PIN_GET, n)
        case ["pin", n, "subscribe", "set"]:
            return CommandTopic(dev, CommandKind.PIN_SUBSCRIBE, n)
        case ["module", mod, command]:
            return CommandTopic(dev, CommandKind.MODULE, mod, command)
        case ["cmd"]:
            return CommandTopic(dev, CommandKind.RAW, "")
        case ["cmd", type_hex]:
            return CommandTopic(dev, CommandKind.RAW, type_hex)
    return None
