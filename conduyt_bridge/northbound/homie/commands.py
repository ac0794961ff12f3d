"""A Homie `/set` as a command for a board's worker (`docs/homie.md` §5; the Homie
convention, "Property command topic").

A `/set` to a property its `$description` does not declare `settable` is refused before
it reaches the board (`not_settable`): a pin published read-only (an input, an analog poll,
a subscription) must not be driven as an output. The payload is read in the convention's
form for the property's datatype
(`conduyt_bridge.northbound.homie.values.parse_value`); everything else — whether the
datastream exists and is writable, the value's range, the pin's capabilities and mode, the
module command's arguments — is checked by the board core, exactly as for a command on
the Conduyt topics (`Board.write_datastream`, `PinState.write`,
`conduyt_bridge.core.modules.run_command`), and every command is serialized by
`Board.submit`. The outcome goes back through the adapter's callbacks: the new value on the
property topic, or the error report on `{base}/{dev}/error` (`docs/topics.md` §6).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.modules import resolve_command, run_command
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytError,
    ConduytPayloadError,
    ErrorName,
)
from conduyt_bridge.northbound.homie.model import PropertyModel
from conduyt_bridge.northbound.homie.values import parse_base64, parse_value
from conduyt_bridge.protocol.constants import DatastreamType

RAW_HINT = "a raw MOD_CMD packet on the Conduyt topics (`{base}/{dev}/cmd`)"
"""How to reach a module command the catalog does not know (not through Homie)."""

Done = Callable[[Board, "HomieSet", Any], None]
"""Called with the board, the command and the value to publish after a success."""

Refused = Callable[[Board, "HomieSet", ConduytError], None]
"""Called with the board, the command and the error after a refusal or failure."""


SET_SLACK = 1024
"""Bytes allowed in a `/set` payload beyond 6 per byte the board takes (`set_limit`)."""


def set_limit(board: Board) -> int:
    """Longest `/set` payload taken for `board`, bytes: 6 per byte of its `max_payload`
    (65535 before the first handshake) plus `SET_SLACK`, the Conduyt layout's rule
    (`docs/hostile-input.md`)."""
    return 6 * (board.max_payload or 0xFFFF) + SET_SLACK


def set_refusal(
    board: Board, device: str, node: str, prop_id: str, prop: PropertyModel | None, size: int
) -> ConduytError | None:
    """Why a `/set` of `size` bytes to `{device}/{node}/{prop_id}` (`prop`: the property
    in the last announced `$description`, None if it has none) is refused before it is
    queued for `board`: too long, no such property, not settable; None to queue it."""
    limit = set_limit(board)
    if size > limit:
        return ConduytPayloadError(
            f"payload of {size} bytes is longer than any value for board "
            f"'{board.dev}' can be ({limit} bytes at most)",
            ErrorName.PAYLOAD_TOO_LONG,
        )
    if prop is None:
        return ConduytPayloadError(
            f"device '{device}' has no property '{node}/{prop_id}' (see its $description)",
            ErrorName.BAD_TOPIC,
        )
    return not_settable(node, prop)


def not_settable(node: str, prop: PropertyModel) -> ConduytCapabilityError | None:
    """The refusal of a `/set` to `prop` of node `node` when its `$description` does not
    declare it `settable` (the Homie convention, "Property command topic": only settable
    properties take commands), None when it does. `DATASTREAM_READONLY` for a datastream,
    `CAPABILITY` otherwise."""
    if prop.settable:
        return None
    what = f"property '{node}/{prop.id}' is not settable"
    if prop.binding.kind == "datastream":
        return ConduytCapabilityError(
            f"{what}: datastream '{prop.name}' is read-only",
            ErrorName.DATASTREAM_READONLY,
        )
    return ConduytCapabilityError(
        f"{what} (read-only in the device's $description)", ErrorName.CAPABILITY
    )


@dataclass(slots=True)
class HomieSet:
    """One `/set` message for a property of a board's child device (a `Job`).

    `topic` is the `/set` topic, `node` the node ID, `payload` the raw MQTT payload,
    `retained` its retain flag (a retained command is refused by the core).
    """

    topic: str
    node: str
    prop: PropertyModel
    payload: bytes
    retained: bool
    done: Done
    refused: Refused

    @property
    def label(self) -> str:
        """The `/set` topic, for logs."""
        return self.topic

    @property
    def what(self) -> str:
        """The property in messages: `property 'datastreams/setpoint' (float)`."""
        return f"property '{self.node}/{self.prop.id}' ({self.prop.datatype})"

    async def run(self, board: Board) -> dict[str, Any]:
        """Parse the payload and carry the command out; returns `{"value": …}`, the value
        to publish on the property topic (None: the core's own event publishes it).

        Raises ConduytPayloadError (the payload's form), ConduytCapabilityError,
        ConduytNAKError, ConduytTimeoutError, ConduytDisconnectedError (from the core).
        """
        refusal = not_settable(self.node, self.prop)
        if refusal is not None:
            raise refusal
        binding = self.prop.binding
        if binding.kind == "datastream":
            ds = board.datastream(binding.key)
            value = parse_value(self.prop.datatype, self.payload, self.what)
            if ds.known_type is DatastreamType.BYTES:
                value = parse_base64(value, self.what)
            await board.write_datastream(binding.key, value)
            return {"value": None}  # DatastreamUpdated carries the value as written
        if binding.kind == "pin":
            value = parse_value(self.prop.datatype, self.payload, self.what)
            written, _ = await board.pins.write(int(binding.key), value)
            return {"value": written}
        if binding.kind in ("command", "event"):
            module, spec = resolve_command(board, binding.key, binding.name, RAW_HINT)
            args = parse_value(self.prop.datatype, self.payload, self.what)
            fields = await run_command(board, module, spec, args)
            return {"value": fields if fields else args}
        raise ConduytCapabilityError(f"{self.what} is not settable", ErrorName.CAPABILITY)

    def succeeded(self, board: Board, result: dict[str, Any]) -> None:
        """Hand the value to publish to the adapter."""
        self.done(board, self, result.get("value"))

    def failed(self, board: Board, error: ConduytError) -> None:
        """Hand the refusal to the adapter (the error report)."""
        self.refused(board, self, error)


__all__ = [
    "RAW_HINT",
    "SET_SLACK",
    "Done",
    "HomieSet",
    "Refused",
    "not_settable",
    "set_limit",
    "set_refusal",
]
