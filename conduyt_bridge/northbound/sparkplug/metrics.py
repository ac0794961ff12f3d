"""What the edge node and its devices publish as metrics, and their aliases
(`docs/sparkplug.md` §3; Sparkplug 3.0 §6.4.5 for aliases).

Node metrics: `bdSeq` (Int64), `Node Control/Rebirth` (Boolean, false), `Bridge/version`
(String), per board `Boards/{dev}/online` (Boolean) and its link counters
`Boards/{dev}/{counter}` (UInt64, from `SessionStats`), and this adapter's own counters
`Sparkplug/commands_refused` and `Sparkplug/commands_ignored` (UInt64).

Device metrics: one per datastream, named by its slug (as in `{base}/{dev}/ds/{slug}`),
with the datatype of `codec.datatype_of` and the properties `engUnit` (String, when the
datastream has a unit), `readOnly` (Boolean) and `retain` (Boolean).

Every metric but `Node Control/Rebirth` has an alias, unique within the edge node and
stable for the bridge's lifetime (a rebirth repeats the same aliases; a datastream seen
for the first time gets the next free number). The rebirth control has none: a host asks
for it by name (`tck-id-operational-behavior-data-commands-rebirth-name-aliases`).

Every metric of a BIRTH or DATA message carries a timestamp
(`tck-id-payloads-name-birth-data-requirement`): a datastream's value time, else the
message's time (`ts_ms`, ms since the epoch).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from conduyt_bridge.core.board import Board
from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.northbound.sparkplug.codec import DataType, Metric, datatype_of
from conduyt_bridge.protocol.values import DatastreamValue

BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"
VERSION = "Bridge/version"
REFUSED = "Sparkplug/commands_refused"
IGNORED = "Sparkplug/commands_ignored"

LINK_COUNTERS = ("packets_in", "packets_out", "frame_errors", "naks", "timeouts", "reconnects")
"""The `SessionStats` counters published per board."""

NodeKey = tuple[str, str]
"""An alias key: (`""` for a node metric or the device id, metric name)."""


class AliasTable:
    """Aliases (1, 2, …) unique within the edge node, stable across rebirths."""

    def __init__(self) -> None:
        self._by_key: dict[NodeKey, int] = {}
        self._by_alias: dict[int, NodeKey] = {}

    def alias(self, owner: str, name: str) -> int:
        """The alias of metric `name` of `owner` (`""`: the node), allocated on first use."""
        key = (owner, name)
        found = self._by_key.get(key)
        if found is None:
            found = len(self._by_key) + 1
            self._by_key[key] = found
            self._by_alias[found] = key
        return found

    def lookup(self, alias: int) -> NodeKey | None:
        """(owner, name) of `alias`, None if it was never handed out."""
        return self._by_alias.get(alias)


def node_values(
    boards: Mapping[str, Board],
    sessions: Mapping[str, DeviceSession],
    version: str,
    refused: int,
    ignored: int,
) -> dict[str, tuple[DataType, DatastreamValue]]:
    """Every node metric but `bdSeq` and the rebirth control, by name: (datatype, value)."""
    values: dict[str, tuple[DataType, DatastreamValue]] = {
        VERSION: (DataType.STRING, version),
        REFUSED: (DataType.UINT64, refused),
        IGNORED: (DataType.UINT64, ignored),
    }
    for dev, board in boards.items():
        values[f"Boards/{dev}/online"] = (DataType.BOOLEAN, board.online)
        session = sessions.get(dev)
        if session is None:
            continue
        for counter in LINK_COUNTERS:
            count = getattr(session.stats, counter, 0)
            values[f"Boards/{dev}/{counter}"] = (DataType.UINT64, int(count))
    return values


def node_birth_metrics(
    aliases: AliasTable,
    bdseq: int,
    values: Mapping[str, tuple[DataType, DatastreamValue]],
    ts_ms: int,
) -> list[Metric]:
    """The NBIRTH metrics, each at `ts_ms`: `bdSeq`, `Node Control/Rebirth` = false
    (without alias), then `values`."""
    metrics = [
        Metric(BDSEQ, aliases.alias("", BDSEQ), DataType.INT64, bdseq, ts_ms=ts_ms),
        Metric(REBIRTH, None, DataType.BOOLEAN, False, ts_ms=ts_ms),
    ]
    for name, (datatype, value) in values.items():
        metrics.append(Metric(name, aliases.alias("", name), datatype, value, ts_ms=ts_ms))
    return metrics


def node_data_metrics(
    aliases: AliasTable,
    changed: Iterable[tuple[str, tuple[DataType, DatastreamValue]]],
    ts_ms: int,
) -> list[Metric]:
    """NDATA metrics (alias only, 3.0 §6.4.5) for the `changed` node values, at `ts_ms`."""
    return [
        Metric(None, aliases.alias("", name), None, value, ts_ms=ts_ms, value_type=datatype)
        for name, (datatype, value) in changed
    ]


def device_birth_metrics(aliases: AliasTable, board: Board, ts_ms: int) -> list[Metric]:
    """The DBIRTH metrics of `board`: each datastream with its last value (`is_null` when
    none yet), its time (`ts_ms` when it has no value yet) and its properties."""
    metrics: list[Metric] = []
    for slug, ds in board.ds_by_slug.items():
        props: dict[str, tuple[DataType, DatastreamValue]] = {}
        if ds.unit:
            props["engUnit"] = (DataType.STRING, ds.unit)
        props["readOnly"] = (DataType.BOOLEAN, not ds.writable)
        props["retain"] = (DataType.BOOLEAN, ds.retain)
        at = board.value_times.get(slug)
        metrics.append(
            Metric(
                slug,
                aliases.alias(board.dev, slug),
                datatype_of(ds),
                board.values.get(slug),
                ts_ms=ts_ms if at is None else int(at * 1000),
                properties=props,
            )
        )
    return metrics


__all__ = [
    "BDSEQ",
    "IGNORED",
    "LINK_COUNTERS",
    "REBIRTH",
    "REFUSED",
    "VERSION",
    "AliasTable",
    "device_birth_metrics",
    "node_birth_metrics",
    "node_data_metrics",
    "node_values",
]
