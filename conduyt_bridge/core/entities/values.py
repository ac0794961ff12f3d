"""Command values and state values of declared entities (`docs/entities.md` §3): what a
`/set` may carry for each kind, checked here with messages that name the entity, and
the conversions (analog counts to a sensor value, a light's state to a duty or colour).
Pure: the values come decoded (JSON scalars and objects), never as payload bytes.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

from conduyt_bridge.errors import ConduytCapabilityError, ConduytPayloadError, ErrorName

EntityValue = bool | int | float | str | dict[str, Any] | None
"""A state value: a boolean, a number, a mode word or a light's / climate's object."""

_TRUE = {"true", "on", "1", "yes"}
_FALSE = {"false", "off", "0", "no"}


def show(value: Any) -> str:
    """`value` for a message, at most 40 characters."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def unwrap(label: str, value: Any) -> Any:
    """The `value` member of `{"value": …}` (other objects pass through).

    Raises ConduytPayloadError `NO_VALUE` for an object without `value` when `label`
    takes a scalar."""
    if isinstance(value, dict):
        if "value" not in value:
            raise ConduytPayloadError(
                f'JSON object for {label} needs a "value" member', ErrorName.NO_VALUE
            )
        return value["value"]
    return value


def as_bool(label: str, value: Any) -> bool:
    """`true`/`false`, `on`/`off`, `ON`/`OFF`, `1`/`0` (bare, JSON or `{"value": …}`).

    Raises ConduytPayloadError `BAD_VALUE`."""
    value = unwrap(label, value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConduytPayloadError(
        f"{label} takes true/false, on/off or 1/0, not {show(value)}", ErrorName.BAD_VALUE
    )


def as_number(label: str, value: Any, low: float, high: float, unit: str = "") -> float | int:
    """A finite number in `low..high` (an integral float becomes an int).

    Raises ConduytPayloadError `BAD_VALUE` (not a number), ConduytCapabilityError
    `OUT_OF_RANGE`."""
    value = unwrap(label, value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConduytPayloadError(f"{label} takes a number, not {show(value)}", ErrorName.BAD_VALUE)
    if not low <= value <= high:
        suffix = f" {unit}" if unit else ""
        raise ConduytCapabilityError(
            f"{label} takes {_num(low)}..{_num(high)}{suffix}, got {_num(value)}",
            ErrorName.OUT_OF_RANGE,
        )
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def light_state(on: bool, brightness: int, color: tuple[int, int, int] | None) -> dict[str, Any]:
    """A light's state object, the form of Home Assistant's JSON light schema:
    `{"state": "ON", "brightness": 128, "color_mode": "brightness"}`, with
    `"color": {"r", "g", "b"}` and color mode `rgb` for an RGB light."""
    doc: dict[str, Any] = {"state": "ON" if on else "OFF", "brightness": brightness}
    if color is None:
        doc["color_mode"] = "brightness"
    else:
        doc["color_mode"] = "rgb"
        doc["color"] = {"r": color[0], "g": color[1], "b": color[2]}
    return doc


_LIGHT_KEYS = ("state", "brightness", "color", "transaction")


def parse_light(label: str, value: Any, current: dict[str, Any], rgb: bool) -> dict[str, Any]:
    """The new state of a light from a command: `ON`/`OFF` (or any boolean word), a
    brightness 0..255 alone, or an object `{"state", "brightness", "color": {"r","g","b"}}`
    where omitted members keep their current value. `ON` with brightness 0 lights at 255.

    Raises ConduytPayloadError `BAD_VALUE`, ConduytCapabilityError `OUT_OF_RANGE`."""
    on = current.get("state") == "ON"
    brightness = int(current.get("brightness", 255))
    col = current.get("color") or {"r": 255, "g": 255, "b": 255}
    color = (int(col["r"]), int(col["g"]), int(col["b"]))
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(_LIGHT_KEYS))
        if unknown:
            raise ConduytPayloadError(
                f"{label}: unknown member {unknown[0]!r} (expected state, brightness"
                + (", color)" if rgb else ")"),
                ErrorName.BAD_VALUE,
            )
        for member in ("state", "brightness"):
            if isinstance(value.get(member), dict | list):
                # HA's JSON light schema: scalar members (no `{"value": …}` inside)
                raise ConduytPayloadError(
                    f"{label} {member} takes a "
                    + ("word ON/OFF" if member == "state" else "number 0..255")
                    + f", not {show(value[member])}",
                    ErrorName.BAD_VALUE,
                )
        if "state" in value:
            on = as_bool(f"{label} state", value["state"])
        if "brightness" in value:
            brightness = int(as_number(f"{label} brightness", value["brightness"], 0, 255))
            if "state" not in value:
                on = brightness > 0
        if "color" in value:
            if not rgb:
                raise ConduytPayloadError(
                    f"{label} has no colour: it is a dimmer (state, brightness)",
                    ErrorName.BAD_VALUE,
                )
            color = parse_color(label, value["color"])
            if "state" not in value:
                on = True
    elif isinstance(value, int | float) and not isinstance(value, bool):
        brightness = int(as_number(f"{label} brightness", value, 0, 255))
        on = brightness > 0
    else:
        on = as_bool(label, value)
    if on and brightness == 0:
        brightness = 255
    return light_state(on, brightness, color if rgb else None)


def parse_color(label: str, value: Any) -> tuple[int, int, int]:
    """`{"r": 0..255, "g": …, "b": …}` or `[r, g, b]`. Raises ConduytPayloadError,
    ConduytCapabilityError `OUT_OF_RANGE`."""
    if isinstance(value, list) and len(value) == 3:
        value = dict(zip("rgb", value, strict=True))
    if not isinstance(value, dict) or set(value) != {"r", "g", "b"}:
        raise ConduytPayloadError(
            f'{label}: color must be {{"r": 0..255, "g": 0..255, "b": 0..255}}, not {show(value)}',
            ErrorName.BAD_VALUE,
        )
    r, g, b = (int(as_number(f"{label} color {c}", value[c], 0, 255)) for c in "rgb")
    return r, g, b


def light_duty(state: dict[str, Any]) -> int:
    """The PWM duty 0..255 of a dimmer's state (off: 0)."""
    return int(state["brightness"]) if state.get("state") == "ON" else 0


def light_fill(state: dict[str, Any]) -> tuple[int, int, int]:
    """The colour a strip shows for an RGB light's state: each channel scaled by
    brightness/255 (rounded), black when off."""
    if state.get("state") != "ON":
        return 0, 0, 0
    bri = int(state["brightness"])
    col = state["color"]
    return tuple(round(int(col[c]) * bri / 255) for c in "rgb")  # type: ignore[return-value]


def scaled(raw: int, scale: float, offset: float, precision: int | None) -> float | int:
    """A sensor's value from raw ADC counts: `raw * scale + offset`, rounded to
    `precision` decimals when set (an int when precision is 0)."""
    value = raw * scale + offset
    if precision is None:
        return value
    if precision == 0:
        return round(value)
    return round(value, precision)


__all__ = [
    "EntityValue",
    "as_bool",
    "as_number",
    "light_duty",
    "light_fill",
    "light_state",
    "parse_color",
    "parse_light",
    "scaled",
    "show",
    "unwrap",
]
