"""Pin topics of the Conduyt layout (`docs/topics.md` §4): their payloads, parsed into
calls of the core's pin operations (`conduyt_bridge.core.pins`, where the rules live).

| topic (under `{base}/{dev}/`) | payload | packet sent (`docs/protocol.md` §4.2) |
|---|---|---|
| `pin/{n}/mode/set` | `input` `output` `pwm` `analog` `input_pullup` | PIN_MODE `[n][mode]` |
| `pin/{n}/set` | 0/1, on/off, true/false; 0..255 in pwm mode | PIN_WRITE `[n][v][mode]` |
| `pin/{n}/get` | anything (ignored) | PIN_READ `[n][0 or 3]`, value on `pin/{n}` |
| `pin/{n}/subscribe/set` | `{"mode", "interval_ms", "threshold"}` or `off` | PIN_SUBSCRIBE |
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from conduyt_bridge.core.pins import Subscription
from conduyt_bridge.device.capabilities import (
    MODE_NAMES,
    SUBSCRIBE_MODE_NAMES,
    mode_name,
    parse_mode_name,
    parse_pin_ref,
)
from conduyt_bridge.errors import ConduytPayloadError, ErrorName
from conduyt_bridge.northbound.conduyt.payloads import parse_command_payload
from conduyt_bridge.protocol.constants import PinMode

if TYPE_CHECKING:
    from conduyt_bridge.northbound.conduyt.command import Command, ConduytBoard

_ON = {"on", "true", "high"}
_OFF = {"off", "false", "low"}


# ------------------------------------------------------------------------------ payloads


def parse_write_value(pin: int, payload: bytes) -> int | bool:
    """A `pin/{n}/set` payload: `0`/`1`, `on`/`off`, `true`/`false`, `high`/`low` (any
    case, bare or JSON), an integer duty, or `{"value": …}`. Integral floats count as
    integers. Returns a bool for the on/off words, else an int (range checked later).

    Raises ConduytPayloadError `BAD_VALUE` / `NO_VALUE` / `EMPTY_PAYLOAD` / `NOT_UTF8`.
    """
    parsed = parse_command_payload(payload)
    value = parsed.value
    if parsed.is_object:
        if "value" not in value:
            raise ConduytPayloadError(
                f'JSON object for pin {pin} needs a "value" member', ErrorName.NO_VALUE
            )
        value = value["value"]
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _ON:
            return True
        if word in _OFF:
            return False
        if word.isdigit() and word.isascii():
            return int(word)
    raise ConduytPayloadError(
        f"pin {pin} takes 0/1, on/off, true/false or a PWM duty 0..255, not {_show(value)}",
        ErrorName.BAD_VALUE,
    )


def parse_mode_payload(pin: int, payload: bytes) -> PinMode:
    """A `pin/{n}/mode/set` payload: a mode name (bare, JSON string, `{"mode": …}` or
    `{"value": …}`). Raises ConduytPayloadError `BAD_MODE`."""
    parsed = parse_command_payload(payload)
    value = parsed.value
    if parsed.is_object:
        value = value.get("mode", value.get("value"))
    mode = parse_mode_name(value) if isinstance(value, str) else None
    if mode is None:
        raise ConduytPayloadError(
            f"pin {pin}: mode must be one of {', '.join(MODE_NAMES.values())}; got {_show(value)}",
            ErrorName.BAD_MODE,
        )
    return mode


_SUB_KEYS = ("mode", "interval_ms", "threshold")


def parse_subscription(pin: int, payload: bytes) -> Subscription | None:
    """A `pin/{n}/subscribe/set` payload; None means `off`.

    Accepts `off` (any case, bare or JSON), a bare mode name (`change` → defaults), or a
    JSON object `{"mode": "change"|"rising"|"falling"|"analog_poll"|"off",
    "interval_ms": 100, "threshold": 0, "transaction": …}`.

    Raises ConduytPayloadError `BAD_SUBSCRIPTION` (ranges are checked by `check_subscribe`).
    """
    parsed = parse_command_payload(payload)
    value = parsed.value
    doc: dict[str, Any] = {}
    if parsed.is_object:
        doc = {k: v for k, v in value.items() if k != "transaction"}
        unknown = sorted(set(doc) - set(_SUB_KEYS))
        if unknown:
            raise ConduytPayloadError(
                f"pin {pin} subscription: unknown member {unknown[0]!r} (expected "
                f"{', '.join(_SUB_KEYS)})",
                ErrorName.BAD_SUBSCRIPTION,
            )
        value = doc.get("mode")
    names = {name: m for m, name in SUBSCRIBE_MODE_NAMES.items()}
    word = value.strip().lower() if isinstance(value, str) else None
    if word == "off":
        return None
    if word not in names:
        raise ConduytPayloadError(
            f"pin {pin} subscription: mode must be one of {', '.join(names)} or off; got "
            f"{_show(value)}",
            ErrorName.BAD_SUBSCRIPTION,
        )
    numbers: dict[str, int] = {}
    for key, default in (("interval_ms", 100), ("threshold", 0)):
        raw = doc.get(key, default)
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConduytPayloadError(
                f"pin {pin} subscription: {key} must be an integer, got {_show(raw)}",
                ErrorName.BAD_SUBSCRIPTION,
            )
        numbers[key] = raw
    return Subscription(pin, names[word], numbers["interval_ms"], numbers["threshold"])


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = repr(text) if isinstance(value, str) else text
    return text if len(text) <= 40 else text[:37] + "..."


# ------------------------------------------------------------------------------ handlers


async def handle_mode(ctx: ConduytBoard, command: Command) -> dict[str, Any]:
    """`pin/{n}/mode/set` → PIN_MODE `[n][mode]`; the mode is remembered on ACK.

    Raises ConduytCapabilityError (INVALID_PIN, PIN_MODE_UNSUPPORTED), ConduytPayloadError
    (BAD_MODE), ConduytNAKError, ConduytTimeoutError, ConduytDisconnectedError.
    """
    _, hello = ctx.board.require_online()
    pin = parse_pin_ref(hello, command.parsed.target)
    mode = parse_mode_payload(pin, command.payload)
    await ctx.board.pins.set_mode(pin, mode)
    return {"pin": pin, "mode": mode_name(mode)}


async def handle_set(ctx: ConduytBoard, command: Command) -> dict[str, Any]:
    """`pin/{n}/set` → PIN_WRITE `[n][value][OUTPUT|PWM]` (`PinState.write` has the rules).

    Raises ConduytCapabilityError (INVALID_PIN, PIN_MODE_UNSUPPORTED, WRONG_PIN_MODE,
    OUT_OF_RANGE), ConduytPayloadError, ConduytNAKError, ConduytTimeoutError,
    ConduytDisconnectedError.
    """
    _, hello = ctx.board.require_online()
    pin = parse_pin_ref(hello, command.parsed.target)
    raw = parse_write_value(pin, command.payload)
    value, mode = await ctx.board.pins.write(pin, raw)
    return {"pin": pin, "value": value, "mode": mode_name(mode)}


async def handle_get(ctx: ConduytBoard, command: Command) -> dict[str, Any]:
    """`pin/{n}/get` (payload ignored) → PIN_READ; the value goes on `pin/{n}` too.

    Raises ConduytCapabilityError, ConduytNAKError, ConduytTimeoutError,
    ConduytDisconnectedError, ConduytPayloadError (`BAD_REPLY`).
    """
    _, hello = ctx.board.require_online()
    pin = parse_pin_ref(hello, command.parsed.target)
    value = await ctx.board.pins.read(pin)
    return {"pin": pin, "value": value}


async def handle_subscribe(ctx: ConduytBoard, command: Command) -> dict[str, Any]:
    """`pin/{n}/subscribe/set`: analog_poll → PIN_SUBSCRIBE (7 bytes); change/rising/
    falling → bridge-side polling; `off` → PIN_UNSUBSCRIBE / stop polling.

    Raises ConduytCapabilityError (checks, SUB_LIMIT_REACHED), ConduytPayloadError,
    ConduytNAKError, ConduytTimeoutError, ConduytDisconnectedError.
    """
    _, hello = ctx.board.require_online()
    pin = parse_pin_ref(hello, command.parsed.target)
    sub = parse_subscription(pin, command.payload)
    await ctx.board.pins.subscribe(pin, sub)
    if sub is None:
        return {"pin": pin, "subscription": "off"}
    return {"pin": pin, "subscription": sub.describe()}


__all__ = [
    "handle_get",
    "handle_mode",
    "handle_set",
    "handle_subscribe",
    "parse_mode_payload",
    "parse_subscription",
    "parse_write_value",
]
