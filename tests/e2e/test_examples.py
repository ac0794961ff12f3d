"""The shipped examples work with what the bridge really publishes and accepts."""

from __future__ import annotations

import json
from pathlib import Path

from support.broker import Broker
from support.harness import make_settings, running_bridge
from support.mqtt_client import publish
from support.recorder import Recorder

ROOT = Path(__file__).resolve().parents[2]


def test_config_example_loads() -> None:
    from conduyt_bridge.app.config import load_settings

    settings = load_settings(ROOT / "config.example.toml")
    assert [d.port for d in settings.devices] == ["sim://thermostat"]
    assert settings.mqtt.url == "mqtt://localhost:1883"


async def test_node_red_flow_topics_round_trip(mqtt_broker: Broker, base_topic: str) -> None:
    """Every topic the flow uses exists on a thermostat behind the bridge (with the flow's
    `conduyt` base topic swapped for this test's own), and its writes take effect."""
    flow = json.loads((ROOT / "examples" / "node-red-flow.json").read_text())
    ids = {node["id"] for node in flow}
    for node in flow:
        for outputs in node.get("wires", []):
            assert set(outputs) <= ids, f"{node['id']} wires to a missing node"
    ins = [n["topic"] for n in flow if n["type"] == "mqtt in"]
    outs = {n["name"]: n for n in flow if n["type"] == "mqtt out"}
    assert all(n["retain"] == "false" for n in outs.values()), "commands must not be retained"

    def local(topic: str) -> str:
        return topic.replace("conduyt/", f"{base_topic}/", 1)

    settings = make_settings(
        mqtt_broker, base_topic, [{"id": "thermostat", "port": "sim://thermostat"}]
    )
    async with (
        Recorder(mqtt_broker, *(local(t) for t in ins), f"{base_topic}/thermostat/ds/#") as rec,
        running_bridge(settings),
    ):
        temp = await rec.wait_for(local(ins[0]), timeout=5)
        assert isinstance(json.loads(temp.payload), float)
        await publish(mqtt_broker, local(outs["setpoint set"]["topic"]), b"22.5")
        await rec.wait_for(f"{base_topic}/thermostat/ds/setpoint_celsius", payload=b"22.5")
        await publish(mqtt_broker, local(outs["heater set"]["topic"]), b"on")
        await rec.wait_for(f"{base_topic}/thermostat/ds/heater", payload=b"true")
        assert rec.messages(f"{base_topic}/thermostat/error") == []
