"""The Sparkplug B topic namespace (`docs/sparkplug.md` §2; Sparkplug 3.0 §4.1.1, §4.1.2).

Edge node messages are `spBv1.0/{group}/{NBIRTH|NDEATH|NDATA|NCMD}/{edge}`, device messages
`spBv1.0/{group}/{DBIRTH|DDEATH|DDATA|DCMD}/{edge}/{dev}`, the primary host's state
`spBv1.0/STATE/{host_id}` (3.0 form; the 2.2 form `STATE/{host_id}` is not used).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

NAMESPACE = "spBv1.0"
"""The Sparkplug B namespace, first level of every topic."""

_FORBIDDEN = ("/", "+", "#")


def check_id(value: str, what: str) -> str:
    """`value` if it is a valid Sparkplug id (non-empty UTF-8 without `/`, `+`, `#`; 3.0
    §4.1.1). Raises ValueError otherwise."""
    if not value:
        raise ValueError(f"{what} must not be empty")
    bad = [c for c in _FORBIDDEN if c in value]
    if bad or "\x00" in value:
        raise ValueError(f"{what} must not contain '/', '+', '#' or NUL (got {value!r})")
    return value


@dataclass(frozen=True, slots=True)
class SparkplugTopics:
    """The topics of one edge node: `group` and `edge` as configured."""

    group: str
    edge: str

    def node(self, kind: str) -> str:
        """`spBv1.0/{group}/{kind}/{edge}`; `kind` one of NBIRTH, NDEATH, NDATA, NCMD."""
        return f"{NAMESPACE}/{self.group}/{kind}/{self.edge}"

    def device(self, kind: str, dev: str) -> str:
        """`spBv1.0/{group}/{kind}/{edge}/{dev}`; `kind` one of DBIRTH, DDEATH, DDATA, DCMD."""
        return f"{NAMESPACE}/{self.group}/{kind}/{self.edge}/{dev}"

    @property
    def ncmd(self) -> str:
        """The edge node's command topic."""
        return self.node("NCMD")

    @property
    def dcmd_filter(self) -> str:
        """The filter of every device command of this edge node."""
        return self.device("DCMD", "+")

    def dcmd_device(self, topic: str) -> str | None:
        """The device id of a DCMD `topic` of this edge node, None for any other topic."""
        prefix = self.device("DCMD", "")
        if not topic.startswith(prefix):
            return None
        dev = topic[len(prefix) :]
        return dev if dev and "/" not in dev else None


def state_topic(host_id: str) -> str:
    """`spBv1.0/STATE/{host_id}`: the primary host application's state (3.0 §4.1.3)."""
    return f"{NAMESPACE}/STATE/{host_id}"


MAX_STATE_BYTES = 1024
"""Largest `STATE` payload read; a bigger one is ignored."""


def parse_state(data: bytes) -> tuple[bool, int]:
    """`(online, timestamp ms)` of a `STATE` payload (3.0 §7.4: JSON `{"online": bool,
    "timestamp": ms}`; an integral float such as `1.7e12` is accepted as ms, a missing
    timestamp is 0). Raises ValueError (also for a payload over `MAX_STATE_BYTES`)."""
    if len(data) > MAX_STATE_BYTES:
        raise ValueError("too large")
    try:
        doc = json.loads(data)
        online, ts = doc["online"], doc.get("timestamp", 0)
    except (KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise ValueError(f"not a STATE document: {exc!r}") from None
    if isinstance(ts, float) and ts.is_integer():
        ts = int(ts)
    if not isinstance(online, bool) or isinstance(ts, bool) or not isinstance(ts, int):
        raise ValueError("wrong types")
    return online, ts


__all__ = [
    "MAX_STATE_BYTES",
    "NAMESPACE",
    "SparkplugTopics",
    "check_id",
    "parse_state",
    "state_topic",
]
