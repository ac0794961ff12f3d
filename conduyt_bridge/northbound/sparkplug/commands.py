"""NCMD and DCMD: which metrics a command names, and the board job of a DCMD write
(`docs/sparkplug.md` §5; Sparkplug 3.0 §6.4.4 for commands, §5.6 for Rebirth).

A DCMD metric names a datastream by alias (from the DBIRTH) or by name (its slug). Each
becomes one `SparkplugWrite` submitted to the board, so it is validated, serialized and
executed like every other command (`Board.submit`). Success needs no answer of its own:
the write emits `DatastreamUpdated`, which goes out as DDATA with the new value (the
spec's report of a write). A refusal goes to the `Refusals` given (counted, and reported
through `Board.report_failure` with the label `"{DCMD topic} {metric name}"`).

A DCMD metric without a datatype (recommended with aliases, 3.0 §6.4.4) is read with the
datatype of the datastream it names, so a negative Int8..Int64 in the unsigned
`int_value`/`long_value` field is sign-converted (`codec.as_signed`). `Node Control/Rebirth`
is asked for by name only
(`tck-id-operational-behavior-data-commands-rebirth-name-aliases`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from conduyt_bridge.core.board import Board
from conduyt_bridge.errors import ConduytError
from conduyt_bridge.northbound.sparkplug.codec import CommandMetric, DataType, as_signed
from conduyt_bridge.northbound.sparkplug.metrics import REBIRTH, AliasTable
from conduyt_bridge.protocol.values import DatastreamValue


class Refusals(Protocol):
    """Where a refused DCMD write is reported."""

    def refused(self, board: Board, label: str, error: ConduytError) -> None:
        """Report `error` for the command `label` (DCMD topic and metric; must not block)."""
        ...


class SparkplugWrite:
    """One DCMD metric as a datastream write for the board's worker (`core.board.Job`)."""

    def __init__(
        self, refusals: Refusals, topic: str, slug: str, value: Any, retained: bool
    ) -> None:
        self.refusals = refusals
        self.topic = topic
        self.slug = slug
        self.value = value
        self.retained = retained

    @property
    def label(self) -> str:
        """The DCMD topic and metric name, `"{topic} {slug}"` (the `topic` of the error
        report on `{base}/{dev}/error`, `docs/sparkplug.md` §5)."""
        return f"{self.topic} {self.slug}"

    async def run(self, board: Board) -> dict[str, Any]:
        """Write the datastream. Raises what `Board.write_datastream` raises."""
        return {"value": await board.write_datastream(self.slug, self.value)}

    def succeeded(self, board: Board, result: dict[str, Any]) -> None:
        """Nothing: the DDATA of the new value is the report (3.0 §6.4.4)."""

    def failed(self, board: Board, error: ConduytError) -> None:
        """Hand the refusal to `refusals`."""
        self.refusals.refused(board, self.label, error)


@dataclass(frozen=True, slots=True)
class Write:
    """A datastream write a DCMD asks for: the datastream's slug and the value."""

    slug: str
    value: DatastreamValue


def dcmd_writes(
    dev: str,
    metrics: list[CommandMetric],
    aliases: AliasTable,
    datatypes: Mapping[str, DataType],
) -> tuple[list[Write], int]:
    """The writes of a DCMD for board `dev`, and how many metrics could not be used (no
    name nor an alias of this device, or no value). `datatypes` (slug → datatype of the
    board's datastreams) reads a value sent without a datatype."""
    writes: list[Write] = []
    unusable = 0
    for metric in metrics:
        slug = metric.name
        if metric.alias is not None and not slug:
            key = aliases.lookup(metric.alias)
            slug = key[1] if key is not None and key[0] == dev else ""
        if not slug or metric.value is None:
            unusable += 1
            continue
        value = metric.value
        if metric.datatype is None:
            value = as_signed(value, datatypes.get(slug))
        writes.append(Write(slug, value))
    return writes, unusable


def asks_rebirth(metrics: list[CommandMetric]) -> bool:
    """True when an NCMD sets `Node Control/Rebirth` to true, by name: the metric has no
    alias (`tck-id-operational-behavior-data-commands-rebirth-name-aliases`)."""
    for metric in metrics:
        name = metric.name
        if name == REBIRTH and metric.value is True:
            return True
        if name == REBIRTH and metric.datatype in (None, DataType.BOOLEAN) and metric.value == 1:
            return True
    return False


__all__ = ["Refusals", "SparkplugWrite", "Write", "asks_rebirth", "dcmd_writes"]
