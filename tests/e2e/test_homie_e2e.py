"""The Homie 5 adapter against a real broker (`docs/homie.md`), seen through a Homie
controller written from the convention (`support.homie_consumer`) and a `$description`
checker written from its text (`support.homie_schema`)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from support.broker import Broker
from support.harness import make_settings, pty_board_at, running_bridge, spawn_cli, wait_until
from support.homie_consumer import HomieConsumer
from support.homie_schema import STATES, description_problems
from support.mqtt_client import publish
from support.recorder import Recorder

BOARDS = [
    {"id": "th", "port": "sim://thermostat"},
    {"id": "kitchen", "port": "sim://kitchen"},
]


def homie_settings(broker: Broker, base_topic: str, devices: list[dict[str, Any]]) -> Any:
    return make_settings(broker, base_topic, devices, homie={"enabled": True})


def ids(base_topic: str) -> tuple[str, str, str]:
    root = f"bridge-{base_topic}"  # the client id `bridge-t-…` is already a Homie ID
    return root, f"{root}-th", f"{root}-kitchen"


async def test_root_and_children_are_valid_homie_devices(
    mqtt_broker: Broker, base_topic: str
) -> None:
    root, th, kitchen = ids(base_topic)
    async with (
        HomieConsumer(mqtt_broker) as homie,
        running_bridge(homie_settings(mqtt_broker, base_topic, BOARDS)),
    ):
        for device in (th, kitchen):
            await homie.wait_state(device, "ready")
        await homie.wait_state(root, "ready")
        root_doc = homie.description(root)
        assert root_doc is not None
        assert description_problems(root_doc, root, root=True) == []
        assert root_doc["homie"] == "5.0"
        assert root_doc["children"] == [th, kitchen]
        for device in (th, kitchen):
            doc = homie.description(device)
            assert doc is not None
            assert description_problems(doc, device, root=False) == []
            assert doc["root"] == root and doc["parent"] == root
            # Lifecycle order: init, then ready, and nothing outside the convention's.
            states = homie.states(device)
            assert states[0] == "init" and states[-1] == "ready"
            assert set(states) <= STATES
        doc = homie.description(th)
        assert doc is not None
        props = doc["nodes"]["datastreams"]["properties"]
        assert props["temperature"] == {
            "name": "temperature",
            "datatype": "float",
            "format": "-3.4028234663852886e38:3.4028234663852886e38",
            "unit": "°C",
        }
        assert props["setpoint"]["settable"] is True
        assert props["setpoint"]["format"] == "-1000000000:1000000000"
        assert props["humidity"]["unit"] == "%"
        assert props["heater"] == {"name": "heater", "datatype": "boolean", "settable": True}
        kdoc = homie.description(kitchen)
        assert kdoc is not None
        assert kdoc["nodes"]["datastreams"]["properties"]["light"]["format"] == "0:100"
        assert kdoc["nodes"]["datastreams"]["properties"]["door-open"]["datatype"] == "boolean"
        servo = kdoc["nodes"]["servo"]["properties"]
        assert servo["write"]["datatype"] == "integer"
        assert servo["write"]["format"] == "0:180"
        assert servo["write"]["settable"] is True and servo["write"]["retained"] is False
        assert servo["attach"]["datatype"] == "json"
        assert json.loads(servo["attach"]["format"])["required"] == ["pin"]
        # Values arrive in their datatype's form (checked by the consumer's decode).
        temperature = await homie.wait_value(th, "datastreams", "temperature")
        assert isinstance(temperature, float)
        assert isinstance(await homie.wait_value(kitchen, "datastreams", "status"), str)
        version = await homie.wait_value(root, "bridge", "version")
        assert isinstance(version, str) and version


async def test_set_goes_through_the_core_and_refusals_are_reported(
    mqtt_broker: Broker, base_topic: str
) -> None:
    _, th, kitchen = ids(base_topic)
    async with (
        HomieConsumer(mqtt_broker) as homie,
        Recorder(mqtt_broker, f"{base_topic}/#") as rec,
        running_bridge(homie_settings(mqtt_broker, base_topic, BOARDS)) as bridge,
    ):
        await homie.wait_state(th, "ready")
        await homie.wait_state(kitchen, "ready")
        await homie.set(th, "datastreams", "setpoint", "23.5")
        assert await homie.wait_value(th, "datastreams", "setpoint", 23.5) == 23.5
        await rec.wait_for(f"{base_topic}/th/ds/setpoint_celsius", payload=b"23.5")
        assert bridge.boards["th"].values["setpoint_celsius"] == 23.5
        await homie.set(kitchen, "datastreams", "light", "42")
        assert await homie.wait_value(kitchen, "datastreams", "light", 42) == 42
        await homie.set(kitchen, "servo", "attach", '{"pin": 1}')
        assert await homie.wait_value(kitchen, "servo", "attach") == {"pin": 1}
        await homie.set(kitchen, "servo", "write", "90")
        assert await homie.wait_value(kitchen, "servo", "write") == 90
        await homie.set(th, "datastreams", "heater", "true")
        assert await homie.wait_value(th, "datastreams", "heater", True) is True

        async def refusal(device: str, node: str, prop: str, payload: bytes | str) -> Any:
            dev = "th" if device == th else "kitchen"
            mark = rec.mark()
            await homie.set(device, node, prop, payload)
            report = await rec.wait_for_after(mark, f"{base_topic}/{dev}/error", timeout=5)
            return json.loads(report.payload)

        set_topic = f"homie/5/{th}/datastreams"
        assert await refusal(th, "datastreams", "setpoint", "2e9") == {
            "topic": f"{set_topic}/setpoint/set",
            "error": "capability",
            "code": None,
            "name": "OUT_OF_RANGE",
            "message": (await _core_message(bridge, "setpoint_celsius", 2e9)),
        }
        assert await refusal(th, "datastreams", "temperature", "1") == {
            "topic": f"{set_topic}/temperature/set",
            "error": "capability",
            "code": None,
            "name": "DATASTREAM_READONLY",
            "message": (
                "property 'datastreams/temperature' is not settable: "
                "datastream 'temperature' is read-only"
            ),
        }
        # A pin published read-only (a subscription) is not driven as an output.
        await publish(mqtt_broker, f"{base_topic}/th/pin/2/subscribe/set", b"change")
        await wait_until(lambda: "pin-2" in json.dumps(homie.description(th)), 10)
        pin = await refusal(th, "pins", "pin-2", "true")
        assert pin["name"] == "CAPABILITY" and "'pins/pin-2' is not settable" in pin["message"]
        assert 2 not in bridge.boards["th"].pins.modes
        light = await refusal(kitchen, "datastreams", "light", "101")
        assert light["name"] == "OUT_OF_RANGE"
        bad = await refusal(th, "datastreams", "heater", "TRUE")
        assert bad["error"] == "payload" and bad["name"] == "BAD_VALUE"
        assert "true or false" in bad["message"]
        # A module command through the catalog, checked by the core.
        servo = await refusal(kitchen, "servo", "write", "200")
        assert servo["name"] == "BAD_ARGUMENT"
        assert "angle must be an integer 0..180" in servo["message"]
        # Nothing of this changed the board.
        assert bridge.boards["th"].values["setpoint_celsius"] == 23.5


async def _core_message(bridge: Any, slug: str, value: float) -> str:
    """The core's own refusal text for writing `value` to `slug`."""
    from conduyt_bridge.errors import ConduytCapabilityError

    board = bridge.boards["th"]
    try:
        board.encode(board.datastream(slug), value)
    except ConduytCapabilityError as exc:
        return str(exc)
    raise AssertionError("the core accepted the value")


async def test_hostile_set_payloads_are_refused_and_the_bridge_keeps_running(
    mqtt_broker: Broker, base_topic: str
) -> None:
    _, th, kitchen = ids(base_topic)
    async with (
        HomieConsumer(mqtt_broker) as homie,
        Recorder(mqtt_broker, f"{base_topic}/+/error") as rec,
        running_bridge(homie_settings(mqtt_broker, base_topic, BOARDS)),
    ):
        await homie.wait_state(th, "ready")
        await homie.wait_state(kitchen, "ready")
        cases: list[tuple[str, str, str, str, bytes]] = [
            (th, "datastreams", "setpoint", "PAYLOAD_TOO_LONG", b"1" * 4_000_000),
            (th, "datastreams", "setpoint", "NOT_UTF8", b"\xff\xfe2"),
            (th, "datastreams", "setpoint", "BAD_VALUE", b"[" * 2000 + b"]" * 2000),
            (kitchen, "servo", "attach", "NESTED_TOO_DEEP", b"[" * 2000 + b"]" * 2000),
            (kitchen, "servo", "attach", "BAD_VALUE", b'"pin"'),
            (kitchen, "datastreams", "nope", "BAD_TOPIC", b"1"),
        ]
        for device, node, prop, name, payload in cases:
            dev = "th" if device == th else "kitchen"
            mark = rec.mark()
            await homie.set(device, node, prop, payload)
            report = json.loads(
                (await rec.wait_for_after(mark, f"{base_topic}/{dev}/error", timeout=5)).payload
            )
            assert report["name"] == name, report
            assert report["topic"] == f"homie/5/{device}/{node}/{prop}/set"
        # Still serving: a valid command after all that.
        await homie.set(th, "datastreams", "setpoint", "19")
        assert await homie.wait_value(th, "datastreams", "setpoint", 19.0) == 19.0
        assert homie.state(th) == "ready"


async def test_a_board_that_goes_away_is_lost_then_ready_again(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    link = tmp_path / "board"
    root = f"bridge-{base_topic}"
    child = f"{root}-pty"
    async with pty_board_at(link, "thermostat", seed=3) as board:
        settings = homie_settings(mqtt_broker, base_topic, [{"id": "pty", "port": str(link)}])
        async with HomieConsumer(mqtt_broker) as homie, running_bridge(settings):
            await homie.wait_state(child, "ready")
            await board.unplug()
            await homie.wait_state(child, "lost")
            assert homie.state(root) == "ready"
            await board.replug()
            await homie.wait_state(child, "ready", within_s=15)
            await homie.wait_value(child, "datastreams", "temperature")
        # A clean stop: every device says `disconnected`.
        assert homie.state(child) == "disconnected"
        await homie.wait_state(root, "disconnected")


async def test_clean_stop_says_disconnected(mqtt_broker: Broker, base_topic: str) -> None:
    root, th, kitchen = ids(base_topic)
    async with HomieConsumer(mqtt_broker) as homie:
        async with running_bridge(homie_settings(mqtt_broker, base_topic, BOARDS)):
            await homie.wait_state(root, "ready")
        for device in (th, kitchen, root):
            await homie.wait_state(device, "disconnected", within_s=5)


async def test_killed_bridge_leaves_the_root_lost_by_its_will(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    root, th, _ = ids(base_topic)
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"""
[bridge]
base_topic = "{base_topic}"

[mqtt]
url = "{mqtt_broker.url}"
client_id = "bridge-{base_topic}"
keepalive_s = 2

[homeassistant]
enabled = false

[homie]
enabled = true

[[devices]]
id = "th"
port = "sim://thermostat"
""",
        encoding="utf-8",
    )
    async with HomieConsumer(mqtt_broker) as homie:
        proc = await spawn_cli(config)
        try:
            await homie.wait_state(root, "ready", within_s=20)
            await homie.wait_state(th, "ready")
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            # The broker publishes the Will once it notices (1.5 keepalives at most).
            await homie.wait_state(root, "lost", within_s=15)
            assert homie.state(th) == "ready"  # its own state, as the bridge left it
            assert homie.effective_state(th) == "lost"  # but derived from its root
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_retained_descriptions_keep_their_version_across_restarts(
    mqtt_broker: Broker, base_topic: str
) -> None:
    _, th, _ = ids(base_topic)
    settings = homie_settings(mqtt_broker, base_topic, BOARDS[:1])
    async with HomieConsumer(mqtt_broker) as homie:
        async with running_bridge(settings):
            await homie.wait_state(th, "ready")
            first = homie.description(th)
        mark = homie.rec.mark()
        async with running_bridge(settings):
            await wait_until(lambda: homie.rec.since(mark, f"homie/5/{th}/$description"), 10)
            await homie.wait_state(th, "ready")
            again = homie.description(th)
        assert first is not None and again is not None
        assert again == first  # same document, same version


async def test_homie_is_off_by_default(mqtt_broker: Broker, base_topic: str) -> None:
    root, _, _ = ids(base_topic)
    settings = make_settings(mqtt_broker, base_topic, BOARDS[:1])
    async with HomieConsumer(mqtt_broker) as homie, running_bridge(settings):
        await asyncio.sleep(1.0)
        assert homie.state(root) is None
    await publish(mqtt_broker, f"homie/5/{root}/$state", b"", retain=True)


async def test_a_board_removed_from_the_config_loses_its_child(
    mqtt_broker: Broker, base_topic: str
) -> None:
    root, th, kitchen = ids(base_topic)
    async with HomieConsumer(mqtt_broker) as homie:
        async with running_bridge(homie_settings(mqtt_broker, base_topic, BOARDS)):
            await homie.wait_state(kitchen, "ready")
            # the kitchen profile pushes `status` every 5 s: wait for two periods
            await homie.wait_value(kitchen, "datastreams", "status", within_s=12.0)
        mark = homie.rec.mark()
        async with running_bridge(homie_settings(mqtt_broker, base_topic, BOARDS[:1])):
            await homie.wait_state(root, "ready")
            await wait_until(lambda: homie.description(kitchen) is None, 10)
            gone = homie.rec.since(mark, f"homie/5/{kitchen}/#")
            assert gone[0].topic.endswith("/$state") and gone[0].payload == b""
            assert all(m.payload == b"" for m in gone)
            assert any(m.topic.endswith("/datastreams/status") for m in gone)
            assert homie.state(kitchen) is None
            assert (homie.description(root) or {}).get("children") == [th]
