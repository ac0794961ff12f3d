"""Module commands (`docs/protocol.md` §8, §4.2 MOD_CMD/MOD_RESP), checked against the
module catalog (`conduyt_bridge.protocol.modules.CATALOG`) and the board's HELLO_RESP
before anything is sent: the same rules for every adapter and for raw MOD_CMD packets
(`check_module_args`).
"""

from __future__ import annotations

import base64
from typing import Any

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.naming import find_module, module_slugs
from conduyt_bridge.device.capabilities import check_module_args
from conduyt_bridge.errors import ConduytCapabilityError, ConduytPayloadError, ErrorName
from conduyt_bridge.protocol.commands import mod_cmd, parse_mod_resp
from conduyt_bridge.protocol.constants import PacketType, type_name
from conduyt_bridge.protocol.errors import PayloadDecodeError
from conduyt_bridge.protocol.hello import ModuleDescriptor
from conduyt_bridge.protocol.modules import (
    CATALOG,
    ArgsInput,
    CommandSpec,
    ModuleArgumentError,
    decode_resp,
    encode_args,
)
from conduyt_bridge.protocol.packet import Packet

RAW_HINT = "raw MOD_CMD packets (type 0x40)"
"""How a caller reaches a module the catalog does not know (adapters name their own
raw packet route)."""

I2C_HINT = "the raw I2C packets (types 0x20, 0x21, 0x22)"
"""How a caller reaches a device behind `i2c_pass`, a module without commands."""


def resolve_command(
    board: Board, ref: str, name: str, raw_hint: str = RAW_HINT, i2c_hint: str = I2C_HINT
) -> tuple[ModuleDescriptor, CommandSpec]:
    """The module `ref` (its name, `conduyt_bridge.core.naming.module_slugs`, or its
    module id) of the board and its catalog command `name`; `raw_hint` names the way to
    send a command the catalog does not know, `i2c_hint` the way to reach an I2C device.

    Raises ConduytCapabilityError `MODULE_NOT_LOADED` or `UNKNOWN_MODULE_CMD`.
    """
    hello = board.require_hello()
    slugs = module_slugs(hello.modules)
    module = find_module(slugs, ref)
    if module is None:
        known = ", ".join(slugs) or "none"
        raise ConduytCapabilityError(
            f"module '{ref}' is not loaded on board '{board.dev}' (modules: {known})",
            ErrorName.MODULE_NOT_LOADED,
        )
    spec = CATALOG.get(module.name)
    if spec is None:
        raise ConduytCapabilityError(
            f"module '{ref}' ({module.name}) is not a built-in module, so the bridge does not "
            f"know its commands: send {raw_hint}",
            ErrorName.UNKNOWN_MODULE_CMD,
        )
    command = spec.commands.get(name)
    if command is None:
        known = ", ".join(spec.commands) or "none"
        hint = f"; use {i2c_hint}" if not spec.commands else ""
        raise ConduytCapabilityError(
            f"module '{ref}' ({module.name}) has no command '{name}' (commands: {known}){hint}",
            ErrorName.UNKNOWN_MODULE_CMD,
        )
    return module, command


async def run_command(
    board: Board, module: ModuleDescriptor, spec: CommandSpec, args: ArgsInput
) -> dict[str, Any]:
    """Check `args` against the catalog and the board, send MOD_CMD
    `[module_id][cmd][args…]` and return the decoded reply fields (`reply_fields`).

    Raises ConduytCapabilityError (INVALID_PIN and PIN_MODE_UNSUPPORTED for a pin argument
    the board cannot serve, PAYLOAD_TOO_LARGE), ConduytPayloadError (BAD_ARGUMENT,
    BAD_REPLY), ConduytNAKError, ConduytTimeoutError, ConduytDisconnectedError.
    """
    try:
        data = encode_args(spec, args)
    except ModuleArgumentError as exc:
        raise ConduytPayloadError(str(exc), ErrorName.BAD_ARGUMENT) from None
    # The same checks as a raw MOD_CMD, pins against this board included.
    check_module_args(board.require_hello(), spec, data)
    payload = mod_cmd(module.module_id, spec.code, data)
    session = board.require_session()
    reply = await session.request(PacketType.MOD_CMD, payload)
    return reply_fields(spec, reply)


def reply_fields(spec: CommandSpec, reply: Packet) -> dict[str, Any]:
    """Result fields of a module command's reply: decoded MOD_RESP data (module_id byte
    skipped, §10 #20), nothing for an ACK; raw base64 `data` for an unexpected MOD_RESP.

    Raises ConduytPayloadError `BAD_REPLY` for a MOD_RESP shorter than its layout.
    """
    if reply.type == PacketType.ACK:
        return {}
    if reply.type != PacketType.MOD_RESP:
        return {"reply": type_name(reply.type)}
    try:
        _, data = parse_mod_resp(reply.payload)
        if spec.decode_resp is None:
            return {"data": base64.b64encode(data).decode("ascii")}
        return dict(decode_resp(spec.module, spec.name, data))
    except PayloadDecodeError as exc:
        raise ConduytPayloadError(
            f"board sent a malformed MOD_RESP: {exc}", ErrorName.BAD_REPLY
        ) from None


__all__ = ["I2C_HINT", "RAW_HINT", "reply_fields", "resolve_command", "run_command"]
