"""Module command checks: MOD_CMD arguments against the module catalog and the board.

A raw MOD_CMD packet and a typed `module/{mod}/{command}` topic pass the same checks:
the catalog's (`conduyt_bridge.protocol.modules`, `docs/protocol.md` §8) and the board's
pins for every pin argument (§5.2; the firmware checks none, §7 Q12). Pure functions,
no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from conduyt_bridge.device.validation.pins import pins_with, require_mode, require_pin
from conduyt_bridge.errors import ConduytCapabilityError, ConduytPayloadError, ErrorName
from conduyt_bridge.protocol.constants import Capability, PinMode
from conduyt_bridge.protocol.hello import HelloResp
from conduyt_bridge.protocol.modules import (
    CATALOG,
    ArgSpec,
    CommandSpec,
    ModuleArgumentError,
    WireType,
    encode_args,
)

__all__ = [
    "check_module_args",
    "check_module_pins",
    "decode_module_args",
    "module_command_spec",
]

_ARG_SIZE = {WireType.U8: 1, WireType.U16: 2, WireType.I32: 4, WireType.F32: 4}
_ARG_STRUCT = {WireType.U8: "<B", WireType.U16: "<H", WireType.I32: "<i", WireType.F32: "<f"}


def decode_module_args(spec: CommandSpec, data: bytes) -> dict[str, object]:
    """The argument values of raw MOD_CMD args bytes for `spec` (§8), checked by the
    catalog exactly like named arguments are (`encode_args`), so a raw packet and a typed
    `module/{mod}/{command}` topic pass the same checks.

    The firmware reads missing argument bytes as 0 (§4.2), so the bytes must be complete:
    every argument present (an `optional` trailing one may be left out), nothing after
    the last argument.

    Raises ConduytPayloadError `BAD_ARGUMENT`.
    """
    where = spec.qualified_name
    values: dict[str, object] = {}
    pos = 0
    for arg in spec.args:
        if arg.type in (WireType.TEXT, WireType.BYTES):
            rest = data[pos:]
            if arg.type is WireType.TEXT:
                try:
                    values[arg.name] = rest.decode("utf-8")
                except UnicodeDecodeError:
                    raise ConduytPayloadError(
                        f"{where}: {arg.name} is not UTF-8 text", ErrorName.BAD_ARGUMENT
                    ) from None
            else:
                values[arg.name] = rest
            pos = len(data)
            break
        size = _ARG_SIZE[arg.type]
        if pos + size > len(data):
            if arg.optional and pos == len(data):
                break
            raise ConduytPayloadError(
                f"{where}: arguments end after {len(data)} bytes; {arg.name} "
                f"({arg.type.value}) needs bytes {pos}..{pos + size - 1}",
                ErrorName.BAD_ARGUMENT,
            )
        (value,) = struct.unpack_from(_ARG_STRUCT[arg.type], data, pos)
        values[arg.name] = value
        pos += size
    if pos < len(data):
        raise ConduytPayloadError(
            f"{where}: {len(data) - pos} bytes after the last argument", ErrorName.BAD_ARGUMENT
        )
    try:
        encode_args(spec, values)
    except ModuleArgumentError as exc:
        raise ConduytPayloadError(str(exc), ErrorName.BAD_ARGUMENT) from None
    return values


_CAPABILITY_MODE: Mapping[Capability, PinMode] = {
    Capability.DIGITAL_IN: PinMode.INPUT,
    Capability.DIGITAL_OUT: PinMode.OUTPUT,
    Capability.PWM_OUT: PinMode.PWM,
    Capability.ANALOG_IN: PinMode.ANALOG,
}
"""The pin mode whose capability check stands for each bit a module pin argument needs."""


def _require_capability(hello: HelloResp, pin: int, needs: Capability) -> None:
    """Pin `pin` exists and has every bit of `needs`; messages as `require_mode`'s."""
    p = require_pin(hello, pin)
    for bit in Capability:
        if not bit or not bit & needs:
            continue
        mode = _CAPABILITY_MODE.get(bit)
        if mode is not None:
            require_mode(hello, pin, mode)
        elif not p.capabilities & bit:
            name = str(bit.name)
            have = ", ".join(p.capability_names) or "no capability"
            raise ConduytCapabilityError(
                f"pin {pin} has {have}; not {name.lower()} ({name.lower()} pins: "
                f"{pins_with(hello, bit)})",
                ErrorName.PIN_MODE_UNSUPPORTED,
            )


def check_module_pins(hello: HelloResp, spec: CommandSpec, values: Mapping[str, object]) -> None:
    """Every pin argument of module command `spec` (`ArgSpec.pin`, §8) names a pin of the
    board with the capability the module needs (§5.2): the firmware checks none (Q12),
    and e.g. `pid.set_input` on a pin without ANALOG_IN makes it `analogRead` there every
    100 ms, which can hang an Uno R4 (§4.2). A `no_pin` value (stepper en_pin 255) and
    arguments missing from `values` are not checked.

    Raises ConduytCapabilityError `INVALID_PIN` (`servo.attach: pin 200 does not exist: this
    board has 10 pins`) or `PIN_MODE_UNSUPPORTED` (`pid.set_input: pin 4 supports input,
    output, pwm, input_pullup; not analog (analog pins: 12, 13, 14)`); the argument is
    named when it is not called `pin` (`stepper.config: dir_pin: pin 20 …`).
    """
    for arg in spec.pin_args:
        value = values.get(arg.name)
        if isinstance(value, bool) or not isinstance(value, int) or value == arg.no_pin:
            continue
        assert arg.pin is not None
        try:
            _require_capability(hello, value, arg.pin)
        except ConduytCapabilityError as exc:
            raise ConduytCapabilityError(f"{_pin_label(spec, arg)}{exc}", exc.name) from None


def _pin_label(spec: CommandSpec, arg: ArgSpec) -> str:
    where = spec.qualified_name
    return f"{where}: " if arg.name == "pin" else f"{where}: {arg.name}: "


def check_module_args(hello: HelloResp, spec: CommandSpec, data: bytes) -> dict[str, object]:
    """The argument values of MOD_CMD args bytes for `spec`, checked as a whole: the
    catalog's checks (`decode_module_args`) and the board's pins (`check_module_pins`).
    Raw MOD_CMD packets and typed `module/{mod}/{command}` topics both go through it.

    Raises ConduytPayloadError `BAD_ARGUMENT`, ConduytCapabilityError `INVALID_PIN` or
    `PIN_MODE_UNSUPPORTED`.
    """
    values = decode_module_args(spec, data)
    check_module_pins(hello, spec, values)
    return values


def module_command_spec(hello: HelloResp, module_id: int, code: int) -> CommandSpec | None:
    """The catalog spec of command `code` of module `module_id`; None for a module that is
    not a built-in (its commands are unknown to the bridge, so only its presence is
    checked).

    Raises ConduytCapabilityError `MODULE_NOT_LOADED` (no such module) or `UNKNOWN_MODULE_CMD`
    (a built-in without that command; `i2c_pass` has none, §8.8).
    """
    module = hello.module(module_id)
    if module is None:
        loaded = ", ".join(f"{m.module_id} {m.name}" for m in hello.modules) or "none"
        raise ConduytCapabilityError(
            f"no module with id {module_id} on this board (modules: {loaded})",
            ErrorName.MODULE_NOT_LOADED,
        )
    spec = CATALOG.get(module.name)
    if spec is None:
        return None
    command = spec.command_by_code(code)
    if command is None:
        known = ", ".join(f"0x{c.code:02x} {c.name}" for c in spec.commands.values()) or "none"
        raise ConduytCapabilityError(
            f"module {module_id} ({module.name}) has no command 0x{code:02x} (commands: {known})",
            ErrorName.UNKNOWN_MODULE_CMD,
        )
    return command
