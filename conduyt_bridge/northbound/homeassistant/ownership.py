"""The ownership record: what a bridge has put on the broker, so that a later run can take
back exactly what it no longer owns (`docs/home-assistant.md`, "Ownership record").

Every bridge keeps one retained JSON record on `{base}/bridge/owned/{client_id}`
(a `client_id` outside `[A-Za-z0-9_-]` is sanitised and suffixed with `~` and a short
hash, so two ids never share a record, see `record_topic`):

```json
{"v": 1, "client_id": "conduyt-bridge", "host": "pi4", "prefix": "homeassistant",
 "boards": {"th": "sim://thermostat"}, "nodes": ["conduyt-bridge_bridge", "conduyt-bridge_th"]}
```

* `boards`: board id → port; each board owns the retained topics under `{base}/{dev}/#`.
* `nodes`: HA discovery node ids; each owns `{prefix}/device/{node}/config` and
  `{prefix}/+/{node}/+/config` (both discovery modes). Empty while discovery is off.

The records stay under `{base}/bridge/owned/`, beside the bridges' own topics
`{base}/bridge/{bridge_id}/...`: the bridge id `owned` is refused by the configuration
(`conduyt_bridge.northbound.conduyt.topics.RESERVED_BRIDGE_IDS`), so the two never meet,
and fleet filters such as `{base}/bridge/+/devices` skip the `owned` level.

On start the bridge reads every record under `{base}/bridge/owned/+` and `plan_cleanup`
decides what to clear. It is deliberately conservative: only records of this bridge's
previous runs count (its own record, or the record of a former `client_id` on the same
host that drove one of the same boards on the same port), and a board or a discovery
node is cleared only when no other record claims it. Nothing here does IO.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conduyt_bridge.northbound.conduyt.payloads import dumps

RECORD_VERSION = 1

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_NODE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_BAD = re.compile(r"[^A-Za-z0-9_-]")
_RESERVED_DEVICE_ID = "bridge"


def record_topic(base_topic: str, client_id: str) -> str:
    """`{base}/bridge/owned/{client_id}`, the id made one topic level without two ids
    ever sharing it: an id of `[A-Za-z0-9_-]` is used as is; any other id is sanitised
    and gets `~` plus 8 hex digits of its SHA-256 (`gw.a` → `gw_a~…`, distinct from `gw_a`,
    and `~` cannot occur in a clean id)."""
    clean = _BAD.sub("_", client_id)
    if clean and clean == client_id:
        return f"{base_topic}/bridge/owned/{client_id}"
    digest = hashlib.sha256(client_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{base_topic}/bridge/owned/{clean}~{digest}"


def records_filter(base_topic: str) -> str:
    """The filter that reads every bridge's record under `base_topic`."""
    return f"{base_topic}/bridge/owned/+"


@dataclass(frozen=True)
class OwnershipRecord:
    """What one bridge identity owns on the broker (see the module docstring)."""

    client_id: str
    host: str
    prefix: str
    boards: Mapping[str, str] = field(default_factory=dict)
    nodes: tuple[str, ...] = ()

    def encode(self) -> bytes:
        """The retained JSON payload."""
        doc: dict[str, Any] = {
            "v": RECORD_VERSION,
            "client_id": self.client_id,
            "host": self.host,
            "prefix": self.prefix,
            "boards": dict(self.boards),
            "nodes": list(self.nodes),
        }
        return dumps(doc)


def decode_record(payload: bytes) -> OwnershipRecord | None:
    """The record in `payload`, or None when it is not a well-formed version-1 record.

    Anything that could name a topic outside a board's or a node's own subtree (a `/`,
    a wildcard, the reserved `bridge` id) makes the whole record invalid: any client may
    publish under the base topic, and a forged record must not widen what gets cleared.
    """
    try:
        doc: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("v") != RECORD_VERSION:
        return None
    client_id, host, prefix = doc.get("client_id"), doc.get("host"), doc.get("prefix")
    boards, nodes = doc.get("boards"), doc.get("nodes")
    if not isinstance(client_id, str) or not isinstance(host, str):
        return None
    if not isinstance(prefix, str) or not client_id:
        return None
    if not isinstance(boards, dict) or not isinstance(nodes, list):
        return None
    for dev, port in boards.items():
        if not _ID.match(dev) or dev == _RESERVED_DEVICE_ID or not isinstance(port, str):
            return None
    if not all(isinstance(n, str) and _NODE.match(n) for n in nodes):
        return None
    if not prefix or any(c in prefix for c in "+#") or prefix.startswith("/"):
        return None
    return OwnershipRecord(client_id, host, prefix, dict(boards), tuple(nodes))


@dataclass(frozen=True)
class Cleanup:
    """What a starting bridge clears: discovery nodes (per prefix), boards' retained
    subtrees, and records of its former identities."""

    nodes: tuple[tuple[str, str], ...] = ()
    """(prefix, node) pairs whose discovery configs go."""
    boards: tuple[str, ...] = ()
    """Board ids whose retained `{base}/{dev}/#` topics go."""
    records: tuple[str, ...] = ()
    """Record topics of former identities (emptied once their topics are cleared)."""

    def __bool__(self) -> bool:
        return bool(self.nodes or self.boards or self.records)


def is_previous_identity(current: OwnershipRecord, other: OwnershipRecord) -> bool:
    """Whether `other` was written by an earlier run of the bridge that is `current`.

    Its own record (same `client_id`) always is. A record of another `client_id` is one
    only if it comes from the same host and drove at least one of the same boards (id and
    port): that is a renamed bridge. Another gateway cannot pass this test unless it runs
    on the same machine and drives the same port, which the two could not both do.
    """
    if other.client_id == current.client_id:
        return True
    if other.host != current.host:
        return False
    return any(current.boards.get(dev) == port for dev, port in other.boards.items())


def plan_cleanup(
    current: OwnershipRecord, found: Mapping[str, OwnershipRecord], own_topic: str
) -> Cleanup:
    """What to clear, given this run's record and the records `found` (topic → record).

    * nodes a previous identity announced that neither this run nor any other record
      claims (same prefix and node),
    * boards a previous identity drove that neither this run nor any other record claims,
    * records of previous identities other than this bridge's own topic (a renamed
      bridge's old record), which would otherwise be read again on every start.
    """
    previous = {t: r for t, r in found.items() if is_previous_identity(current, r)}
    others = {t: r for t, r in found.items() if t not in previous}
    claimed = set(current.boards)
    for record in others.values():
        claimed |= set(record.boards)
    # Node ids are `{client_id}_{dev}` sanitised, which two gateways can share (`gw` with
    # board `a_th`, `gw_a` with board `th`): a node another record claims is never cleared.
    kept = {(current.prefix, n) for n in current.nodes}
    kept |= {(r.prefix, n) for r in others.values() for n in r.nodes}
    nodes: dict[tuple[str, str], None] = {}
    boards: dict[str, None] = {}
    for record in previous.values():
        for node in record.nodes:
            if (record.prefix, node) not in kept:
                nodes[(record.prefix, node)] = None
        for dev in record.boards:
            if dev not in claimed:
                boards[dev] = None
    records = tuple(t for t in previous if t != own_topic)
    return Cleanup(tuple(nodes), tuple(boards), records)
