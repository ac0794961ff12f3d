"""MQTT topic names of the Conduyt layout (pure), per `docs/topics.md`.

`{base}/{dev}/...` for boards, `{base}/bridge/{bridge_id}/...` for each bridge of a fleet
(`docs/fleet.md` §1). Datastream slugs and module names come from
`conduyt_bridge.core.naming`.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from enum import StrEnum

from conduyt_bridge.core.naming import (
    datastream_slug,
    datastream_slugs,
    find_module,
    module_slugs,
    slug_part,
)

BRIDGE_SEGMENT = "bridge"
"""The topic level below the base that holds the bridges' own topics; no board may be
called this (`{base}/bridge/...`)."""

RESERVED_BRIDGE_IDS = frozenset({"owned", "cmd"})
"""Bridge ids that are taken: `{base}/bridge/owned/{client_id}` holds the Home Assistant
ownership records (`docs/fleet.md` §1), so a bridge called `owned` would share them; and
the shipped ACL lets Home Assistant write `{base}/+/cmd/+` (the raw command topics), which
a bridge called `cmd` would open to it (`{base}/bridge/cmd/state`)."""

_BRIDGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_BRIDGE_ID_BAD = re.compile(r"[^A-Za-z0-9_-]")


def bridge_id_problem(bridge_id: str) -> str | None:
    """Why `bridge_id` cannot be a bridge id, or None when it can: 1 to 64 characters of
    `[A-Za-z0-9_-]`, starting with a letter or digit (one topic level, no wildcard, the
    same rule as device ids), and not a reserved id (`RESERVED_BRIDGE_IDS`)."""
    if not bridge_id:
        return "bridge id must not be empty"
    if not _BRIDGE_ID.match(bridge_id):
        return (
            f"bridge id {bridge_id!r} must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-', "
            "starting with a letter or digit"
        )
    if bridge_id in RESERVED_BRIDGE_IDS:
        return (
            f"bridge id {bridge_id!r} is reserved ({{base}}/bridge/owned/ holds HA records; "
            "the ACL lets Home Assistant write {base}/+/cmd/+)"
        )
    return None


def topic_safe_id(text: str) -> str:
    """`text` made a valid bridge id: every character outside `[A-Za-z0-9_-]` becomes `-`,
    leading `-`/`_` are dropped, 64 characters at most; `conduyt-bridge` when nothing is
    left, `{text}-bridge` for a reserved id."""
    clean = _BRIDGE_ID_BAD.sub("-", text).lstrip("-_")[:64].rstrip("-_")
    if not clean:
        return "conduyt-bridge"
    if clean in RESERVED_BRIDGE_IDS:
        return f"{clean}-bridge"
    return clean


def default_bridge_id() -> str:
    """The default `[bridge] id`: this machine's host name made topic-safe
    (`socket.gethostname()`, e.g. `pi4.local` → `pi4-local`)."""
    return topic_safe_id(socket.gethostname())


@dataclass(frozen=True, slots=True)
class BridgeTopics:
    """Topics of one bridge, `{base}/bridge/{bridge_id}/...` (`docs/fleet.md` §1)."""

    base: str
    bridge_id: str

    @property
    def prefix(self) -> str:
        """`{base}/bridge/{bridge_id}`."""
        return f"{self.base}/{BRIDGE_SEGMENT}/{self.bridge_id}"

    @property
    def state(self) -> str:
        """`online`/`offline` retained; `offline` is the MQTT Will."""
        return f"{self.prefix}/state"

    @property
    def devices(self) -> str:
        """Retained JSON inventory of this bridge's boards."""
        return f"{self.prefix}/devices"

    @property
    def health(self) -> str:
        """Periodic JSON health report."""
        return f"{self.prefix}/health"

    @property
    def request_filter(self) -> str:
        """`{base}/bridge/{bridge_id}/request/#`: the request API (`docs/requests.md` §1)."""
        return f"{self.prefix}/request/#"

    def request(self, action: str) -> str:
        """Where a request for `action` (`device/add`, `scan`…) is published."""
        return f"{self.prefix}/request/{action}"

    def response(self, action: str) -> str:
        """Where the bridge answers a request for `action` (not retained)."""
        return f"{self.prefix}/response/{action}"

    def request_action(self, topic: str) -> str | None:
        """The action of a request topic (`device/add` of `…/request/device/add`), None
        for any other topic."""
        head = f"{self.prefix}/request/"
        return topic[len(head) :] or None if topic.startswith(head) else None

    def device(self, dev: str) -> DeviceTopics:
        """Topics of board `dev`."""
        return DeviceTopics(self.base, dev)


@dataclass(frozen=True, slots=True)
class FleetTopics:
    """Filters that see every bridge of a fleet under one base topic (`docs/fleet.md` §3).

    A filter's `+` also matches `owned` (the HA ownership records,
    `{base}/bridge/owned/{client_id}`): `bridge_of` skips it.
    """

    base: str

    @property
    def states(self) -> str:
        """`{base}/bridge/+/state`."""
        return f"{self.base}/{BRIDGE_SEGMENT}/+/state"

    @property
    def devices(self) -> str:
        """`{base}/bridge/+/devices`: every bridge's inventory."""
        return f"{self.base}/{BRIDGE_SEGMENT}/+/devices"

    @property
    def health(self) -> str:
        """`{base}/bridge/+/health`."""
        return f"{self.base}/{BRIDGE_SEGMENT}/+/health"

    def bridge_of(self, topic: str, leaf: str) -> str | None:
        """The bridge id in `{base}/bridge/{id}/{leaf}`, or None for any other topic (a
        reserved id such as `owned` included)."""
        head = f"{self.base}/{BRIDGE_SEGMENT}/"
        if not topic.startswith(head) or not topic.endswith("/" + leaf):
            return None
        bridge_id = topic[len(head) : -len(leaf) - 1]
        return bridge_id if bridge_id_problem(bridge_id) is None else None


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
    def owner(self) -> str:
        """Retained claim: which bridge runs this board (`docs/fleet.md` §2)."""
        return f"{self.prefix}/owner"

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

    def entity(self, name: str, part: str = "") -> str:
        """State of declared entity `name` (`docs/entities.md` §3); `part` for one of
        several values (`temperature` of a DHT)."""
        return f"{self.prefix}/entity/{name}" + (f"/{part}" if part else "")

    def entity_set(self, name: str, part: str = "") -> str:
        """Command topic of declared entity `name` (`part`: `mode` of a climate…)."""
        return f"{self.entity(name, part)}/set"

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
            f"{p}/entity/+/set",
            f"{p}/entity/+/+/set",
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
    ENTITY = "entity"
    RAW = "raw"


@dataclass(frozen=True, slots=True)
class CommandTopic:
    """A parsed command topic: board, kind and its parts.

    `target` is the datastream slug (DS_SET), the pin text (PIN_*), the module reference
    (MODULE), the entity name (ENTITY) or the type hex text, possibly empty (RAW);
    `command` is the module command or the entity's command part (`mode` of a climate,
    empty for its main command).
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
    # `{base}/bridge/{bridge_id}/...` are the bridges' own topics, never a board's.
    if len(parts) < 2 or not parts[0] or parts[0] == BRIDGE_SEGMENT:
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
        case ["entity", name, "set"]:
            return CommandTopic(dev, CommandKind.ENTITY, name)
        case ["entity", name, part, "set"]:
            return CommandTopic(dev, CommandKind.ENTITY, name, part)
        case ["cmd"]:
            return CommandTopic(dev, CommandKind.RAW, "")
        case ["cmd", type_hex]:
            return CommandTopic(dev, CommandKind.RAW, type_hex)
    return None


__all__ = [
    "BRIDGE_SEGMENT",
    "RESERVED_BRIDGE_IDS",
    "BridgeTopics",
    "CommandKind",
    "CommandTopic",
    "DeviceTopics",
    "FleetTopics",
    "bridge_id_problem",
    "datastream_slug",
    "datastream_slugs",
    "default_bridge_id",
    "find_module",
    "module_slugs",
    "parse_command_topic",
    "slug_part",
    "topic_safe_id",
]
