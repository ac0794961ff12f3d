"""Home Assistant discovery of declared entities end to end (`docs/entities.md`, the
table in `conduyt_bridge.northbound.homeassistant.declared`): a bridge with the `garage`
simulator board (`sim://garage`) and real Mosquitto, in both `[homeassistant]
discovery_mode`s. The retained discovery payloads are read back from the broker, every
component passes the project's HA schema check (`tests/support/ha_schema/`), and each
control is driven the way HA drives it: the payload HA sends on the component's command
topic, then the state topic read through the component's own templates, rendered with
Jinja2 as HA renders them (`value` = payload text, `value_json` = the parsed JSON).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from support.broker import Broker
from support.ha_schema import validate_message
from support.ha_schema.checks import expand, expand_tilde
from support.ha_schema.tables import ABBREVIATIONS
from support.harness import make_settings, running_bridge
from support.mqtt_client import publish, retained_snapshot
from support.recorder import Recorder
from test_entities_e2e import ENTITIES

_JINJA = ImmutableSandboxedEnvironment()

PLATFORMS = {
    "entity_relay": "switch",
    "entity_door": "binary_sensor",
    "entity_lamp": "light",
    "entity_pot": "sensor",
    "entity_bell": "button",
    "entity_arm": "number",
    "entity_strip": "light",
    "entity_room_temperature": "sensor",
    "entity_room_humidity": "sensor",
    "entity_knob": "sensor",
    "entity_knob_reset": "button",
    "entity_lift": "number",
    "entity_loop": "number",
    "entity_heating": "climate",
}
"""Every declared entity's components; `bad` (a light on a pin without PWM) has none."""

TOPICS = {
    # component: (state_topic suffix, command_topic suffix), under `{base}/g/entity/`
    "entity_relay": ("relay", "relay/set"),
    "entity_door": ("door", None),
    "entity_lamp": ("lamp", "lamp/set"),
    "entity_pot": ("pot", None),
    "entity_bell": (None, "bell/set"),
    "entity_arm": ("arm", "arm/set"),
    "entity_strip": ("strip", "strip/set"),
    "entity_room_temperature": ("room/temperature", None),
    "entity_room_humidity": ("room/humidity", None),
    "entity_knob": ("knob", None),
    "entity_knob_reset": (None, "knob/reset/set"),
    "entity_lift": ("lift", "lift/set"),
    "entity_loop": ("loop", "loop/set"),
    "entity_heating": (None, None),
}


def render(template: str | None, payload: bytes) -> str:
    """What HA reads from `payload` through a `value_template`-like `template` (none:
    the payload text)."""
    text = payload.decode("utf-8")
    if template is None:
        return text
    try:
        value_json: Any = json.loads(text)
    except ValueError:
        value_json = None
    return _JINJA.from_string(template).render(value=text, value_json=value_json)


def components(retained: dict[str, bytes], prefix: str, mode: str) -> dict[str, dict[str, Any]]:
    """The board's entity components from the retained discovery topics, abbreviations
    expanded, `platform` set (from the topic in `components` mode)."""
    out: dict[str, dict[str, Any]] = {}
    for topic, payload in retained.items():
        if not payload or topic.endswith("_bridge/config"):
            continue
        doc = json.loads(payload)
        parts = topic[len(prefix) + 1 :].split("/")
        if mode == "device":
            assert parts[0] == "device"
            for cid, raw in doc["cmps"].items():
                if cid.startswith("entity_"):
                    conf, problems = expand(raw, ABBREVIATIONS, cid)
                    assert problems == []
                    out[cid] = expand_tilde(conf)
        elif parts[2].startswith("entity_"):
            conf, problems = expand(doc, ABBREVIATIONS, parts[2])
            assert problems == []
            out[parts[2]] = {**expand_tilde(conf), "platform": parts[0]}
    return out


@pytest.mark.parametrize(("mode", "fmt"), [("device", "plain"), ("components", "json")])
async def test_declared_entities_discovery_and_ha_round_trip(
    mqtt_broker: Broker, base_topic: str, mode: str, fmt: str
) -> None:
    prefix = f"{base_topic}-ha"
    settings = make_settings(
        mqtt_broker,
        base_topic,
        [{"id": "g", "port": "sim://garage", "entities": ENTITIES}],
        mqtt={"payload_format": fmt},
        homeassistant={"enabled": True, "discovery_prefix": prefix, "discovery_mode": mode},
    )
    p = f"{base_topic}/g"
    async with (
        Recorder(mqtt_broker, f"{base_topic}/#") as rec,
        Recorder(mqtt_broker, f"{prefix}/#") as ha,
        running_bridge(settings),
    ):
        await rec.wait_for(f"{p}/status", payload=b"online", timeout=10)
        last = "device/+/config" if mode == "device" else "climate/+/entity_heating/config"
        await ha.wait_for(f"{prefix}/{last}", lambda b: b"entity_heating" in b)
        retained = await retained_snapshot(mqtt_broker, f"{prefix}/#")
        for topic, payload in retained.items():
            assert validate_message(topic, payload, prefix) == [], topic
        cmps = components(retained, prefix, mode)
        assert {cid: c["platform"] for cid, c in cmps.items()} == PLATFORMS

        for cid, (state, command) in TOPICS.items():
            conf = cmps[cid]
            assert conf.get("state_topic") == (f"{p}/entity/{state}" if state else None), cid
            assert conf.get("command_topic") == (f"{p}/entity/{command}" if command else None)
            if command:
                assert conf["retain"] is False
            is_value = conf["platform"] in ("sensor", "number")
            expected = "{{ value_json.value }}" if fmt == "json" and is_value else None
            if conf["platform"] in ("switch", "binary_sensor") and fmt == "json":
                expected = "{{ 'true' if value_json.value else 'false' }}"
            assert conf.get("value_template") == expected, cid

        for cid, modes in (("entity_lamp", ["brightness"]), ("entity_strip", ["rgb"])):
            light = cmps[cid]
            assert (light["schema"], light["brightness"], light["brightness_scale"]) == (
                "json",
                True,
                255,
            )
            assert light["supported_color_modes"] == modes
        heating = cmps["entity_heating"]
        state_topic = f"{p}/entity/heating"
        assert {k: v for k, v in heating.items() if "topic" in k or "template" in k} == {
            "mode_command_topic": f"{p}/entity/heating/mode/set",
            "mode_state_topic": state_topic,
            "mode_state_template": "{{ value_json.mode }}",
            "temperature_command_topic": f"{p}/entity/heating/target/set",
            "temperature_state_topic": state_topic,
            "temperature_state_template": "{{ value_json.target }}",
            "current_temperature_topic": state_topic,
            "current_temperature_template": "{{ value_json.current }}",
            "action_topic": state_topic,
            "action_template": "{{ value_json.action }}",
        }
        assert (heating["modes"], heating["temperature_unit"]) == (["off", "heat"], "C")

        async def ha_sends(topic: str, payload: str) -> int:
            mark = rec.mark()
            await publish(mqtt_broker, topic, payload, qos=1, retain=False)
            return mark

        async def ha_reads(mark: int, topic: str, template: str | None, want: str) -> None:
            await rec.wait_for_after(mark, topic, lambda b: render(template, b) == want)

        # switch: HA sends payload_on, then shows "on" when the state renders to state_on
        relay = cmps["entity_relay"]
        mark = await ha_sends(relay["command_topic"], relay["payload_on"])
        await ha_reads(mark, relay["state_topic"], relay.get("value_template"), relay["state_on"])
        mark = await ha_sends(relay["command_topic"], relay["payload_off"])
        await ha_reads(mark, relay["state_topic"], relay.get("value_template"), relay["state_off"])

        # JSON-schema light: HA sends {"state", "brightness"} and reads the same members
        lamp = cmps["entity_lamp"]
        mark = await ha_sends(lamp["command_topic"], '{"state":"ON","brightness":128}')
        got = await rec.wait_for_after(mark, lamp["state_topic"])
        doc = json.loads(got.payload)
        assert (doc["state"], doc["brightness"], doc["color_mode"]) == ("ON", 128, "brightness")
        assert got.retain is True
        strip = cmps["entity_strip"]
        command = {"state": "ON", "color": {"r": 255, "g": 0, "b": 0}, "brightness": 128}
        mark = await ha_sends(strip["command_topic"], json.dumps(command))
        doc = json.loads((await rec.wait_for_after(mark, strip["state_topic"])).payload)
        assert (doc["state"], doc["brightness"], doc["color_mode"]) == ("ON", 128, "rgb")
        assert doc["color"] == {"r": 255, "g": 0, "b": 0}

        # number: HA sends the number as text and reads it back through value_template
        for cid, value in (("entity_arm", "90"), ("entity_lift", "400"), ("entity_loop", "42.5")):
            number = cmps[cid]
            mark = await ha_sends(number["command_topic"], value)
            got = await rec.wait_for_after(mark, number["state_topic"])
            assert float(render(number.get("value_template"), got.payload)) == float(value)

        # climate: mode `heat` and a target of 30 °C as HA sends them (a float's text)
        mark = await ha_sends(heating["temperature_command_topic"], "30.0")
        await ha_reads(mark, state_topic, heating["temperature_state_template"], "30.0")
        mark = await ha_sends(heating["mode_command_topic"], "heat")
        await ha_reads(mark, state_topic, heating["mode_state_template"], "heat")
        got = rec.since(mark, state_topic)[-1]
        assert render(heating["action_template"], got.payload) == "heating"
        current = float(render(heating["current_temperature_template"], got.payload))
        assert 10 <= current <= 35  # the simulated DHT22's room

        # read-only components render to what HA expects of them
        door = cmps["entity_door"]
        got = await rec.wait_for(door["state_topic"])
        shown = render(door.get("value_template"), got.payload)
        assert shown == door["payload_off"]
        room = cmps["entity_room_temperature"]
        got = await rec.wait_for(room["state_topic"])
        assert 10 <= float(render(room.get("value_template"), got.payload)) <= 35
