"""Command topics of the Conduyt layout (`docs/topics.md` §3, §4, §7), one handler per
kind: datastream writes (`handlers.datastreams`), pins (`handlers.pins`), modules
(`handlers.modules`) and raw packets (`handlers.raw`). Each parses its payload and calls
the board core; the outcome is reported by the `Command` job
(`conduyt_bridge.northbound.conduyt.command`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conduyt_bridge.northbound.conduyt.command import Command, ConduytBoard, Handler
from conduyt_bridge.northbound.conduyt.entities import handle_entity
from conduyt_bridge.northbound.conduyt.handlers.datastreams import handle_ds_set
from conduyt_bridge.northbound.conduyt.handlers.modules import handle_module
from conduyt_bridge.northbound.conduyt.handlers.pins import (
    handle_get,
    handle_mode,
    handle_set,
    handle_subscribe,
)
from conduyt_bridge.northbound.conduyt.topics import CommandKind


async def handle_raw(ctx: ConduytBoard, command: Command) -> dict[str, Any]:
    """`cmd` / `cmd/{tt}`: see `RawController.handle` (`handlers.raw`)."""
    return await ctx.raw.handle(command.parsed.target, command.payload)


HANDLERS: Mapping[CommandKind, Handler] = {
    CommandKind.DS_SET: handle_ds_set,
    CommandKind.PIN_MODE: handle_mode,
    CommandKind.PIN_SET: handle_set,
    CommandKind.PIN_GET: handle_get,
    CommandKind.PIN_SUBSCRIBE: handle_subscribe,
    CommandKind.MODULE: handle_module,
    CommandKind.RAW: handle_raw,
    CommandKind.ENTITY: handle_entity,
}
"""The handler of every command kind."""

__all__ = ["HANDLERS", "handle_raw"]
