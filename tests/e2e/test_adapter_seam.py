"""A third northbound adapter needs nothing but its own code and one line where the
adapters are listed (`docs/architecture.md` §2): this tiny one, written here against the
host protocol only (`conduyt_bridge.northbound.host.AdapterHost`), publishes every
datastream as JSON under its own prefix, takes writes on `…/write`, and says goodbye at a
clean stop, next to the Conduyt layout and sharing its board core."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt
from support.broker import Broker
from support.harness import make_settings, wait_until
from support.mqtt_client import publish
from support.recorder import Recorder

from conduyt_bridge.app.daemon import Bridge
from conduyt_bridge.app.plugins import default_adapters
from conduyt_bridge.core.board import Board
from conduyt_bridge.core.events import BoardEvent, BoardOnline, DatastreamUpdated
from conduyt_bridge.errors import ConduytError
from conduyt_bridge.northbound.host import AdapterHost
from conduyt_bridge.northbound.mqtt.connection import OutMessage


class TinyWrite:
    """A write of one datastream as a job for the board's worker."""

    def __init__(self, host: AdapterHost, prefix: str, slug: str, value: Any) -> None:
        self.host, self.prefix, self.slug, self.value = host, prefix, slug, value

    label = "tiny write"
    retained = False

    async def run(self, board: Board) -> dict[str, Any]:
        return {"value": await board.write_datastream(self.slug, self.value)}

    def succeeded(self, board: Board, result: dict[str, Any]) -> None:
        self.host.mqtt.publish(f"{self.prefix}/{board.dev}/result", json.dumps(result).encode())

    def failed(self, board: Board, error: ConduytError) -> None:
        doc = {"error": type(error).__name__, "name": error.name, "message": str(error)}
        self.host.mqtt.publish(f"{self.prefix}/{board.dev}/result", json.dumps(doc).encode())


def tiny_adapter(prefix: str) -> Any:
    def install(host: AdapterHost) -> None:
        def on_event(event: BoardEvent) -> None:
            if isinstance(event, DatastreamUpdated):
                doc = {"value": event.value, "unit": event.datastream.unit}
                topic = f"{prefix}/{event.dev}/{event.slug}"
                host.mqtt.publish(topic, json.dumps(doc).encode())
            elif isinstance(event, BoardOnline):
                host.mqtt.publish(f"{prefix}/{event.dev}", b"up", qos=1, retain=True)

        async def on_connect() -> None:
            await host.mqtt.subscribe([f"{prefix}/+/+/write"])

        async def route(message: aiomqtt.Message) -> bool:
            parts = message.topic.value.split("/")
            if parts[0] != prefix or len(parts) != 4 or parts[3] != "write":
                return False
            board = host.boards[parts[1]]
            value = json.loads(bytes(message.payload))  # type: ignore[arg-type]
            board.submit(TinyWrite(host, prefix, parts[2], value))
            return True

        host.bus.subscribe(on_event)
        host.on_connect(on_connect)
        host.add_router(route)
        host.add_final_messages(
            lambda: [OutMessage(f"{prefix}/{dev}", b"down", 1, True) for dev in host.boards]
        )

    return install


async def test_a_third_adapter_plugs_in_beside_the_others(
    mqtt_broker: Broker, base_topic: str
) -> None:
    settings = make_settings(mqtt_broker, base_topic, [{"id": "th", "port": "sim://thermostat"}])
    tiny = f"tiny-{base_topic}"
    async with Recorder(mqtt_broker, f"{tiny}/#", f"{base_topic}/th/#") as rec:
        bridge = Bridge(settings, adapters=[*default_adapters(settings), tiny_adapter(tiny)])
        task = asyncio.create_task(bridge.run())
        try:
            await rec.wait_for(f"{tiny}/th", payload=b"up", timeout=10)
            temp = await rec.wait_for(f"{tiny}/th/temperature_celsius", timeout=5)
            assert json.loads(temp.payload)["unit"] == "celsius"
            # A write through the tiny adapter goes through the same core: validated,
            # written, and published by the Conduyt layout too.
            await publish(mqtt_broker, f"{tiny}/th/setpoint_celsius/write", "23.5")
            result = await rec.wait_for(f"{tiny}/th/result", timeout=5)
            assert json.loads(result.payload) == {"value": 23.5}
            await rec.wait_for(f"{base_topic}/th/ds/setpoint_celsius", payload=b"23.5")
            assert bridge.boards["th"].replay == {"setpoint_celsius": 23.5}
            # A refusal says whose fault it is, with the core's own message.
            mark = rec.mark()
            await publish(mqtt_broker, f"{tiny}/th/temperature_celsius/write", "1")
            refusal = await rec.wait_for_after(mark, f"{tiny}/th/result", timeout=5)
            assert json.loads(refusal.payload) == {
                "error": "ConduytCapabilityError",
                "name": "DATASTREAM_READONLY",
                "message": "datastream 'temperature' is read-only",
            }
        finally:
            bridge.stop()
            await asyncio.wait_for(task, 10)
        await rec.wait_for(f"{tiny}/th", payload=b"down", timeout=5)
        await wait_until(lambda: rec.messages(f"{base_topic}/th/status")[-1].payload == b"offline")
