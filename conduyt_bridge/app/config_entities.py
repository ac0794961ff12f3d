"""`[[devices.entities]]`: declared entities in the configuration file
(`docs/entities.md`). One pydantic model per kind, told apart by `kind` (a discriminated
union, so an error names the kind's own keys); each builds the core's frozen spec
(`conduyt_bridge.core.entities.spec`). `EntityList` checks the list as a whole: unique
names, no pin driven by two entities, a climate's references.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from conduyt_bridge.app.config_errors import ConfigProblems, Location
from conduyt_bridge.core.entities import spec as core
from conduyt_bridge.core.entities.checks import entity_problems
from conduyt_bridge.core.entities.engine import MAX_PULSE_MS
from conduyt_bridge.core.entities.spec import EntitySpec, command_parts, parts_of, spec_pins
from conduyt_bridge.northbound.conduyt.topics import DeviceTopics
from conduyt_bridge.protocol.hello import HelloResp

__all__ = [
    "PID_NO_OUTPUT",
    "READ_ONLY_ENTITIES",
    "EntityConfig",
    "EntityList",
    "entity_check_lines",
    "entity_specs",
]

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")
_REF_RE = re.compile(r"^(ds:[A-Za-z0-9_.-]+|[a-z0-9][a-z0-9_]{0,31}(\.[a-z_]+)?)$")

Pin = Annotated[int, Field(ge=0, le=254)]

PID_NO_OUTPUT = (
    "a pid entity cannot report the PID output: the firmware's pid module has no event "
    "and no read command for it (docs/protocol.md §8.7, §10 #23); the entity is the "
    "setpoint number only (docs/entities.md §4)"
)
"""Why a `pid` entry asking for an output sensor (`output…` keys) is refused."""

READ_ONLY_ENTITIES = (
    "a read_only board receives no command, and every entity needs some to be set up (pin "
    "modes, subscriptions, module begin/attach): remove read_only or the entities "
    "(docs/entities.md §5)"
)
"""Why `entities` on a `read_only = true` device is refused."""


class _Entity(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid")

    name: str
    title: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "must be 1-32 characters of a-z, 0-9 and '_', starting with a letter or "
                f"digit (it is a topic level and Home Assistant's object id), got {value!r}"
            )
        return value

    @abstractmethod
    def spec(self) -> EntitySpec:
        """The core's spec of this entry (each kind's model builds its own)."""


def _build(cls: type[Any], model: BaseModel) -> Any:
    fields = model.model_dump(exclude={"kind"})
    return cls(**fields)


class SwitchEntity(_Entity):
    kind: Literal["switch"]
    pin: Pin
    inverted: bool = False

    def spec(self) -> EntitySpec:
        return _build(core.SwitchSpec, self)  # type: ignore[no-any-return]


class LightEntity(_Entity):
    kind: Literal["light"]
    pin: Pin

    def spec(self) -> EntitySpec:
        return _build(core.LightSpec, self)  # type: ignore[no-any-return]


class ButtonEntity(_Entity):
    kind: Literal["button"]
    pin: Pin
    pulse_ms: int = Field(default=200, ge=1, le=MAX_PULSE_MS)
    inverted: bool = False

    def spec(self) -> EntitySpec:
        return _build(core.ButtonSpec, self)  # type: ignore[no-any-return]


class BinarySensorEntity(_Entity):
    kind: Literal["binary_sensor"]
    pin: Pin
    pull: Literal["none", "up"] = "none"
    inverted: bool = False
    debounce_ms: int = Field(default=50, ge=0, le=60_000)
    poll_ms: int = Field(default=50, ge=20, le=65535)
    device_class: str | None = Field(default=None, pattern=r"^[a-z_]+$")

    def spec(self) -> EntitySpec:
        return _build(core.BinarySensorSpec, self)  # type: ignore[no-any-return]


class SensorEntity(_Entity):
    kind: Literal["sensor"]
    pin: Pin
    scale: float = Field(default=1.0, allow_inf_nan=False)
    offset: float = Field(default=0.0, allow_inf_nan=False)
    unit: str | None = Field(default=None, min_length=1, max_length=16)
    device_class: str | None = Field(default=None, pattern=r"^[a-z_0-9]+$")
    precision: int | None = Field(default=None, ge=0, le=6)
    interval_ms: int = Field(default=1000, ge=1, le=65535)
    threshold: int = Field(default=0, ge=0, le=65535)

    def spec(self) -> EntitySpec:
        return _build(core.SensorSpec, self)  # type: ignore[no-any-return]


class ServoEntity(_Entity):
    kind: Literal["servo"]
    pin: Pin
    module: str = "servo"
    min_us: int = Field(default=0, ge=0, le=65535)
    max_us: int = Field(default=0, ge=0, le=65535)

    def spec(self) -> EntitySpec:
        return _build(core.ServoSpec, self)  # type: ignore[no-any-return]


class NeoPixelEntity(_Entity):
    kind: Literal["neopixel"]
    pin: Pin
    count: int = Field(ge=1, le=4096)
    module: str = "neopixel"
    pixel_type: int = Field(default=0, ge=0, le=255)

    def spec(self) -> EntitySpec:
        return _build(core.NeoPixelSpec, self)  # type: ignore[no-any-return]


class DhtEntity(_Entity):
    kind: Literal["dht"]
    pin: Pin
    module: str = "dht"
    sensor_type: Literal[11, 22] = 22
    interval_s: float = Field(default=30.0, ge=2.0, le=86400)

    def spec(self) -> EntitySpec:
        return _build(core.DhtSpec, self)  # type: ignore[no-any-return]


class EncoderEntity(_Entity):
    kind: Literal["encoder"]
    pin_a: Pin
    pin_b: Pin
    module: str = "encoder"
    interval_ms: int = Field(default=500, ge=20, le=600_000)

    def spec(self) -> EntitySpec:
        return _build(core.EncoderSpec, self)  # type: ignore[no-any-return]


class PidEntity(_Entity):
    kind: Literal["pid"]
    input_pin: Pin
    output_pin: Pin
    module: str = "pid"
    kp: float = Field(default=1.0, allow_inf_nan=False)
    ki: float = Field(default=0.0, allow_inf_nan=False)
    kd: float = Field(default=0.0, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_output_sensor(cls, data: Any) -> Any:
        # The firmware's PID reports nothing about its output (no event, no read
        # command; PIN_READ of a PWM pin reads a digital level): refuse with the reason
        # rather than "unknown key" (`docs/entities.md` §4).
        if isinstance(data, dict):
            asked = sorted(k for k in data if str(k).startswith("output") and k != "output_pin")
            if asked:
                raise ConfigProblems([((asked[0],), PID_NO_OUTPUT)])
        return data

    def spec(self) -> EntitySpec:
        return _build(core.PidSpec, self)  # type: ignore[no-any-return]


class StepperEntity(_Entity):
    kind: Literal["stepper"]
    step_pin: Pin
    dir_pin: Pin
    en_pin: int = Field(default=0xFF, ge=0, le=255)
    module: str = "stepper"
    steps_per_rev: int = Field(default=200, ge=1, le=65535)
    speed_hz: int = Field(default=0, ge=0, le=65535)
    min: int = Field(default=-100_000, ge=-(2**31), le=2**31 - 1)
    max: int = Field(default=100_000, ge=-(2**31), le=2**31 - 1)

    def spec(self) -> EntitySpec:
        return _build(core.StepperSpec, self)  # type: ignore[no-any-return]


class ClimateEntity(_Entity):
    kind: Literal["climate"]
    current_temperature: str
    heater: str
    target_temperature: str | None = None
    humidity: str | None = None
    min_temp: float = Field(default=5.0, allow_inf_nan=False)
    max_temp: float = Field(default=35.0, allow_inf_nan=False)
    temp_step: float = Field(default=0.5, ge=0.01, le=10)
    hysteresis: float = Field(default=0.5, ge=0, le=10)
    initial_target: float = Field(default=20.0, allow_inf_nan=False)

    @field_validator("current_temperature", "heater", "target_temperature", "humidity")
    @classmethod
    def _check_ref(cls, value: str | None) -> str | None:
        if value is not None and not _REF_RE.match(value):
            raise ValueError(
                "must name an entity of this device ('name' or 'name.part', e.g. "
                f"'room.temperature') or a datastream ('ds:<slug>'), got {value!r}"
            )
        return value

    @field_validator("target_temperature")
    @classmethod
    def _target_is_datastream(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("ds:"):
            raise ValueError(
                "must name a writable datastream ('ds:<slug>'); leave it out to let the "
                f"bridge keep the target, got {value!r}"
            )
        return value

    def spec(self) -> EntitySpec:
        return _build(core.ClimateSpec, self)  # type: ignore[no-any-return]


EntityConfig = Annotated[
    SwitchEntity
    | LightEntity
    | ButtonEntity
    | BinarySensorEntity
    | SensorEntity
    | ServoEntity
    | NeoPixelEntity
    | DhtEntity
    | EncoderEntity
    | PidEntity
    | StepperEntity
    | ClimateEntity,
    Field(discriminator="kind"),
]
"""One `[[devices.entities]]` entry."""


def _check_list(entities: list[Any]) -> list[Any]:
    problems: list[tuple[Location, str]] = []
    names: dict[str, int] = {}
    pins: dict[int, int] = {}
    for index, entity in enumerate(entities):
        first = names.setdefault(entity.name, index)
        if first != index:
            problems.append(
                ((index, "name"), f"name {entity.name!r} is also used by entities[{first}]")
            )
        spec = entity.spec()
        for pin in spec_pins(spec):
            owner = pins.setdefault(pin, index)
            if owner != index:
                problems.append(((index,), f"pin {pin} is already used by entities[{owner}]"))
        if isinstance(entity, StepperEntity) and entity.min > entity.max:
            problems.append(((index, "max"), f"must be >= min ({entity.min})"))
        if isinstance(entity, ClimateEntity):
            if entity.min_temp >= entity.max_temp:
                problems.append(((index, "max_temp"), f"must be > min_temp ({entity.min_temp:g})"))
            kinds = {e.name: e.kind for e in entities}
            for field in ("current_temperature", "heater", "humidity"):
                ref = getattr(entity, field)
                if ref is None or ref.startswith("ds:"):
                    continue
                target = ref.split(".", 1)[0]
                if target not in kinds:
                    problems.append(
                        ((index, field), f"names entity {target!r}, which is not declared")
                    )
                elif field == "heater" and kinds[target] != "switch":
                    problems.append(
                        ((index, field), f"entity {target!r} is a {kinds[target]}, not a switch")
                    )
    if problems:
        raise ConfigProblems(problems)
    return entities


EntityList = Annotated[list[EntityConfig], AfterValidator(_check_list)]
"""`[[devices.entities]]` as a whole."""


def entity_specs(entities: list[Any]) -> tuple[EntitySpec, ...]:
    """The core's specs of a device's validated entries."""
    return tuple(e.spec() for e in entities)


def entity_check_lines(
    specs: tuple[EntitySpec, ...], topics: DeviceTopics, hello: HelloResp | None
) -> list[str]:
    """`--check` lines of a device's entities, one each: its kind, state topic(s) and
    command topic(s) (`docs/entities.md` §3) and, when the board's HELLO_RESP is known
    offline (`hello`, a `sim://` profile), `REFUSED:` and the reason the bridge would
    report on `{dev}/error` (§5)."""
    problems = entity_problems(hello, specs) if hello is not None else {}
    lines = []
    for spec in specs:
        states = ", ".join(topics.entity(spec.name, part) for part in parts_of(spec))
        sets = ", ".join(topics.entity_set(spec.name, part) for part in command_parts(spec))
        line = f"    entity {spec.name} ({spec.kind}): " + "  ".join(
            text for text in (states, f"set: {sets}" if sets else "") if text
        )
        if spec.name in problems:
            line += f"  REFUSED: {problems[spec.name]}"
        lines.append(line)
    return lines
