"""What the web console shows of each board (`docs/console.md` §2): the status document's
entry (`conduyt_bridge.app.web.status`) plus what the controls need: each writable
datastream's control and write range, each pin's capabilities and the modes, writes and
subscriptions it allows, each module's commands with their arguments from the module
catalog, the board's recent log lines and its `[[devices]]` options (what the options
form of `device/options` edits).

The ranges and choices here only shape the controls (input `min`/`max`, the options of a
select); the bridge's own validation still decides, on the same code path as MQTT
(`conduyt_bridge.app.web.commands`), so the console never refuses anything itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from conduyt_bridge.app.config import DeviceConfig
from conduyt_bridge.app.web.status import board_status
from conduyt_bridge.core.naming import module_slugs
from conduyt_bridge.device.capabilities import MODE_NAMES, SUBSCRIBE_MODE_NAMES
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics
from conduyt_bridge.protocol.constants import Capability, DatastreamType, SubscribeMode
from conduyt_bridge.protocol.hello import DatastreamDescriptor, HelloResp
from conduyt_bridge.protocol.module_specs import ArgSpec, CommandSpec, WireType
from conduyt_bridge.protocol.modules import CATALOG
from conduyt_bridge.protocol.values import write_range

if TYPE_CHECKING:
    from conduyt_bridge.core.board import Board

MAX_ERRORS_SHOWN = 10
"""Recent error reports per board in the console, newest first."""


def control_of(ds: DatastreamDescriptor) -> str | None:
    """The console's control for a datastream: `number`, `switch` (BOOL), `text`
    (STRING), `bytes` (BYTES, base64 text), or None when it is not writable."""
    if not ds.writable:
        return None
    known = ds.known_type
    if known is DatastreamType.BOOL:
        return "switch"
    if known is DatastreamType.STRING:
        return "text"
    if known is DatastreamType.BYTES:
        return "bytes"
    if known is not None and known.is_numeric:
        return "number"
    return None


def datastream_controls(board: Board) -> dict[str, dict[str, Any]]:
    """Per datastream slug: `control`, and for numbers `min`, `max` (the bridge's write
    range, `conduyt_bridge.protocol.values.write_range`) and `step` (1 for integers,
    `any` for FLOAT32)."""
    out: dict[str, dict[str, Any]] = {}
    for slug, ds in board.ds_by_slug.items():
        entry: dict[str, Any] = {"control": control_of(ds), "retain": ds.retain}
        bounds = write_range(ds)
        if entry["control"] == "number" and bounds is not None:
            integer = ds.known_type is not None and ds.known_type.is_integer
            lo, hi = bounds
            entry.update(
                min=int(lo) if integer else lo,
                max=int(hi) if integer else hi,
                step=1 if integer else "any",
            )
        out[slug] = entry
    return out


def pin_entries(board: Board, hello: HelloResp, values: Mapping[int, int]) -> list[dict[str, Any]]:
    """One entry per pin of the HELLO_RESP: `capabilities` (names), `modes` it supports
    (PIN_MODE names), its current `mode` as set through the bridge (None: unknown),
    `value` (last reading, None: none yet), `writable` (DIGITAL_OUT or PWM_OUT),
    `subscribe_modes` it allows and its active `subscription`."""
    pins = board.pins
    entries = []
    for p in hello.pins:
        caps = p.capabilities
        sub_modes = []
        if caps & Capability.DIGITAL_IN:
            sub_modes += [
                SUBSCRIBE_MODE_NAMES[m]
                for m in (SubscribeMode.CHANGE, SubscribeMode.RISING, SubscribeMode.FALLING)
            ]
        if caps & Capability.ANALOG_IN:
            sub_modes.append(SUBSCRIBE_MODE_NAMES[SubscribeMode.ANALOG_POLL])
        mode = pins.modes.get(p.pin)
        active = pins.active.get(p.pin)
        entries.append(
            {
                "pin": p.pin,
                "capabilities": list(p.capability_names),
                "modes": [MODE_NAMES[m] for m in p.modes],
                "mode": MODE_NAMES[mode] if mode is not None else None,
                "value": values.get(p.pin),
                "writable": bool(caps & (Capability.DIGITAL_OUT | Capability.PWM_OUT)),
                "pwm": bool(caps & Capability.PWM_OUT),
                "readable": bool(caps & (Capability.DIGITAL_IN | Capability.ANALOG_IN)),
                "subscribe_modes": sub_modes,
                "subscription": active.describe() if active is not None else None,
            }
        )
    return entries


def argument_entry(arg: ArgSpec) -> dict[str, Any]:
    """One module command argument for a form: `name`, `type` (wire type), `input`
    (`number`, `text`, `bytes`, `choice`, `switch`), `min`/`max` (numbers; for text the
    UTF-8 byte limit as `max`), `step`, `default`, `required`, `choices`, `pin` (the
    capability names a pin argument needs) and `doc`."""
    entry: dict[str, Any] = {
        "name": arg.name,
        "type": str(arg.type),
        "required": arg.required,
        "default": arg.default,
        "doc": arg.doc,
        "choices": list(arg.choices) if arg.choices is not None else None,
        "pin": [c.name for c in Capability if c and arg.pin is not None and c in arg.pin]
        if arg.pin is not None
        else None,
    }
    if arg.type is WireType.TEXT:
        entry.update(input="text", max=arg.max)
    elif arg.type is WireType.BYTES:
        entry["input"] = "bytes"
    elif arg.choices is not None:
        entry["input"] = "choice"
    elif arg.accepts_bool:
        entry["input"] = "switch"
    else:
        entry["input"] = "number"
        bounds = arg.bounds
        if bounds is not None:
            entry.update(min=bounds[0], max=bounds[1], step=1)
        else:
            entry.update(min=arg.min, max=arg.max, step="any")
    return entry


def command_entry(spec: CommandSpec) -> dict[str, Any]:
    """One module command for a form: `name`, `doc`, `reply` and its `args`."""
    return {
        "name": spec.name,
        "doc": spec.doc,
        "reply": spec.reply.name.lower(),
        "args": [argument_entry(a) for a in spec.args],
    }


def module_entries(hello: HelloResp) -> list[dict[str, Any]]:
    """The board's modules: `slug` (its topic name), `name`, `id` and the catalog's
    `commands` (empty for a module the catalog does not know: raw MOD_CMD only)."""
    out = []
    for slug, module in module_slugs(hello.modules).items():
        spec = CATALOG.get(module.name)
        commands = [command_entry(c) for c in spec.commands.values()] if spec else []
        out.append(
            {"slug": slug, "name": module.name, "id": module.module_id, "commands": commands}
        )
    return out


def options_of(board: Board) -> dict[str, Any]:
    """The board's `[[devices]]` options the console's options form edits
    (`docs/requests.md` §3, `device/options`): `read_only`, `allow_raw`, `datastreams`
    (`{name: {expire_after_s?, name?, …}}`, every key as configured) and `pins` (the
    subscriptions set up after each handshake: `[{pin, mode, interval_ms, threshold}]`).
    Empty for a board not configured by a `[[devices]]` table."""
    config = board.config
    doc: dict[str, Any] = {"read_only": config.read_only, "allow_raw": config.allow_raw}
    if isinstance(config, DeviceConfig):
        doc["datastreams"] = {
            name: options.model_dump(mode="json", exclude_none=True)
            for name, options in config.datastreams.items()
        }
        doc["pins"] = [sub.model_dump(mode="json") for sub in config.pins]
    else:
        doc.update(datastreams={}, pins=[])
    return doc


def board_document(
    board: Board,
    topics: BridgeTopics,
    counters: dict[str, Any] | None,
    pin_values: Mapping[int, int],
    log_lines: Iterable[dict[str, Any]],
) -> dict[str, Any]:
    """One board as the console renders it: `board_status` plus `allow_raw`, `controls`
    merged into each datastream, `pins`, `modules`, `log` (oldest first), `errors`
    (the last `MAX_ERRORS_SHOWN`, newest first) and `options` (`options_of`)."""
    doc = board_status(board, topics.device(board.dev), counters)
    controls = datastream_controls(board)
    for ds in doc["datastreams"]:
        ds.update(controls.get(ds["slug"], {"control": None}))
    hello = board.hello
    doc["allow_raw"] = board.config.allow_raw
    doc["pins"] = pin_entries(board, hello, pin_values) if hello is not None else []
    doc["modules"] = module_entries(hello) if hello is not None else []
    doc["log"] = list(log_lines)
    doc["errors"] = doc["errors"][:MAX_ERRORS_SHOWN]
    doc["options"] = options_of(board)
    return doc


def console_document(
    health: Mapping[str, Any],
    topics: BridgeTopics,
    boards: Iterable[dict[str, Any]],
    *,
    management: bool,
    login: bool = False,
) -> dict[str, Any]:
    """The whole console: the bridge (`bridge_id`, `version`, `uptime_s`, `broker` of
    `health`, the bridge's `AdapterHost.health()` document, and `base_topic`),
    `management` (whether the request API is there), `login` (whether a token guards the
    console: the page offers to log out) and the `boards`."""
    return {
        **{key: value for key, value in health.items() if key != "boards"},
        "base_topic": topics.base,
        "management": management,
        "login": login,
        "boards": list(boards),
    }


__all__ = [
    "MAX_ERRORS_SHOWN",
    "argument_entry",
    "board_document",
    "command_entry",
    "console_document",
    "control_of",
    "datastream_controls",
    "module_entries",
    "options_of",
    "pin_entries",
]
