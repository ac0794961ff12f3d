"""MQTT topic names of the Conduyt layout (pure), per `docs/topics.md`.

`{base}/{dev}/...` for boards, `{base}/bridge/...` for the bridge itself. Datastream slugs
and module names come from `conduyt_bridge.core.naming`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from conduyt_bridge.core.naming import (
    datastream_slug,
    datastream_slugs,
    find_module,
    module_slugs,
    slug_part,
)


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


__all__ = [
    "BridgeTopics",
    "CommandKind",
    "CommandTopic",
    "DeviceTopics",
    "datastream_slug",
    "datastream_slugs",
    "find_module",
    "module_slugs",
    "parse_command_topic",
    "slug_part",
]
