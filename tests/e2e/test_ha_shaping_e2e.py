"""Shaped Home Assistant entities end to end (`docs/home-assistant.md`, "Shaping
datastream entities"): a running bridge with `sim://thermostat`, a real Mosquitto, `°F`
display units on the board's `celsius` datastreams, a device name, and the console's
`configuration_url` on the bridge device. The retained discovery payloads pass the HA
schema check; their templates turn the board's °C on the Conduyt topics into the °F HA
shows, and HA's °F back into the °C the board is written."""

from __future__ import annotations

from fractions import Fraction

from support.broker import Broker
from support.ha_schema import validate_message
from support.ha_templates import command_sent, state_shown
from support.harness import make_settings, running_bridge
from support.mqtt_client import publish, retained_snapshot
from support.net import free_port
from support.recorder import Recorder

from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import get_profile
from conduyt_bridge.simulator.tcp_server import TcpBoardServer


async def test_fahrenheit_name_and_console_link(mqtt_broker: Broker, base_topic: str) -> None:
    prefix = f"{base_topic}-ha"
    http_port = free_port()
    settings = make_settings(
        mqtt_broker,
        base_topic,
        [
            {
                "id": "th",
                "name": "Living room thermostat",
                "port": "sim://thermostat",
                "datastreams": {
                    "temperature": {"unit": "°F", "icon": "mdi:thermometer"},
                    "setpoint": {"unit": "°F", "min": 40, "max": 90, "step": 0.5},
                },
            }
        ],
        homeassistant={"enabled": True, "discovery_prefix": prefix},
        http={"listen": f"127.0.0.1:{http_port}"},
    )
    client_id = settings.mqtt.client_id
    board_topic = f"{prefix}/device/{client_id}_th/config"
    bridge_topic = f"{prefix}/device/{client_id}_bridge/config"
    temp_state = f"{base_topic}/th/ds/temperature_celsius"
    setpoint_state = f"{base_topic}/th/ds/setpoint_celsius"
    async with (
        Recorder(mqtt_broker, f"{prefix}/#", f"{base_topic}/th/ds/#") as rec,
        running_bridge(settings),
    ):
        await rec.wait_for(board_topic)
        await rec.wait_for(bridge_topic)
        await rec.wait_for(temp_state)
        retained = await retained_snapshot(mqtt_broker, f"{prefix}/#")
        assert set(retained) == {board_topic, bridge_topic}
        for topic, payload in retained.items():
            assert validate_message(topic, payload, prefix) == [], topic

        board = rec.messages(board_topic)[-1]
        assert board.retain is True
        doc = board.json()
        assert doc["dev"]["name"] == "Living room thermostat"
        assert (doc["dev"]["manufacturer"], doc["dev"]["model"], doc["dev"]["model_id"]) == (
            "Conduyt simulator",
            "thermostat",
            "sim-thermostat",
        )
        temp = doc["cmps"]["ds_temperature_celsius"]
        assert temp["unit_of_measurement"] == "°F"
        assert temp["device_class"] == "temperature"
        assert temp["icon"] == "mdi:thermometer"
        assert temp["state_topic"] == temp_state
        assert temp["value_template"] == (
            "{% if is_number(value) %}{{ '%.7g' | format((value | float) * 1.8 + 32) }}"
            "{% else %}{{ value }}{% endif %}"
        )
        # The Conduyt topic keeps the board's °C; HA's template shows it in °F.
        celsius = Fraction(rec.messages(temp_state)[-1].payload.decode())
        # (to 7 significant digits, float32's precision: `shaping._value_template`)
        exact = celsius * Fraction(9, 5) + 32
        shown = state_shown(temp["value_template"], celsius, is_json=False)
        assert abs(shown - exact) <= abs(exact) / 10**6

        setpoint = doc["cmps"]["ds_setpoint_celsius"]
        assert (setpoint["p"], setpoint["unit_of_measurement"]) == ("number", "°F")
        assert (setpoint["min"], setpoint["max"], setpoint["step"]) == (40.0, 90.0, 0.5)
        assert setpoint["command_template"] == "{{ (value - 32) / 1.8 }}"

        # HA sets 77 °F: its command template sends 25 (°C) on the /set topic, the board
        # takes it and the bridge publishes 25.0 on the state topic, which HA shows as 77 °F.
        payload = command_sent(setpoint["command_template"], Fraction(77))
        assert payload == 25
        mark = rec.mark()
        await publish(mqtt_broker, setpoint["command_topic"], str(payload).encode(), qos=1)
        state = await rec.wait_for_after(mark, setpoint_state, payload=b"25.0")
        assert state.retain is True
        shown = state_shown(setpoint["value_template"], Fraction(state.payload.decode()), False)
        assert shown == 77

        bridge_dev = rec.messages(bridge_topic)[-1].json()["dev"]
        assert bridge_dev["configuration_url"] == f"http://127.0.0.1:{http_port}/"


async def test_misfit_options_of_a_real_board_are_reported(
    mqtt_broker: Broker, base_topic: str
) -> None:
    """A board reached over TCP (its datastreams are unknown when the config loads):
    options that do not fit what it declares are reported on `{base}/{dev}/error`, one
    report per option, and its entities are published without them (`name` still
    applies)."""
    prefix = f"{base_topic}-ha"
    board = SimulatedBoard(get_profile("thermostat"), framing="raw", seed=1)
    async with TcpBoardServer(board, "127.0.0.1", 0) as server:
        host, port = server.address
        settings = make_settings(
            mqtt_broker,
            base_topic,
            [
                {
                    "id": "t",
                    "port": f"tcp://{host}:{port}",
                    "datastreams": {
                        "temperature": {"min": 0, "icon": "mdi:thermometer"},
                        "setpoint": {"state_class": "measurement", "name": "Target"},
                    },
                }
            ],
            homeassistant={"enabled": True, "discovery_prefix": prefix},
        )
        config_topic = f"{prefix}/device/{settings.mqtt.client_id}_t/config"
        error_topic = f"{base_topic}/t/error"
        async with (
            Recorder(mqtt_broker, f"{prefix}/#", error_topic) as rec,
            running_bridge(settings),
        ):
            doc = (await rec.wait_for(config_topic)).json()
            await rec.wait_for(error_topic, lambda p: b"setpoint" in p)
            reports = rec.messages(error_topic)
            assert [r.retain for r in reports] == [False, False]
            suffix = " (Home Assistant gets the entity without its shaping options)"
            assert [r.json() for r in reports] == [
                {
                    "topic": f"{base_topic}/t/ds/temperature_celsius",
                    "error": "capability",
                    "code": None,
                    "name": "CAPABILITY",
                    "message": "[devices.datastreams.temperature] min: min applies to "
                    "writable numbers; datastream 'temperature' is a read-only FLOAT32: HA "
                    "sensor" + suffix,
                },
                {
                    "topic": f"{base_topic}/t/ds/setpoint_celsius",
                    "error": "capability",
                    "code": None,
                    "name": "CAPABILITY",
                    "message": "[devices.datastreams.setpoint] state_class: state_class "
                    "applies to read-only numeric sensors; datastream 'setpoint' is a "
                    "writable FLOAT32: HA number" + suffix,
                },
            ]
            assert (
                validate_message(config_topic, rec.messages(config_topic)[-1].payload, prefix) == []
            )
            temp = doc["cmps"]["ds_temperature_celsius"]
            assert "icon" not in temp and "min" not in temp
            assert (temp["unit_of_measurement"], temp["state_class"]) == ("°C", "measurement")
            setpoint = doc["cmps"]["ds_setpoint_celsius"]
            assert setpoint["name"] == "Target"
            assert "state_class" not in setpoint
