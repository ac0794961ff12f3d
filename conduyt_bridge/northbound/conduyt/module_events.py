"""MOD_EVENT packets on `{base}/{dev}/module/{mod}/event/{event}` (`docs/topics.md` §5).

Built-in modules send module id 0 (`docs/protocol.md` Q9), so events are attributed by
shape among the board's modules (`attribute_event`); a non-built-in module is trusted with
its own id and published as `{"data": base64}` under `event/{code}`. An event that cannot
be attributed (two encoders, an unknown shape) goes to `module/unknown/event/{code}`
(decimal code) as `{"module_id", "event", "data": base64, "candidates": [...]}`.
"""

from __future__ import annotations

import base64

import structlog

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.naming import module_slugs
from conduyt_bridge.errors import describe_exception
from conduyt_bridge.northbound.conduyt.face import BoardFace
from conduyt_bridge.northbound.conduyt.payloads import dumps
from conduyt_bridge.protocol.commands import parse_mod_event
from conduyt_bridge.protocol.errors import PayloadDecodeError
from conduyt_bridge.protocol.modules import CATALOG, attribute_event, decode_event
from conduyt_bridge.protocol.packet import Packet

log = structlog.stdlib.get_logger(__name__)

UNKNOWN_MODULE = "unknown"
"""`{mod}` level for MOD_EVENTs that cannot be attributed to one module."""


def publish_module_event(board: Board, face: BoardFace, packet: Packet) -> None:
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
        topic = face.topics.module_event(slug, event_name)
        face.mqtt.publish(topic, dumps(fields), qos=1, coalesce=False)
        return
    sender = hello.module(event.module_id)
    if sender is not None and sender.name not in CATALOG:
        # A sketch's own module: the built-ins' id-0 quirk (Q9) does not apply to it.
        slug = next(s for s, m in slugs.items() if m.module_id == sender.module_id)
        topic = face.topics.module_event(slug, str(event.event))
        face.mqtt.publish(topic, dumps({"data": raw}), qos=1, coalesce=False)
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
    topic = face.topics.module_event(UNKNOWN_MODULE, str(event.event))
    face.mqtt.publish(topic, dumps(doc), qos=1, coalesce=False)


__all__ = ["UNKNOWN_MODULE", "publish_module_event"]
