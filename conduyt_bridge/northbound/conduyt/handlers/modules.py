"""Module topics: `{base}/{dev}/module/{mod}/{command}` → MOD_CMD, results and events.

`docs/protocol.md` §8 (module tables, encoded by `conduyt_bridge.protocol.modules.CATALOG`),
§4.2 (MOD_CMD / MOD_RESP / MOD_EVENT wire forms), §7 Q9 and §10 #20-#22.

- `{mod}` is the module's topic name (HELLO name, `name_<id>` when names repeat) or its
  numeric module id; `{command}` a catalog command name (`servo/write`, `dht/read`).
- Arguments: a JSON object by name (`{"angle": 90}`), a JSON list by position
  (`[9, 544, 2400]`), a bare scalar for the first argument (`90`, or unquoted text), or
  nothing/`{}`/`null` for commands without arguments. `{"value": x}` is the bare scalar
  `x` unless the command has an argument called `value` (pid `set_target`). A
  `"transaction"` member is echoed, never sent. Types, ranges, choices and sizes are
  checked by the catalog before anything is sent; defaults fill omitted arguments
  because the firmware reads missing bytes as 0 (§4.2). Pin arguments must name a pin of
  the board with the capability the module needs (`ArgSpec.pin`; the firmware checks
  none, Q12): `pid/set_input` on a pin without ANALOG_IN is refused, since the board
  would `analogRead` it unguarded every 100 ms (§4.2). Raw MOD_CMD packets get the same
  checks (`check_module_args`).
- Every successful command publishes `{"ok": true, …}` on `{command topic}/result`
  (QoS 1, not retained): MOD_RESP data decoded by the catalog (dht read →
  `temperature_c`, `humidity_percent`; encoder read → `count`), and plain
  `{"ok": true}` for the commands the module only ACKs, so Node-RED flows without
  MQTT 5 response topics also see every outcome. Failures go to `{dev}/error` only.
- MOD_EVENT → `module/{mod}/event/{event}` (JSON fields, QoS 1). Built-in modules send
  module id 0 (Q9), so events are attributed by shape among the board's modules
  (`attribute_event`); a non-built-in module is trusted with its own id and published
  as `{"data": base64}` under `event/{code}`. An event that cannot be attributed (two
  encoders, an unknown shape) goes to `module/unknown/event/{code}` (decimal code) as
  `{"module_id", "event", "data": base64, "candidates": [...]}`.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import structlog

from conduyt_bridge.device.capabilities import check_module_args
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytPayloadError,
    ErrorName,
    describe_exception,
)
from conduyt_bridge.northbound.conduyt.payloads import dumps, parse_command_payload
from conduyt_bridge.northbound.conduyt.topics import find_module, module_slugs
from conduyt_bridge.protocol.commands import mod_cmd, parse_mod_event, parse_mod_resp
from conduyt_bridge.protocol.constants import PacketType, type_name
from conduyt_bridge.protocol.errors import PayloadDecodeError
from conduyt_bridge.protocol.hello import ModuleDescriptor
from conduyt_bridge.protocol.modules import (
    CATALOG,
    ArgsInput,
    CommandSpec,
    ModuleArgumentError,
    attribute_event,
    decode_event,
    decode_resp,
    encode_args,
)
from conduyt_bridge.protocol.packet import Packet

if TYPE_CHECKING:
    from conduyt_bridge.northbound.conduyt.board import BoardBridge, Command

log = structlog.stdlib.get_logger("bridge.modules")

UNKNOWN_MODULE = "unknown"
"""`{mod}` level for MOD_EVENTs that cannot be attributed to one module."""


def parse_module_args(spec: CommandSpec, payload: bytes) -> ArgsInput:
    """The arguments of a module command topic payload (see the module docstring).

    Raises ConduytPayloadError `NOT_UTF8`.
    """
    if not payload.strip():
        return None
    parsed = parse_command_payload(payload)
    value = parsed.value
    if parsed.is_object:
        args = {k: v for k, v in value.items() if k != "transaction"}
        if set(args) == {"value"} and "value" not in spec.arg_names:
            return _as_args(args["value"])
        return args
    return _as_args(value)


def _as_args(value: Any) -> ArgsInput:
    if value is None or isinstance(value, dict | list | int | float | str):
        return value
    return str(value)


def resolve_command(
    board: BoardBridge, ref: str, name: str
) -> tuple[ModuleDescriptor, CommandSpec]:
    """The module `ref` (topic name or id) of the board and its catalog command `name`.

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
            f"know its commands: send raw MOD_CMD packets on {board.topics.cmd(0x40)}",
            ErrorName.UNKNOWN_MODULE_CMD,
        )
    command = spec.commands.get(name)
    if command is None:
        known = ", ".join(spec.commands) or "none"
        hint = "; use the I2C packets on cmd/20, cmd/21, cmd/22" if not spec.commands else ""
        raise ConduytCapabilityError(
            f"module '{ref}' ({module.name}) has no command '{name}' (commands: {known}){hint}",
            ErrorName.UNKNOWN_MODULE_CMD,
        )
    return module, command


async def handle_module(board: BoardBridge, command: Command) -> dict[str, Any]:
    """`module/{mod}/{command}`: check the arguments against the catalog, send MOD_CMD
    `[module_id][cmd][args…]`, publish the outcome on `…/result` and return it.

    Raises ConduytCapabilityError (MODULE_NOT_LOADED, UNKNOWN_MODULE_CMD, INVALID_PIN and
    PIN_MODE_UNSUPPORTED for a pin argument the board cannot serve, PAYLOAD_TOO_LARGE),
    ConduytPayloadError (BAD_ARGUMENT, NOT_UTF8, BAD_REPLY), ConduytNAKError, ConduytTimeoutError,
    ConduytDisconnectedError.
    """
    module, spec = resolve_command(board, command.parsed.target, command.parsed.command)
    args = parse_module_args(spec, command.payload)
    try:
        data = encode_args(spec, args)
    except ModuleArgumentError as exc:
        raise ConduytPayloadError(str(exc), ErrorName.BAD_ARGUMENT) from None
    # The same checks as a raw MOD_CMD, pins against this board included.
    check_module_args(board.require_hello(), spec, data)
    payload = mod_cmd(module.module_id, spec.code, data)
    session = board.require_session()
    reply = await session.request(PacketType.MOD_CMD, payload)
    fields = reply_fields(spec, reply)
    doc: dict[str, Any] = {"ok": True, **fields}
    transaction = command.transaction()
    if transaction is not None:
        doc["transaction"] = transaction
    board.mqtt.publish(f"{command.topic}/result", dumps(doc), qos=1, coalesce=False)
    return fields


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


def publish_module_event(board: BoardBridge, packet: Packet) -> None:
    """Publish a MOD_EVENT on `module/{mod}/event/{event}` (see the module docstring)."""
    hello = board.hello
    try:
        event = parse_mod_event(packet.payload)
    except PayloadDecodeError as exc:
        log.debug("malformed MOD_EVENT", device=board.dev, error=describe_exception(exc))
        return
    if hello is None:
        return
    slugs = module_slugs(hello.modules)
    ordered = sorted(hello.modules, key=lambda m: m.module_id)
    name = attribute_event([m.name for m in ordered], event.event, event.data)
    raw = base64.b64encode(event.data).decode("ascii")
    if name is not None:
        slug = next(s for s, m in slugs.items() if m.name == name)
        try:
            event_name, fields = decode_event(name, event.event, event.data)
        except PayloadDecodeError:  # attribute_event matched the shape: cannot happen
            event_name, fields = str(event.event), {"data": raw}
        topic = board.topics.module_event(slug, event_name)
        board.mqtt.publish(topic, dumps(fields), qos=1, coalesce=False)
        return
    sender = hello.module(event.module_id)
    if sender is not None and sender.name not in CATALOG:
        # A sketch's own module: the built-ins' id-0 quirk (Q9) does not apply to it.
        slug = next(s for s, m in slugs.items() if m.module_id == sender.module_id)
        topic = board.topics.module_event(slug, str(event.event))
        board.mqtt.publish(topic, dumps({"data": raw}), qos=1, coalesce=False)
        return
    candidates = [
        s
        for s, m in slugs.items()
        if (spec := CATALOG.get(m.name)) is not None and event.event in spec.events
    ]
    doc = {
        "module_id": event.module_id,
        "event": event.event,
        "data": raw,
        "candidates": candidates,
    }
    topic = board.topics.module_event(UNKNOWN_MODULE, str(event.event))
    board.mqtt.publish(topic, dumps(doc), qos=1, coalesce=False)


__all__ = [
    "UNKNOWN_MODULE",
    "handle_module",
    "parse_module_args",
    "publish_module_event",
    "reply_fields",
    "resolve_command",
]
