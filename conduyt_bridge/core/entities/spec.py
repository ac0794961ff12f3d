"""Declared entities (`[[devices.entities]]`, `docs/entities.md` §1): what the user asked
for, as plain frozen dataclasses the core reads (the configuration layer validates the
file and builds these; the core never imports it).

An entity is a pin or a module of the board presented as one thing with a state and,
where it can be driven, a command: a relay is a `switch`, a PWM pin a `light`, a DHT a
pair of sensors. Each kind's fields and units are in `docs/entities.md` §2-§4.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Literal


class EntityKind(StrEnum):
    """The `kind` of a `[[devices.entities]]` entry (`docs/entities.md` §1)."""

    SWITCH = "switch"
    LIGHT = "light"
    BUTTON = "button"
    BINARY_SENSOR = "binary_sensor"
    SENSOR = "sensor"
    SERVO = "servo"
    NEOPIXEL = "neopixel"
    DHT = "dht"
    ENCODER = "encoder"
    PID = "pid"
    STEPPER = "stepper"
    CLIMATE = "climate"


@dataclass(frozen=True, slots=True)
class _Base:
    name: str
    """Topic segment and Home Assistant object id: `[a-z0-9_]`, 1-32 characters."""
    title: str | None = None
    """Friendly name shown by Home Assistant; default: `name` with `_` as spaces."""


@dataclass(frozen=True, slots=True)
class SwitchSpec(_Base):
    """A digital output: on/off; `inverted` drives LOW for on (active-low relay boards)."""

    kind: ClassVar[EntityKind] = EntityKind.SWITCH
    pin: int = 0
    inverted: bool = False


@dataclass(frozen=True, slots=True)
class LightSpec(_Base):
    """A PWM dimmer: brightness 0..255 is the duty cycle 0..255; off is duty 0."""

    kind: ClassVar[EntityKind] = EntityKind.LIGHT
    pin: int = 0


@dataclass(frozen=True, slots=True)
class ButtonSpec(_Base):
    """A momentary output: a press drives the pin active for `pulse_ms` (ms), then back."""

    kind: ClassVar[EntityKind] = EntityKind.BUTTON
    pin: int = 0
    pulse_ms: int = 200
    inverted: bool = False


@dataclass(frozen=True, slots=True)
class BinarySensorSpec(_Base):
    """A digital input polled by the bridge every `poll_ms` (ms); a new level counts once
    it held for `debounce_ms` (ms). `pull = "up"` sets INPUT_PULLUP."""

    kind: ClassVar[EntityKind] = EntityKind.BINARY_SENSOR
    pin: int = 0
    pull: Literal["none", "up"] = "none"
    inverted: bool = False
    debounce_ms: int = 50
    poll_ms: int = 50
    device_class: str | None = None


@dataclass(frozen=True, slots=True)
class SensorSpec(_Base):
    """An analog input polled on the board (ANALOG_POLL every `interval_ms`, reported
    when it moved by `threshold` raw counts): value = counts * `scale` + `offset`, rounded
    to `precision` decimals when set."""

    kind: ClassVar[EntityKind] = EntityKind.SENSOR
    pin: int = 0
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    device_class: str | None = None
    precision: int | None = None
    interval_ms: int = 1000
    threshold: int = 0


@dataclass(frozen=True, slots=True)
class ServoSpec(_Base):
    """A servo on `pin` (module `servo`): a number, angle 0..180 °."""

    kind: ClassVar[EntityKind] = EntityKind.SERVO
    pin: int = 0
    module: str = "servo"
    min_us: int = 0
    max_us: int = 0


@dataclass(frozen=True, slots=True)
class NeoPixelSpec(_Base):
    """A strip of `count` pixels on `pin` (module `neopixel`): one RGB light."""

    kind: ClassVar[EntityKind] = EntityKind.NEOPIXEL
    pin: int = 0
    count: int = 1
    module: str = "neopixel"
    pixel_type: int = 0


@dataclass(frozen=True, slots=True)
class DhtSpec(_Base):
    """A DHT11/22 on `pin` (module `dht`), read every `interval_s` (s): parts
    `temperature` (°C) and `humidity` (%)."""

    kind: ClassVar[EntityKind] = EntityKind.DHT
    pin: int = 0
    module: str = "dht"
    sensor_type: int = 22
    interval_s: float = 30.0


@dataclass(frozen=True, slots=True)
class EncoderSpec(_Base):
    """A quadrature encoder on `pin_a`/`pin_b` (module `encoder`), its count read every
    `interval_ms` (ms); part `reset` is a button that zeroes it."""

    kind: ClassVar[EntityKind] = EntityKind.ENCODER
    pin_a: int = 0
    pin_b: int = 0
    module: str = "encoder"
    interval_ms: int = 500


@dataclass(frozen=True, slots=True)
class PidSpec(_Base):
    """The board's PID loop (module `pid`) from `input_pin` to `output_pin`: a number,
    the setpoint in percent of ADC full scale (0..100)."""

    kind: ClassVar[EntityKind] = EntityKind.PID
    input_pin: int = 0
    output_pin: int = 0
    module: str = "pid"
    kp: float = 1.0
    ki: float = 0.0
    kd: float = 0.0


@dataclass(frozen=True, slots=True)
class StepperSpec(_Base):
    """A step/dir driver (module `stepper`): a number, the target position in steps
    (`min`..`max`), moved to at `speed_hz` steps/s (0: the firmware's 1000)."""

    kind: ClassVar[EntityKind] = EntityKind.STEPPER
    step_pin: int = 0
    dir_pin: int = 0
    en_pin: int = 0xFF
    module: str = "stepper"
    steps_per_rev: int = 200
    speed_hz: int = 0
    min: int = -100_000
    max: int = 100_000


@dataclass(frozen=True, slots=True)
class ClimateSpec(_Base):
    """A thermostat built from other values (`docs/entities.md` §4). A reference is an
    entity of this board (`"name"` or `"name.part"`, e.g. `"room.temperature"`) or a
    datastream (`"ds:<slug>"`). The bridge switches `heater` on below target -
    `hysteresis` and off above target + `hysteresis` (°C) while the mode is `heat`.
    Without `target_temperature` the bridge keeps the target (`initial_target`)."""

    kind: ClassVar[EntityKind] = EntityKind.CLIMATE
    current_temperature: str = ""
    heater: str = ""
    target_temperature: str | None = None
    humidity: str | None = None
    min_temp: float = 5.0
    max_temp: float = 35.0
    temp_step: float = 0.5
    hysteresis: float = 0.5
    initial_target: float = 20.0


EntitySpec = (
    SwitchSpec
    | LightSpec
    | ButtonSpec
    | BinarySensorSpec
    | SensorSpec
    | ServoSpec
    | NeoPixelSpec
    | DhtSpec
    | EncoderSpec
    | PidSpec
    | StepperSpec
    | ClimateSpec
)
"""Any declared entity."""


def spec_pins(spec: EntitySpec) -> tuple[int, ...]:
    """The board pins an entity drives or reads (for overlap checks)."""
    pins = []
    for attr in ("pin", "pin_a", "pin_b", "input_pin", "output_pin", "step_pin", "dir_pin"):
        value = getattr(spec, attr, None)
        if isinstance(value, int):
            pins.append(value)
    en = getattr(spec, "en_pin", 0xFF)
    if en != 0xFF:
        pins.append(en)
    return tuple(pins)


def parts_of(spec: EntitySpec) -> tuple[str, ...]:
    """The state parts of an entity: `("",)` for most, the two readings of a DHT, none
    for a button."""
    if isinstance(spec, DhtSpec):
        return ("temperature", "humidity")
    if isinstance(spec, ButtonSpec):
        return ()
    return ("",)


def command_parts(spec: EntitySpec) -> tuple[str, ...]:
    """What `/set` commands an entity takes: `""` (the main command), `reset` (encoder),
    `mode`/`target` (climate); none for read-only kinds."""
    match spec:
        case BinarySensorSpec() | SensorSpec() | DhtSpec():
            return ()
        case EncoderSpec():
            return ("reset",)
        case ClimateSpec():
            return ("mode", "target")
    return ("",)


__all__ = [
    "BinarySensorSpec",
    "ButtonSpec",
    "ClimateSpec",
    "DhtSpec",
    "EncoderSpec",
    "EntityKind",
    "EntitySpec",
    "LightSpec",
    "NeoPixelSpec",
    "PidSpec",
    "SensorSpec",
    "ServoSpec",
    "StepperSpec",
    "SwitchSpec",
    "command_parts",
    "parts_of",
    "spec_pins",
]
