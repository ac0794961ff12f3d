"""Validation of commands against a board's HELLO_RESP: pure functions, no I/O.

The firmware checks almost nothing (`docs/protocol.md` §7 Q12: no pin range or capability
checks; Q2: silent drops; §10 #15, #16), so the bridge refuses every command the board
cannot carry out *before* anything is sent (`docs/architecture.md` §5, "Validation at the
source"). Each function raises a typed error whose message says what the board can do:

- `ConduytCapabilityError` (report `"capability"`): the board cannot do it, e.g.
  `pin 4 supports input, output, input_pullup; not pwm (pwm pins: 3, 5, 6, 9, 10, 11)` or
  `pin 42 does not exist: this board has 20 pins`;
- `ConduytPayloadError` (report `"payload"`): the bytes/values do not have the command's shape;
- `ConduytForbiddenError` (report `"forbidden"`): configuration forbids it (`allow_ota`).

Typed MQTT topics (pins, modules) and raw packets (`cmd/{tt}`) run through the same
checks; `check_command` validates one raw command packet as a whole.

Board limits that HELLO_RESP does not advertise are inferred from `max_payload`
(§6.5): see `infer_max_subscriptions`.

The checks live in `conduyt_bridge.device.validation`, one module per kind of command;
this module re-exports every one, and is the one to import from.
"""

from __future__ import annotations

from conduyt_bridge.device.validation.commands import check_command
from conduyt_bridge.device.validation.datastreams import check_ds_write_value, require_datastream
from conduyt_bridge.device.validation.limits import (
    I2C_ADDRESS_MAX,
    I2C_ADDRESS_MIN,
    check_i2c_address,
    check_payload_size,
    check_read_count,
    reply_payload_limit,
)
from conduyt_bridge.device.validation.modules import (
    check_module_args,
    check_module_pins,
    decode_module_args,
    module_command_spec,
)
from conduyt_bridge.device.validation.pins import (
    INPUT_MODES,
    MIN_EDGE_INTERVAL_MS,
    MODE_NAMES,
    SUBSCRIBE_MODE_NAMES,
    check_pin_read,
    check_pin_write,
    check_stream_mask,
    check_subscribe,
    check_subscription_slot,
    infer_max_subscriptions,
    mode_name,
    parse_mode_name,
    parse_pin_ref,
    read_is_analog,
    require_mode,
    require_pin,
    stream_pins,
)

__all__ = [
    "I2C_ADDRESS_MAX",
    "I2C_ADDRESS_MIN",
    "INPUT_MODES",
    "MIN_EDGE_INTERVAL_MS",
    "MODE_NAMES",
    "SUBSCRIBE_MODE_NAMES",
    "check_command",
    "check_ds_write_value",
    "check_i2c_address",
    "check_module_args",
    "check_module_pins",
    "check_payload_size",
    "check_pin_read",
    "check_pin_write",
    "check_read_count",
    "check_stream_mask",
    "check_subscribe",
    "check_subscription_slot",
    "decode_module_args",
    "infer_max_subscriptions",
    "mode_name",
    "module_command_spec",
    "parse_mode_name",
    "parse_pin_ref",
    "read_is_analog",
    "reply_payload_limit",
    "require_datastream",
    "require_mode",
    "require_pin",
    "stream_pins",
]
