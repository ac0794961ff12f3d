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

from typing import TYPE_CHECKING, Any

from conduyt_bridge.core.modules import resolve_command, run_command
from conduyt_bridge.northbound.conduyt.payloads import dumps, parse_command_payload
from conduyt_bridge.protocol.modules import (
    ArgsInput,
    CommandSpec,
)

if TYPE_CHECKING:
    from conduyt_bridge.northbound.conduyt.command import Command, ConduytBoard


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


async def handle_module(ctx: ConduytBoard, command: Command) -> dict[str, Any]:
    """`module/{mod}/{command}`: resolve, parse the arguments, run the command through the
    core (`conduyt_bridge.core.modules`), publish the outcome on `…/result` and return it.

    Raises ConduytCapabilityError (MODULE_NOT_LOADED, UNKNOWN_MODULE_CMD, INVALID_PIN and
    PIN_MODE_UNSUPPORTED for a pin argument the board cannot serve, PAYLOAD_TOO_LARGE),
    ConduytPayloadError (BAD_ARGUMENT, NOT_UTF8, BAD_REPLY), ConduytNAKError,
    ConduytTimeoutError, ConduytDisconnectedError.
    """
    board, face = ctx.board, ctx.face
    hint = f"raw MOD_CMD packets on {face.topics.cmd(0x40)}"
    i2c = "the I2C packets on cmd/20, cmd/21, cmd/22"
    module, spec = resolve_command(
        board, command.parsed.target, command.parsed.command, hint, i2c
    )
    args = parse_module_args(spec, command.payload)
    fields = await run_command(board, module, spec, args)
    doc: dict[str, Any] = {"ok": True, **fields}
    transaction = command.transaction()
    if transaction is not None:
        doc["transaction"] = transaction
    face.mqtt.publish(f"{command.topic}/result", dumps(doc), qos=1, coalesce=False)
    return fields


__all__ = [
    "handle_module",
    "parse_module_args",
]
