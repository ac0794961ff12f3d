"""Declared entities checked against a board's HELLO_RESP (`docs/entities.md` §5): the
pin exists and has the capability the kind needs, the module is loaded, the module's
setup arguments pass the catalog's checks, a climate's references exist. Pure: the
engine runs it when the board connects, `conduyt-bridge --check` when the board is
known offline (a `sim://` profile).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conduyt_bridge.core.entities.spec import (
    BinarySensorSpec,
    ButtonSpec,
    ClimateSpec,
    DhtSpec,
    EncoderSpec,
    EntityKind,
    EntitySpec,
    LightSpec,
    NeoPixelSpec,
    PidSpec,
    SensorSpec,
    ServoSpec,
    StepperSpec,
    SwitchSpec,
)
from conduyt_bridge.core.naming import datastream_slugs, find_module, module_slugs
from conduyt_bridge.device.capabilities import check_module_args, require_pin
from conduyt_bridge.errors import ConduytCapabilityError, ConduytRequestError, ErrorName
from conduyt_bridge.protocol.constants import Capability
from conduyt_bridge.protocol.hello import HelloResp, ModuleDescriptor
from conduyt_bridge.protocol.modules import CATALOG, CommandSpec, ModuleArgumentError, encode_args

_CAPABILITY_WORDS = {
    Capability.DIGITAL_OUT: "digital output",
    Capability.DIGITAL_IN: "digital input",
    Capability.PWM_OUT: "PWM output",
    Capability.ANALOG_IN: "analog input",
}

_PIN_NEEDS: dict[EntityKind, Capability] = {
    EntityKind.SWITCH: Capability.DIGITAL_OUT,
    EntityKind.BUTTON: Capability.DIGITAL_OUT,
    EntityKind.LIGHT: Capability.PWM_OUT,
    EntityKind.BINARY_SENSOR: Capability.DIGITAL_IN,
    EntityKind.SENSOR: Capability.ANALOG_IN,
}
"""The capability bit each pin kind needs (`docs/protocol.md` §5.2)."""

SETUP_COMMANDS: dict[EntityKind, str] = {
    EntityKind.SERVO: "attach",
    EntityKind.NEOPIXEL: "begin",
    EntityKind.DHT: "begin",
    EntityKind.ENCODER: "attach",
    EntityKind.STEPPER: "config",
}
"""The module command that claims the entity's pins (PID takes its pins one by one)."""


def refused(spec: EntitySpec, reason: str, name: ErrorName) -> ConduytCapabilityError:
    """The error of an entity the board cannot serve: `entity 'relay': <reason>`."""
    return ConduytCapabilityError(f"entity '{spec.name}': {reason}", name)


def require_pin_capability(hello: HelloResp, spec: EntitySpec, pin: int, need: Capability) -> None:
    """Pin `pin` exists and has `need`. Raises ConduytCapabilityError `INVALID_PIN` /
    `PIN_MODE_UNSUPPORTED`: `entity 'relay': pin 13 has no digital output on this board
    (capabilities: digital_in, analog_in)`."""
    try:
        p = require_pin(hello, pin)
    except ConduytCapabilityError as exc:
        raise refused(spec, str(exc), ErrorName.INVALID_PIN) from None
    if need not in p.capabilities:
        caps = ", ".join(p.capability_names) or "none"
        raise refused(
            spec,
            f"pin {pin} has no {_CAPABILITY_WORDS[need]} on this board (capabilities: {caps})",
            ErrorName.PIN_MODE_UNSUPPORTED,
        )


def resolve_module(hello: HelloResp, spec: EntitySpec) -> ModuleDescriptor:
    """The loaded module an entity of a module kind drives: `module` names it (topic name
    or id) and its HELLO name must be the kind's catalog module.

    Raises ConduytCapabilityError `MODULE_NOT_LOADED`."""
    ref = str(getattr(spec, "module", spec.kind))
    slugs = module_slugs(hello.modules)
    module = find_module(slugs, ref)
    if module is None:
        known = ", ".join(slugs) or "none"
        raise refused(
            spec,
            f"module '{ref}' is not loaded on this board (modules: {known})",
            ErrorName.MODULE_NOT_LOADED,
        )
    if module.name != str(spec.kind):
        raise refused(
            spec,
            f"module '{ref}' is a {module.name}, not a {spec.kind}",
            ErrorName.MODULE_NOT_LOADED,
        )
    return module


def setup_args(spec: EntitySpec) -> dict[str, Any]:
    """The arguments of the module command that claims the entity's pins
    (`SETUP_COMMANDS`), as the catalog names them."""
    match spec:
        case ServoSpec():
            return {"pin": spec.pin, "min_us": spec.min_us, "max_us": spec.max_us}
        case NeoPixelSpec():
            return {"pin": spec.pin, "count": spec.count, "type": spec.pixel_type}
        case DhtSpec():
            return {"pin": spec.pin, "sensor_type": spec.sensor_type}
        case EncoderSpec():
            return {"pin_a": spec.pin_a, "pin_b": spec.pin_b}
        case StepperSpec():
            return {
                "step_pin": spec.step_pin,
                "dir_pin": spec.dir_pin,
                "en_pin": spec.en_pin,
                "steps_per_rev": spec.steps_per_rev,
            }
    return {}


def check_module_command(
    hello: HelloResp, spec: EntitySpec, command: str, args: dict[str, Any]
) -> CommandSpec:
    """The catalog command `command` of the entity's module, its `args` checked by the
    catalog and against the board's pins (the checks of every module command).

    Raises ConduytCapabilityError (the reason prefixed with the entity)."""
    catalog = CATALOG[str(spec.kind)]
    cmd = catalog.commands[command]
    try:
        check_module_args(hello, cmd, encode_args(cmd, args))
    except ModuleArgumentError as exc:
        raise refused(spec, str(exc), ErrorName.BAD_ARGUMENT) from None
    except ConduytRequestError as exc:
        raise refused(spec, str(exc), exc.name) from None
    return cmd


def _check_reference(
    hello: HelloResp, spec: ClimateSpec, field: str, ref: str, specs: Sequence[EntitySpec]
) -> None:
    if ref.startswith("ds:"):
        slug = ref[3:]
        slugs = datastream_slugs(hello.datastreams)
        if slug not in slugs:
            known = ", ".join(slugs) or "none"
            raise refused(
                spec,
                f"{field} names datastream '{slug}', which this board does not have "
                f"(datastreams: {known})",
                ErrorName.UNKNOWN_DATASTREAM,
            )
        return
    name = ref.split(".", 1)[0]
    if not any(s.name == name for s in specs):
        raise refused(
            spec, f"{field} names entity '{name}', which is not declared", ErrorName.BAD_VALUE
        )


def check_entity(hello: HelloResp, spec: EntitySpec, specs: Sequence[EntitySpec] = ()) -> None:
    """Whether the board of `hello` can serve `spec` (`docs/entities.md` §5).

    Raises ConduytCapabilityError `entity '<name>': <reason>` (INVALID_PIN,
    PIN_MODE_UNSUPPORTED, MODULE_NOT_LOADED, BAD_ARGUMENT, UNKNOWN_DATASTREAM).
    """
    match spec:
        case SwitchSpec() | LightSpec() | ButtonSpec() | BinarySensorSpec() | SensorSpec():
            require_pin_capability(hello, spec, spec.pin, _PIN_NEEDS[spec.kind])
        case PidSpec():
            resolve_module(hello, spec)
            check_module_command(hello, spec, "set_input", {"pin": spec.input_pin})
            check_module_command(hello, spec, "set_output", {"pin": spec.output_pin})
        case ServoSpec() | NeoPixelSpec() | DhtSpec() | EncoderSpec() | StepperSpec():
            resolve_module(hello, spec)
            check_module_command(hello, spec, SETUP_COMMANDS[spec.kind], setup_args(spec))
        case ClimateSpec():
            for field in ("current_temperature", "heater", "target_temperature", "humidity"):
                ref = getattr(spec, field)
                if ref:
                    _check_reference(hello, spec, field, ref, specs)


def entity_problems(hello: HelloResp, specs: Sequence[EntitySpec]) -> dict[str, str]:
    """Entity name → why the board of `hello` cannot serve it (only the refused ones)."""
    out: dict[str, str] = {}
    for spec in specs:
        try:
            check_entity(hello, spec, specs)
        except ConduytCapabilityError as exc:
            out[spec.name] = str(exc)
    return out


__all__ = [
    "SETUP_COMMANDS",
    "check_entity",
    "check_module_command",
    "entity_problems",
    "refused",
    "require_pin_capability",
    "resolve_module",
    "setup_args",
]
