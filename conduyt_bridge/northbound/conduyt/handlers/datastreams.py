"""`{base}/{dev}/ds/{slug}/set` (`docs/topics.md` §3): the payload parsed as the
datastream's type, then written through the core (`Board.write_datastream`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conduyt_bridge.errors import ConduytCapabilityError, ErrorName
from conduyt_bridge.northbound.conduyt.payloads import datastream_command_value, json_value

if TYPE_CHECKING:
    from conduyt_bridge.northbound.conduyt.command import Command, ConduytBoard


async def handle_ds_set(ctx: ConduytBoard, command: Command) -> dict[str, Any]:
    """Validate, send DS_WRITE; the new state is published on ACK (by the core's
    `DatastreamUpdated` event). Returns `{"value": …}` as the board holds it.

    Raises ConduytCapabilityError (unknown or read-only datastream, value out of the type's
    range), ConduytPayloadError (payload does not parse as the datastream's type),
    ConduytDisconnectedError, ConduytTimeoutError, ConduytNAKError.
    """
    board = ctx.board
    ds = board.datastream(command.parsed.target)
    if not ds.writable:
        raise ConduytCapabilityError(
            f"datastream '{ds.name}' is read-only", ErrorName.DATASTREAM_READONLY
        )
    value = datastream_command_value(command.payload, ds).value
    written = await board.write_datastream(command.parsed.target, value)
    return {"value": json_value(written)}


__all__ = ["handle_ds_set"]
