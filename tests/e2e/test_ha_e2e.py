"""Home Assistant discovery end to end: what a running bridge publishes under the
discovery prefix, validated against HA's schema (tests/support/ha_schema/); re-publication on
HA's birth message; removals when a board changes; the sweep when discovery is off."""

from __future__ import annotations

from pathlib import Path

from support.broker import Broker
from support.ha_schema import validate_message
from support.harness import make_settings, running_bridge
from support.mqtt_client import publish, retained_snapshot
from support.recorder import Recorder

from conduyt_bridge.northbound.conduyt.topics import default_bridge_id
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import get_profile
from conduyt_bridge.simulator.ptyboard import PtyBoard

BRIDGE_ID = default_bridge_id()
"""The test bridges' `[bridge] id`: the default, this host's name (`docs/fleet.md` §1)."""


def ha_settings(broker: Broker, base_topic: str, port: str, **ha: object):  # type: ignore[no-untyped-def]
    prefix = f"{base_topic}-ha"
    return prefix, make_settings(
        broker,
        base_topic,
        [{"id": "th", "port": port}],
        homeassistant={"enabled": True, "discovery_prefix": prefix, **ha},
    )


async def test_device_discovery_is_valid_and_complete(mqtt_broker: Broker, base_topic: str) -> None:
    prefix, settings = ha_settings(mqtt_broker, base_topic, "sim://thermostat")
    client_id = settings.mqtt.client_id
    async with Recorder(mqtt_broker, f"{prefix}/#") as rec, running_bridge(settings):
        board_cfg = await rec.wait_for(f"{prefix}/device/{client_id}_th/config")
        bridge_cfg = await rec.wait_for(f"{prefix}/device/{client_id}_bridge/config")
        for msg in (board_cfg, bridge_cfg):
            assert msg.retain is True
            assert validate_message(msg.topic, msg.payload, prefix) == []
        doc = board_cfg.json()
        # Firmware `sim-thermostat`: vendor `sim`, model `thermostat` (docs/home-assistant.md).
        dev = doc["dev"]
        assert (dev["manufacturer"], dev["model"]) == ("Conduyt simulator", "thermostat")
        assert doc["dev"]["sw_version"] == "1.2.0"
        assert doc["dev"]["via_device"] == f"conduyt_bridge_{client_id}"
        platforms = {c["p"] for c in doc["cmps"].values()}
        assert platforms == {"sensor", "number", "switch", "binary_sensor"}
        cmps = doc["cmps"]
        temp = cmps["ds_temperature_celsius"]
        assert temp["p"] == "sensor"
        assert temp["state_topic"] == f"{base_topic}/th/ds/temperature_celsius"
        assert temp["device_class"] == "temperature"
        assert temp["unit_of_measurement"] == "°C"
        assert cmps["ds_setpoint_celsius"]["p"] == "number"
        assert cmps["ds_setpoint_celsius"]["command_topic"] == (
            f"{base_topic}/th/ds/setpoint_celsius/set"
        )
        assert cmps["ds_heater"]["p"] == "switch"
        assert cmps["ds_humidity_percent"]["device_class"] == "humidity"
        assert [a["topic"] for a in temp["availability"]] == [
            f"{base_topic}/bridge/{BRIDGE_ID}/state",
            f"{base_topic}/th/status",
        ]
        assert temp["availability_mode"] == "all"

        # Home Assistant restarted: its birth message makes the bridge publish again.
        mark = rec.mark()
        await publish(mqtt_broker, f"{prefix}/status", b"online", qos=1)
        again = await rec.wait_for_after(mark, f"{prefix}/device/{client_id}_th/config")
        assert again.json() == doc


async def test_components_mode_and_board_change_removes_ghosts(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    board = SimulatedBoard(get_profile("thermostat"), seed=5)
    async with PtyBoard(board, link=tmp_path / "ttyHA") as pty:
        prefix, settings = ha_settings(
            mqtt_broker, base_topic, str(pty.link), discovery_mode="components"
        )
        async with Recorder(mqtt_broker, f"{prefix}/#") as rec, running_bridge(settings):
            await rec.wait_for(f"{prefix}/number/+/+/config")
            setpoint_topics = [m.topic for m in rec.messages(f"{prefix}/number/+/+/config")]
            for m in rec.messages():
                assert validate_message(m.topic, m.payload, prefix) == [], m.topic
            mark = rec.mark()
            await pty.unplug()
            board.reboot(new_profile=get_profile("uno"))  # no datastreams at all
            await pty.replug(reboot=False)
            removed = await rec.wait_for_after(mark, setpoint_topics[0], timeout=10)
            assert removed.payload == b"" and removed.retain is True
        retained = await retained_snapshot(mqtt_broker, f"{prefix}/#")
        assert not any("/number/" in t or "/switch/" in t for t in retained)


async def test_disabled_discovery_removes_what_was_published(
    mqtt_broker: Broker, base_topic: str
) -> None:
    prefix, settings = ha_settings(mqtt_broker, base_topic, "sim://thermostat")
    async with Recorder(mqtt_broker, f"{prefix}/#") as rec, running_bridge(settings):
        await rec.wait_for(f"{prefix}/device/{settings.mqtt.client_id}_th/config")
    assert len(await retained_snapshot(mqtt_broker, f"{prefix}/#")) == 2
    _, off = ha_settings(mqtt_broker, base_topic, "sim://thermostat", enabled=False)
    async with Recorder(mqtt_broker, f"{prefix}/#") as rec, running_bridge(off):
        cleared = await rec.wait_for_new(f"{prefix}/device/+/config", payload=b"", timeout=8)
        assert cleared.retain is True
        await rec.wait_for_new(f"{prefix}/device/+/config", payload=b"", timeout=8)
    assert await retained_snapshot(mqtt_broker, f"{prefix}/#") == {}
