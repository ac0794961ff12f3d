"""Home Assistant discovery of declared entities (`docs/entities.md` §2-§4, HA's MQTT
discovery schemas): one component per entity (two for a DHT and an encoder), in the
same `Entity` form as the datastream components, so both discovery modes carry them.

| kind | HA platform | what HA shows |
|---|---|---|
| switch | `switch` | a toggle |
| light (PWM) | `light`, JSON schema, color mode `brightness` | a dimmer |
| button | `button` | a press button |
| binary_sensor | `binary_sensor` (`device_class` as configured) | on/off, open/closed… |
| sensor | `sensor` (unit, device_class, precision) | a value and a graph |
| servo | `number` 0..180 ° (slider) | a slider |
| neopixel | `light`, JSON schema, color mode `rgb` | colour wheel and brightness |
| dht | two `sensor`s, temperature °C and humidity % | two values |
| encoder | `sensor` (count) and `button` (reset) | a value and a button |
| pid | `number` 0..100 % (setpoint) | a slider |
| stepper | `number` (target, steps, box) | an input box |
| climate | `climate`, modes off/heat | a thermostat card |

Entities the board cannot serve (`conduyt_bridge.core.entities.checks`) are left out:
HA must not show a control that can never work. A `read_only` board gets none (setting
up any entity takes commands it never receives). Nothing here does IO.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conduyt_bridge.core.entities.checks import entity_problems
from conduyt_bridge.core.entities.engine import SETTINGS
from conduyt_bridge.core.entities.spec import (
    BinarySensorSpec,
    ButtonSpec,
    ClimateSpec,
    DhtSpec,
    EncoderSpec,
    EntitySpec,
    LightSpec,
    NeoPixelSpec,
    PidSpec,
    SensorSpec,
    ServoSpec,
    StepperSpec,
    SwitchSpec,
    command_parts,
)
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics
from conduyt_bridge.northbound.homeassistant.entities import (
    BOOL_TEMPLATE,
    JSON_VALUE_TEMPLATE,
    Entity,
    availability,
    pretty_name,
)
from conduyt_bridge.northbound.homeassistant.model import DiscoveryConfig, board_node_id
from conduyt_bridge.protocol.hello import HelloResp

__all__ = ["declared_entities"]

class _Builder:
    def __init__(self, cfg: DiscoveryConfig, dev: str, key: str) -> None:
        self.cfg = cfg
        self.bridge = BridgeTopics(cfg.base_topic, cfg.gateway_id)
        self.topics = self.bridge.device(dev)
        self.node = board_node_id(cfg, key)
        self.is_json = cfg.payload_format == "json"

    def base(self, spec: EntitySpec, part: str = "", label: str | None = None) -> dict[str, Any]:
        title = spec.title or pretty_name(spec.name)
        suffix = f"_{part}" if part else ""
        conf: dict[str, Any] = {
            "name": f"{title} {label}" if label else title,
            "unique_id": f"{self.node}_entity_{spec.name}{suffix}",
            "qos": 1,
            **availability(self.bridge.state, self.topics.status),
        }
        return conf

    def state(self, conf: dict[str, Any], spec: EntitySpec, part: str = "") -> None:
        conf["state_topic"] = self.topics.entity(spec.name, part)

    def command(self, conf: dict[str, Any], spec: EntitySpec, part: str = "") -> None:
        conf["command_topic"] = self.topics.entity_set(spec.name, part)
        conf["retain"] = False  # the bridge refuses retained commands

    def key(self, spec: EntitySpec, part: str = "") -> str:
        return f"entity_{spec.name}" + (f"_{part}" if part else "")

    # ---- per kind ---------------------------------------------------------------------------

    def switch(self, spec: SwitchSpec, writable: bool) -> Entity:
        conf = self.base(spec)
        self.state(conf, spec)
        conf["payload_on"], conf["payload_off"] = "true", "false"
        if self.is_json:
            conf["value_template"] = BOOL_TEMPLATE
        if not writable:
            return Entity(self.key(spec), "binary_sensor", conf)
        self.command(conf, spec)
        conf["state_on"], conf["state_off"] = "true", "false"
        return Entity(self.key(spec), "switch", conf)

    def binary_sensor(self, spec: BinarySensorSpec) -> Entity:
        conf = self.base(spec)
        self.state(conf, spec)
        conf["payload_on"], conf["payload_off"] = "true", "false"
        if spec.device_class:
            conf["device_class"] = spec.device_class
        if self.is_json:
            conf["value_template"] = BOOL_TEMPLATE
        return Entity(self.key(spec), "binary_sensor", conf)

    def sensor(
        self,
        spec: EntitySpec,
        part: str = "",
        *,
        unit: str | None,
        device_class: str | None,
        precision: int | None = None,
        label: str | None = None,
        state_class: str | None = "measurement",
    ) -> Entity:
        conf = self.base(spec, part, label)
        self.state(conf, spec, part)
        if unit:
            conf["unit_of_measurement"] = unit
        if device_class:
            conf["device_class"] = device_class
        if state_class:
            conf["state_class"] = state_class
        if precision is not None:
            conf["suggested_display_precision"] = precision
        if self.is_json:
            conf["value_template"] = JSON_VALUE_TEMPLATE
        return Entity(self.key(spec, part), "sensor", conf)

    def light(self, spec: LightSpec | NeoPixelSpec) -> Entity:
        conf = self.base(spec)
        self.state(conf, spec)
        self.command(conf, spec)
        # HA's JSON light schema: commands and states are {"state", "brightness", "color"}.
        conf["schema"] = "json"
        conf["brightness"] = True
        conf["brightness_scale"] = 255
        rgb = isinstance(spec, NeoPixelSpec)
        conf["supported_color_modes"] = ["rgb"] if rgb else ["brightness"]
        return Entity(self.key(spec), "light", conf)

    def button(self, spec: EntitySpec, part: str = "", label: str | None = None) -> Entity:
        conf = self.base(spec, part, label)
        self.command(conf, spec, part)
        conf["payload_press"] = "PRESS"
        return Entity(self.key(spec, part), "button", conf)

    def number(
        self, spec: EntitySpec, lo: float, hi: float, step: float, unit: str, mode: str
    ) -> Entity:
        conf = self.base(spec)
        self.state(conf, spec)
        self.command(conf, spec)
        conf.update({"min": lo, "max": hi, "step": step, "mode": mode})
        conf["unit_of_measurement"] = unit
        if self.is_json:
            conf["value_template"] = JSON_VALUE_TEMPLATE
        return Entity(self.key(spec), "number", conf)

    def climate(self, spec: ClimateSpec) -> Entity:
        conf = self.base(spec)
        state = self.topics.entity(spec.name)
        conf.update(
            {
                "modes": ["off", "heat"],
                "mode_command_topic": self.topics.entity_set(spec.name, "mode"),
                "mode_state_topic": state,
                "mode_state_template": "{{ value_json.mode }}",
                "temperature_command_topic": self.topics.entity_set(spec.name, "target"),
                "temperature_state_topic": state,
                "temperature_state_template": "{{ value_json.target }}",
                "current_temperature_topic": state,
                "current_temperature_template": "{{ value_json.current }}",
                "action_topic": state,
                "action_template": "{{ value_json.action }}",
                "min_temp": spec.min_temp,
                "max_temp": spec.max_temp,
                "temp_step": spec.temp_step,
                "temperature_unit": "C",
                "retain": False,
            }
        )
        if spec.humidity:
            conf["current_humidity_topic"] = state
            conf["current_humidity_template"] = "{{ value_json.humidity }}"
        return Entity(self.key(spec), "climate", conf)


def _entities(b: _Builder, spec: EntitySpec, read_only: bool) -> list[Entity]:
    writable = not read_only and bool(command_parts(spec))
    if not writable and isinstance(spec, SETTINGS) and not isinstance(spec, SwitchSpec):
        return []  # a control that can never work: none (a read-only switch still reads)
    match spec:
        case SwitchSpec():
            return [b.switch(spec, writable)]
        case LightSpec() | NeoPixelSpec():
            return [b.light(spec)]
        case ButtonSpec():
            return [b.button(spec)] if writable else []
        case BinarySensorSpec():
            return [b.binary_sensor(spec)]
        case SensorSpec():
            return [
                b.sensor(
                    spec, unit=spec.unit, device_class=spec.device_class, precision=spec.precision
                )
            ]
        case DhtSpec():
            return [
                b.sensor(
                    spec,
                    "temperature",
                    unit="°C",
                    device_class="temperature",
                    label="temperature",
                    precision=1,
                ),
                b.sensor(
                    spec,
                    "humidity",
                    unit="%",
                    device_class="humidity",
                    label="humidity",
                    precision=1,
                ),
            ]
        case EncoderSpec():
            count = b.sensor(spec, unit=None, device_class=None, state_class="measurement")
            return [count, b.button(spec, "reset", "reset")] if writable else [count]
        case ServoSpec():
            return [b.number(spec, 0, 180, 1, "°", "slider")]
        case PidSpec():
            return [b.number(spec, 0, 100, 0.1, "%", "slider")]
        case StepperSpec():
            return [b.number(spec, spec.min, spec.max, 1, "steps", "box")]
        case ClimateSpec():
            return [b.climate(spec)]
    return []


def declared_entities(
    cfg: DiscoveryConfig,
    dev: str,
    hello: HelloResp,
    specs: Sequence[EntitySpec],
    read_only: bool = False,
    key: str | None = None,
) -> list[Entity]:
    """The discovery components of board `dev`'s declared entities that its HELLO_RESP
    allows (refused ones are reported on `{dev}/error` by the Conduyt layout instead);
    `key` is the id its unique ids are built from (`BoardDiscovery.key`, default `dev`)."""
    if read_only:
        return []  # the engine refuses every entity of a read_only board (none is set up)
    refused = entity_problems(hello, specs)
    b = _Builder(cfg, dev, key or dev)
    out: list[Entity] = []
    for spec in specs:
        if spec.name not in refused:
            out += _entities(b, spec, read_only)
    return out
