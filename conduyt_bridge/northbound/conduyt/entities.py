"""Declared entities in the Conduyt topic layout (`docs/entities.md` §3, `docs/topics.md`).

- State: `{base}/{dev}/entity/{name}` (a DHT's on `…/entity/{name}/temperature` and
  `…/humidity`), retained for settings (switch, light, servo, strip, PID setpoint,
  stepper target, climate), not retained for measurements. `plain`: a boolean as
  `true`/`false`, a number as JSON number text; `json`: `{"value", "unit", "ts"}` like a
  datastream. Lights and climates are objects in both formats (HA's JSON light schema;
  `{"mode", "target", "current", "action"}`), with `ts` added in `json`.
- Commands: `…/entity/{name}/set` (and `…/entity/{name}/{part}/set`: an encoder's
  `reset`, a climate's `mode` and `target`) are jobs on the board's worker like every
  other command: the same refusals on `{dev}/error`, the same MQTT 5 responses.
- A declared entity the board cannot serve is reported once per connect on `{dev}/error`
  with its topic and the reason; the others run.

One `EntityFace` per board with entities, made by `attach_entities` (also for a board
added while the bridge runs) and undone by `detach_entities`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiomqtt
import structlog

from conduyt_bridge.core.entities.engine import SETTINGS, EntityEngine
from conduyt_bridge.core.entities.spec import (
    DhtSpec,
    EntitySpec,
    PidSpec,
    SensorSpec,
    ServoSpec,
    StepperSpec,
)
from conduyt_bridge.core.entities.values import EntityValue, show
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytError,
    ErrorName,
    describe_exception,
)
from conduyt_bridge.northbound.conduyt.payloads import (
    dumps,
    format_state,
    json_value,
    parse_command_payload,
)
from conduyt_bridge.northbound.host import AdapterHost

if TYPE_CHECKING:
    from conduyt_bridge.northbound.conduyt.command import Command, ConduytBoard

log = structlog.stdlib.get_logger(__name__)


def state_unit(spec: EntitySpec, part: str) -> str:
    """The unit of an entity's state value (`""` for none)."""
    match spec:
        case SensorSpec():
            return spec.unit or ""
        case DhtSpec():
            return "°C" if part == "temperature" else "%"
        case ServoSpec():
            return "°"
        case PidSpec():
            return "%"
        case StepperSpec():
            return "steps"
    return ""


class EntityFace:
    """Publishes one board's entity states and refusals; holds its engine."""

    def __init__(self, ctx: ConduytBoard, engine: EntityEngine) -> None:
        self.ctx = ctx
        self.engine = engine

    def payload(
        self, spec: EntitySpec, part: str, value: bool | int | float | str | dict[str, Any]
    ) -> bytes:
        """The state payload (see the module docstring)."""
        face = self.ctx.face
        is_json = face.payload_format == "json"
        if isinstance(value, dict):
            return dumps({**value, "ts": face.clock.now()} if is_json else value)
        ts = face.clock.now() if is_json else None
        return format_state(value, face.payload_format, state_unit(spec, part), ts)

    def entity_state(self, spec: EntitySpec, part: str, value: EntityValue) -> None:
        if value is None:
            return  # nothing read yet
        face = self.ctx.face
        retain = isinstance(spec, SETTINGS)
        face.mqtt.publish(
            face.topics.entity(spec.name, part),
            self.payload(spec, part, value),
            qos=1 if retain else face.state_qos,
            retain=retain,
        )

    def entity_refused(self, spec: EntitySpec, error: ConduytError) -> None:
        face = self.ctx.face
        face.report(face.topics.entity(spec.name), error, None)


def attach_entities(host: AdapterHost, ctx: ConduytBoard) -> EntityFace | None:
    """Give board `ctx` its declared entities: an engine listening to the board, run
    again by the handshake routine after an unseen reboot, publishing through `ctx`'s
    face. None when the board declares none. Safe for a board added at run time."""
    specs = tuple(getattr(ctx.board.config, "entity_specs", ()))
    if not specs:
        return None
    engine = EntityEngine(ctx.board, specs)
    face = EntityFace(ctx, engine)
    engine.observers.append(face)
    engine.attach()
    session = host.sessions.get(ctx.board.dev)
    if session is not None and engine.on_handshake not in session.handshake_hooks:
        session.handshake_hooks.append(engine.on_handshake)
    ctx.entities = engine
    return face


def detach_entities(host: AdapterHost, ctx: ConduytBoard) -> None:
    """Undo `attach_entities` (the board is being removed)."""
    engine = ctx.entities
    if engine is None:
        return
    engine.detach()
    session = host.sessions.get(ctx.board.dev)
    if session is not None and engine.on_handshake in session.handshake_hooks:
        session.handshake_hooks.remove(engine.on_handshake)
    ctx.entities = None


def parse_retained(payload: bytes) -> EntityValue:
    """A retained entity state read back at start (either format), or None."""
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if isinstance(doc, dict):
        doc.pop("ts", None)
        if set(doc) <= {"value", "unit"} and "value" in doc:
            return doc["value"]  # type: ignore[no-any-return]
        return doc
    if isinstance(doc, bool | int | float | str):
        return doc
    return None


async def seed_entities(host: AdapterHost, ctxs: list[ConduytBoard]) -> None:
    """Read the retained entity states once at start, so settings (a relay's state, a
    climate's mode) survive a bridge restart (`docs/entities.md` §6)."""
    engines = {c.face.topics.prefix: c.entities for c in ctxs if c.entities is not None}
    if not engines or not host.mqtt.connected:
        return
    try:
        found = await host.mqtt.fetch_retained([f"{p}/entity/+" for p in engines])
    except aiomqtt.MqttError as exc:
        log.info("could not read retained entity states", error=describe_exception(exc))
        return
    for topic, payload in found.items():
        prefix, _, name = topic.rpartition("/entity/")
        engine = engines.get(prefix)
        if engine is None or name not in engine.specs:
            continue
        if isinstance(engine.specs[name], SETTINGS):
            value = parse_retained(payload)
            if value is not None:
                engine.seed(name, value)


async def handle_entity(ctx: ConduytBoard, command: Command) -> dict[str, Any]:
    """`entity/{name}/set`, `entity/{name}/{part}/set`: the payload decoded (bare value,
    JSON, or an object with `value` / a light's members; `transaction` echoed) and handed
    to the engine. Returns `{"entity": name, "state": …}`.

    Raises ConduytCapabilityError (not declared, refused on this board, read-only, out
    of range), ConduytPayloadError (NOT_UTF8, EMPTY_PAYLOAD, NESTED_TOO_DEEP, BAD_VALUE,
    NO_VALUE), ConduytNAKError, ConduytTimeoutError, ConduytDisconnectedError.
    """
    engine = ctx.entities
    name, part = command.parsed.target, command.parsed.command
    if engine is None:
        raise ConduytCapabilityError(
            f"entity {show(name)} is not declared for board '{ctx.board.dev}' (entities: none)",
            ErrorName.BAD_TOPIC,
        )
    engine.require(name, part)
    parsed = parse_command_payload(command.payload)
    value = parsed.value
    if parsed.is_object:
        value = {k: v for k, v in value.items() if k != "transaction"}
    state = await engine.command(name, part, value)
    result: dict[str, Any] = {"entity": name}
    if part:
        result["command"] = part
    if state is not None:
        result["state"] = state if isinstance(state, dict) else json_value(state)
    return result


__all__ = [
    "EntityFace",
    "attach_entities",
    "detach_entities",
    "handle_entity",
    "parse_retained",
    "seed_entities",
    "state_unit",
]
