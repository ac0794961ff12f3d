"""One Homie node per module of a board (`docs/homie.md` §3.3), from the module catalog
(`conduyt_bridge.protocol.modules.CATALOG`).

Every catalog command is a settable, non-retained property (a command is an action, not a
state): a command with one numeric argument takes that number (`servo/write` ← `90`,
`integer` with the argument's range as `format`), one with a single flag argument takes
`true`/`false`, every other command a JSON object of its arguments by name (`json`, the
arguments' JSON schema as `format`; `{}` for a command without arguments). Every catalog
event is a non-retained, read-only `json` property carrying the decoded event fields. A
module the catalog does not know is a node without properties.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.naming import module_slugs
from conduyt_bridge.northbound.homie.ids import homie_id, unique_ids
from conduyt_bridge.northbound.homie.model import Binding, NodeModel, PropertyModel, range_format
from conduyt_bridge.northbound.homie.values import number_text
from conduyt_bridge.protocol.commands import parse_mod_event
from conduyt_bridge.protocol.errors import PayloadDecodeError
from conduyt_bridge.protocol.hello import HelloResp
from conduyt_bridge.protocol.modules import (
    CATALOG,
    ArgSpec,
    CommandSpec,
    WireType,
    attribute_event,
    decode_event,
)

_INTEGER_WIRE = frozenset({WireType.U8, WireType.U16, WireType.I32})


def scalar_datatype(spec: CommandSpec) -> str | None:
    """The Homie datatype of a command that takes one bare value (`boolean` for a flag,
    `integer`, `float`), None for a command that takes a JSON object."""
    if len(spec.args) != 1:
        return None
    arg = spec.args[0]
    if arg.accepts_bool:
        return "boolean"
    if arg.type is WireType.F32:
        return "float"
    if arg.type in _INTEGER_WIRE and arg.choices is None:
        return "integer"
    return None


def _float_bounds(arg: ArgSpec) -> str | None:
    if arg.min is None and arg.max is None:
        return None
    lo = "" if arg.min is None else number_text(arg.min)
    hi = "" if arg.max is None else number_text(arg.max)
    return f"{lo}:{hi}"


def arg_schema(arg: ArgSpec) -> dict[str, Any]:
    """The JSON schema of one argument (integers with their bounds or choices, numbers,
    text, bytes as base64 text or a list of 0..255)."""
    schema: dict[str, Any]
    if arg.type in _INTEGER_WIRE:
        schema = {"type": "integer"}
        bounds = arg.bounds
        if bounds is not None:
            schema["minimum"], schema["maximum"] = bounds
        if arg.choices is not None:
            schema["enum"] = list(arg.choices)
        if arg.accepts_bool:
            schema = {"anyOf": [schema, {"type": "boolean"}]}
    elif arg.type is WireType.F32:
        schema = {"type": "number"}
        if arg.min is not None:
            schema["minimum"] = arg.min
        if arg.max is not None:
            schema["maximum"] = arg.max
    elif arg.type is WireType.TEXT:
        schema = {"type": "string"}
    else:
        byte = {"type": "integer", "minimum": 0, "maximum": 255}
        schema = {"anyOf": [{"type": "string"}, {"type": "array", "items": byte}]}
    if arg.doc:
        schema["description"] = arg.doc
    return schema


def args_schema(spec: CommandSpec) -> str:
    """The `format` of a `json` command property: a JSON schema (as a string, as the
    convention asks) of an object with the command's arguments by name."""
    schema = {
        "type": "object",
        "properties": {a.name: arg_schema(a) for a in spec.args},
        "required": [a.name for a in spec.args if a.required],
        "additionalProperties": False,
    }
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def command_property(prop_id: str, module_slug: str, spec: CommandSpec) -> PropertyModel:
    """The settable, non-retained property of module command `spec`."""
    binding = Binding("command", module_slug, spec.name)
    datatype = scalar_datatype(spec)
    name = spec.doc or spec.name
    if datatype is None:
        return PropertyModel(
            prop_id,
            name,
            "json",
            binding,
            format=args_schema(spec),
            settable=True,
            retained=False,
        )
    arg = spec.args[0]
    fmt = None
    if datatype == "integer":
        fmt = range_format(arg.bounds)
    elif datatype == "float":
        fmt = _float_bounds(arg)
    return PropertyModel(
        prop_id, name, datatype, binding, format=fmt, settable=True, retained=False
    )


def module_nodes(board: Board, taken: Iterable[str] = ()) -> list[NodeModel]:
    """The module nodes of `board` (none before its first handshake); node IDs from the
    module names (`conduyt_bridge.core.naming.module_slugs`), distinct from `taken`."""
    hello = board.hello
    if hello is None:
        return []
    slugs = module_slugs(hello.modules)
    ids = unique_ids(slugs, taken, fallback="module")
    nodes: list[NodeModel] = []
    for node_id, (slug, module) in zip(ids, slugs.items(), strict=True):
        spec = CATALOG.get(module.name)
        props: dict[str, PropertyModel] = {}
        if spec is not None:
            commands = list(spec.commands.values())
            for prop_id, command in zip(
                unique_ids(c.name for c in commands), commands, strict=True
            ):
                props[prop_id] = command_property(prop_id, slug, command)
            events = list(spec.events.values())
            event_ids = unique_ids((e.name for e in events), taken=props, fallback="event")
            for prop_id, event in zip(event_ids, events, strict=True):
                props[prop_id] = PropertyModel(
                    prop_id,
                    event.doc or event.name,
                    "json",
                    Binding("event", slug, event.name),
                    retained=False,
                )
        node_type = f"conduyt.module.{homie_id(module.name, 'module')}"
        nodes.append(NodeModel(node_id, module.name, node_type, props))
    return nodes


def module_event(hello: HelloResp | None, payload: bytes) -> tuple[str, str, Any] | None:
    """(module slug, event name, fields) of a MOD_EVENT payload, attributed by shape as
    on the Conduyt topics (`docs/topics.md` §5); None when it cannot be attributed or is
    malformed."""
    if hello is None:
        return None
    try:
        event = parse_mod_event(payload)
        ordered = sorted(hello.modules, key=lambda m: m.module_id)
        name = attribute_event([m.name for m in ordered], event.event, event.data)
        if name is None:
            return None
        event_name, fields = decode_event(name, event.event, event.data)
    except PayloadDecodeError:
        return None
    slug = next(s for s, m in module_slugs(hello.modules).items() if m.name == name)
    return slug, event_name, fields


__all__ = [
    "arg_schema",
    "args_schema",
    "command_property",
    "module_event",
    "module_nodes",
    "scalar_datatype",
]
