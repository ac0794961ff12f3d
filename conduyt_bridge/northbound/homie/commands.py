"""A Homie `/set` as a command for a board's worker (`docs/homie.md` §5; the Homie
convention, "Property command topic").

The payload is read in the convention's form for the property's datatype
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
from conduyt_bridge.errors import ConduytCapabilityError, ConduytError, ErrorName
from conduyt_bridge.northbound.homie.model import PropertyModel
from conduyt_bridge.northbound.homie.values import parse_base64, parse_value
from conduyt_bridge.protocol.constants import DatastreamType

RAW_HINT = "a raw MOD_CMD packet on the Conduyt topics (`{base}/{dev}/cmd`)"
"""How to reach a module command the catalog does not know (not through Homie)."""

Done = Callable[[Board, "HomieSet", Any], None]
"""Called with the board, the command and the value to publish after a success."""

Refused = Callable[[Board, "HomieSet", ConduytError], None]
"""Called with the board, the command and the error after a refusal or failure."""


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


__all__ = ["RAW_HINT", "Done", "HomieSet", "Refused"]
