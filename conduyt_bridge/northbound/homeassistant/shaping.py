"""Shaping datastream entities: the per-datastream HA overrides of the config file
(`[devices.datastreams.<name>]`), checked and applied (`docs/home-assistant.md`, "Shaping
datastream entities").

Two checks, one set of rules. `option_problems` needs only the options (the config file's
validation runs it for every device); `datastream_problems` needs the datastream the
board declares in HELLO_RESP, since the HA platform (sensor, number, binary_sensor, switch,
text), the board's unit and the write range come from there (the config file runs it for
`sim://` boards, whose HELLO is known; discovery runs it when a board comes online,
publishes a datastream whose options do not fit without them and reports each misfit on
`{base}/{dev}/error`: `board_problems`). `shape` applies valid
options to an entity config, converting the value between the board's unit and the
display unit with `value_template`/`command_template` (the Conduyt topics keep the
board's unit). Nothing here does IO.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any, NamedTuple, Protocol, runtime_checkable

from conduyt_bridge.northbound.homeassistant.classes import (
    BINARY_SENSOR_CLASSES,
    NUMERIC_CLASSES,
    STATE_CLASSES,
    STRING_SENSOR_CLASSES,
    SWITCH_CLASSES,
)
from conduyt_bridge.northbound.homeassistant.model import BoardDiscovery, DatastreamHints
from conduyt_bridge.northbound.homeassistant.units import (
    Linear,
    classify_unit,
    conversion,
    ha_unit,
    reachable_units,
)
from conduyt_bridge.protocol.constants import INTEGER_RANGES, DatastreamType
from conduyt_bridge.protocol.hello import DatastreamDescriptor
from conduyt_bridge.protocol.values import write_range

__all__ = [
    "BoardProblem",
    "Problem",
    "ShapingOptions",
    "board_problems",
    "datastream_hints",
    "datastream_platform",
    "datastream_problems",
    "device_name",
    "option_problems",
    "shape",
]

Problem = tuple[str, str]
"""`(option key, message)`: what is wrong with one option of one datastream."""

_ALL_CLASSES = sorted(
    set(NUMERIC_CLASSES) | STRING_SENSOR_CLASSES | BINARY_SENSOR_CLASSES | SWITCH_CLASSES
)
_SLIDER_STEPS = 255
"""A `number` is a slider when its range holds at most this many steps (the 256 values of
an 8-bit type), else a box."""
_MIN_STEP = Fraction(1, 1000)
"""HA's smallest `number` step (number.mqtt docs)."""


@runtime_checkable
class ShapingOptions(Protocol):
    """The shaping keys of `[devices.datastreams.<name>]` (the config's
    `DatastreamOptions` has them all; `None` means "not set")."""

    @property
    def device_class(self) -> str | None: ...
    @property
    def state_class(self) -> str | None: ...
    @property
    def unit(self) -> str | None: ...
    @property
    def icon(self) -> str | None: ...
    @property
    def entity_category(self) -> str | None: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...
    @property
    def step(self) -> float | None: ...
    @property
    def enabled_by_default(self) -> bool | None: ...


@dataclass(frozen=True, slots=True)
class _Kind:
    """What a datastream is in HA: its platform and, for numbers, the type."""

    platform: str
    ds_type: DatastreamType

    @property
    def numeric(self) -> bool:
        return self.platform in ("sensor", "number") and self.ds_type.is_numeric

    def describe(self, ds: DatastreamDescriptor) -> str:
        access = "writable" if self.platform in ("number", "switch", "text") else "read-only"
        return f"datastream '{ds.name}' is a {access} {self.ds_type.name}: HA {self.platform}"


def datastream_platform(ds: DatastreamDescriptor, read_only: bool) -> str | None:
    """The HA platform of datastream `ds` (`docs/topics.md` §8): binary_sensor/switch for
    BOOL, sensor/number for numbers, sensor/text for STRING and BYTES; None for a type
    code the protocol does not define."""
    kind = _kind(ds, read_only)
    return kind.platform if kind else None


def _kind(ds: DatastreamDescriptor, read_only: bool) -> _Kind | None:
    ds_type = ds.known_type
    if ds_type is None:
        return None
    writable = ds.writable and not read_only
    if ds_type is DatastreamType.BOOL:
        return _Kind("switch" if writable else "binary_sensor", ds_type)
    if ds_type.is_numeric:
        return _Kind("number" if writable else "sensor", ds_type)
    return _Kind("text" if writable else "sensor", ds_type)


def _join(items: Any) -> str:
    return ", ".join(str(i) for i in items)


def _units_text(units: frozenset[str | None]) -> str:
    return _join(sorted("no unit" if u is None else u for u in units))


# --- checks without the board ------------------------------------------------------------


def option_problems(opts: ShapingOptions) -> list[Problem]:
    """What is wrong with the options whatever the board: an unknown device class, a unit
    or state class the device class does not allow, min above max, and keys of a
    read-only sensor (state_class) mixed with keys of a writable number (min/max/step)."""
    problems: list[Problem] = []
    dc = opts.device_class
    if dc is not None and dc not in _ALL_CLASSES:
        close = difflib.get_close_matches(dc, _ALL_CLASSES, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append(
            (
                "device_class",
                f"unknown device class '{dc}' (not one of the HA sensor, number, "
                f"binary_sensor or switch device classes the bridge supports){hint}",
            )
        )
    elif dc in NUMERIC_CLASSES:
        units, state_classes = NUMERIC_CLASSES[dc]
        if opts.unit is not None and ha_unit(opts.unit) not in units:
            problems.append(
                (
                    "unit",
                    f"unit '{ha_unit(opts.unit)}' is not valid with device class '{dc}' "
                    f"(allowed: {_units_text(units)})",
                )
            )
        if opts.state_class is not None and opts.state_class not in state_classes:
            problems.append(
                (
                    "state_class",
                    f"state class '{opts.state_class}' is not valid with device class "
                    f"'{dc}' (allowed: {_join(sorted(state_classes))})",
                )
            )
    if opts.min is not None and opts.max is not None and opts.min > opts.max:
        problems.append(("max", f"max ({opts.max:g}) must be >= min ({opts.min:g})"))
    range_keys = [k for k in ("min", "max", "step") if getattr(opts, k) is not None]
    if opts.state_class is not None and range_keys:
        problems.append(
            (
                "state_class",
                "state_class is for read-only sensors and "
                f"{'/'.join(range_keys)} for writable numbers: one datastream cannot take both",
            )
        )
    return problems


# --- checks against the board's datastream -----------------------------------------------


def _display(ds: DatastreamDescriptor, opts: ShapingOptions) -> tuple[str | None, Linear | None]:
    """The display unit (HA spelling) and the map board → display; the map is None when
    the unit is only a label (the board declares none) or there is no conversion."""
    board = ha_unit(ds.unit) if ds.unit.strip() else None
    if opts.unit is None:
        return board, Linear(Fraction(1), Fraction(0))
    shown = ha_unit(opts.unit)
    if board is None:
        return shown, Linear(Fraction(1), Fraction(0))
    return shown, conversion(board, shown)


def _bounds(ds: DatastreamDescriptor, to_display: Linear) -> tuple[Fraction, Fraction]:
    bounds = write_range(ds)
    if bounds is None:  # only numeric datastreams reach here
        raise ValueError(f"datastream '{ds.name}' is not numeric")
    lo, hi = (to_display(b) for b in bounds)
    return (lo, hi) if lo <= hi else (hi, lo)


def datastream_problems(
    ds: DatastreamDescriptor, opts: ShapingOptions, read_only: bool = False
) -> list[Problem]:
    """What is wrong with the options for the datastream `ds` the board declares: a
    device class, state class, unit, min/max/step or entity category its HA platform does
    not take, a unit with no conversion from the board's, a min/max outside the values
    the bridge accepts (in the display unit), a min/max/step that is not a whole number
    for an integer datastream shown in its own unit, a unit the final device class
    refuses. Each is `(key, message)`, the message naming the datastream and its platform.
    When `option_problems` finds something, that is the answer (the rest needs valid
    options)."""
    basic = option_problems(opts)
    if basic:
        return basic
    kind = _kind(ds, read_only)
    if kind is None:
        return []
    what = kind.describe(ds)
    problems: list[Problem] = []
    dc = opts.device_class
    if dc is not None:
        allowed = _platform_classes(kind)
        if dc not in allowed:
            listed = f"allowed: {_join(sorted(allowed))}" if allowed else "it has none"
            problems.append(
                (
                    "device_class",
                    f"device class '{dc}' is not one of HA's {kind.platform} device classes "
                    f"({listed}); {what}",
                )
            )
    if opts.state_class is not None and not (kind.platform == "sensor" and kind.numeric):
        problems.append(
            ("state_class", f"state_class applies to read-only numeric sensors; {what}")
        )
    for key in ("min", "max", "step"):
        if getattr(opts, key) is not None and kind.platform != "number":
            problems.append((key, f"{key} applies to writable numbers; {what}"))
    if opts.entity_category == "config" and kind.platform in ("sensor", "binary_sensor"):
        problems.append(
            (
                "entity_category",
                f"entity_category 'config' is for entities that change a setting, HA refuses "
                f"it on a {kind.platform}; {what} (use 'diagnostic')",
            )
        )
    if opts.unit is not None and not kind.numeric:
        problems.append(("unit", f"unit applies to numeric datastreams; {what}"))
    if problems or not kind.numeric:
        return problems
    shown, to_display = _display(ds, opts)
    if to_display is None:
        board = ha_unit(ds.unit)
        reachable = [u for u in reachable_units(board) if u != board]
        where = (
            f"'{board}' converts to {_join(reachable)}"
            if reachable
            else f"the conversion table has none for '{board}'"
        )
        return [
            (
                "unit",
                f"no known conversion from '{board}' (the board's unit of "
                f"'{ds.name}') to '{shown}': {where}",
            )
        ]
    final = _classes(ds, opts, shown)
    if final.device_class in NUMERIC_CLASSES and (dc is not None or opts.unit is not None):
        units = NUMERIC_CLASSES[final.device_class][0]
        if shown not in units:
            shown_text = "no unit" if shown is None else f"'{shown}'"
            problems.append(
                (
                    "unit" if opts.unit is not None else "device_class",
                    f"unit {shown_text} of datastream '{ds.name}' is not valid with device "
                    f"class '{final.device_class}' (allowed: {_units_text(units)})",
                )
            )
    if kind.platform == "number":
        lo, hi = _bounds(ds, to_display)
        unit_text = f" {shown}" if shown else ""
        if to_display.identity and kind.ds_type in INTEGER_RANGES:
            # Without a conversion nothing rounds what HA sends (`command_template`), and
            # the bridge takes whole numbers only for an integer type (`encode_value`).
            for key in ("min", "max", "step"):
                value = getattr(opts, key)
                if value is not None and not float(value).is_integer():
                    problems.append(
                        (
                            key,
                            f"{key} {value:g} is not a whole number; datastream "
                            f"'{ds.name}' ({kind.ds_type.name}) takes whole numbers only",
                        )
                    )
        for key, value in (("min", opts.min), ("max", opts.max)):
            if value is not None and not lo <= Fraction(value) <= hi:
                problems.append(
                    (
                        key,
                        f"{key} {value:g} is outside what datastream '{ds.name}' accepts: "
                        f"{float(lo):g}..{float(hi):g}{unit_text}",
                    )
                )
    return problems


def _platform_classes(kind: _Kind) -> frozenset[str]:
    if kind.platform == "binary_sensor":
        return BINARY_SENSOR_CLASSES
    if kind.platform == "switch":
        return SWITCH_CLASSES
    if kind.platform == "text":
        return frozenset()
    if kind.numeric:
        return frozenset(NUMERIC_CLASSES)
    return STRING_SENSOR_CLASSES


@dataclass(frozen=True, slots=True)
class _Classes:
    device_class: str | None
    state_class: str | None


def _classes(ds: DatastreamDescriptor, opts: ShapingOptions, shown: str | None) -> _Classes:
    """The final device class and state class of a numeric datastream: the classification
    of its display unit, then the options; a state class the device class does not allow
    becomes the first one it does (`wind_direction` → `measurement_angle`)."""
    auto = classify_unit(ds.name, shown or "")
    dc = opts.device_class if opts.device_class is not None else auto.device_class
    sc = opts.state_class if opts.state_class is not None else auto.state_class
    if dc in NUMERIC_CLASSES:
        allowed = NUMERIC_CLASSES[dc][1]
        if sc not in allowed:
            sc = next(s for s in STATE_CLASSES if s in allowed)
    return _Classes(dc, sc)


# --- applying ----------------------------------------------------------------------------


def _value_template(to_display: Linear, is_json: bool, integer: bool) -> str:
    # A payload that is not a number (the plain format's `null` for NaN, JSON's null) is
    # passed through untouched, so HA shows "unknown" as it does without a conversion.
    # HA computes in floats, so the result is cut to what the board's value holds: 23.1 °C
    # shows as 73.58 °F, not 73.58000000000001, and a number set to its max (90 °F, kept
    # by the board as the float32 32.22222 °C) comes back as 90, not 89.999996, which
    # HA's number would refuse as out of range. An integer through an exact decimal map
    # is rounded to the places it needs (Wh → kWh: 3); anything else to float32's 7
    # significant digits.
    src = "value_json.value" if is_json else "value"
    body = to_display.expression(f"({src} | float)")
    places = to_display.places if integer else None
    shown = f"({body}) | round({places})" if places is not None else f"'%.7g' | format({body})"
    return f"{{% if is_number({src}) %}}{{{{ {shown} }}}}{{% else %}}{{{{ {src} }}}}{{% endif %}}"


def _command_template(to_board: Linear, integer: bool) -> str:
    body = to_board.expression("value")
    # An integer datastream takes whole numbers only (`encode_value`): round to nearest.
    return f"{{{{ ({body}) | round | int }}}}" if integer else f"{{{{ {body} }}}}"


def _number(value: Fraction, integer: bool) -> int | float:
    return int(value) if integer and value.denominator == 1 else float(value)


def shape(
    conf: dict[str, Any],
    ds: DatastreamDescriptor,
    opts: ShapingOptions,
    read_only: bool,
    is_json: bool,
) -> None:
    """Apply valid options (`datastream_problems` empty) to the discovery config `conf`
    of datastream `ds`, in place: icon, entity_category, enabled_by_default; for numbers
    the display unit (with `value_template`, and for a writable number `command_template`
    and converted min/max/step, when the unit differs from the board's), the device class
    and state class; min/max/step and the slider/box mode of a writable number."""
    kind = _kind(ds, read_only)
    if kind is None:
        return
    for key in ("icon", "entity_category", "enabled_by_default"):
        value = getattr(opts, key)
        if value is not None:
            conf[key] = value
    if not kind.numeric:
        if opts.device_class is not None:
            conf["device_class"] = opts.device_class
        return
    shown, to_display = _display(ds, opts)
    if to_display is None:
        return
    for key in ("unit_of_measurement", "device_class", "state_class"):
        conf.pop(key, None)
    final = _classes(ds, opts, shown)
    if shown is not None:
        conf["unit_of_measurement"] = shown
    if final.device_class is not None:
        conf["device_class"] = final.device_class
    if kind.platform == "sensor" and final.state_class is not None:
        conf["state_class"] = final.state_class
    converted = not to_display.identity
    integer = kind.ds_type in INTEGER_RANGES
    if converted:
        conf["value_template"] = _value_template(to_display, is_json, integer)
    if kind.platform == "number":
        if converted:
            conf["command_template"] = _command_template(to_display.inverse(), integer)
        conf.update(_range(ds, opts, to_display, integer))


def _range(
    ds: DatastreamDescriptor, opts: ShapingOptions, to_display: Linear, integer: bool
) -> Mapping[str, Any]:
    lo, hi = _bounds(ds, to_display)
    if opts.min is not None:
        lo = Fraction(opts.min)
    if opts.max is not None:
        hi = Fraction(opts.max)
    if opts.step is not None:
        step = Fraction(opts.step)
    elif integer:
        # One step of the board's integer, in the display unit, at least HA's smallest.
        step = max(abs(to_display.scale), _MIN_STEP)
    else:
        step = _MIN_STEP
    mode = "slider" if (hi - lo) / step <= _SLIDER_STEPS else "box"
    whole = integer and step.denominator == 1
    return {
        "min": _number(lo, whole),
        "max": _number(hi, whole),
        "step": _number(step, whole),
        "mode": mode,
    }


# --- from a board's configuration ----------------------------------------------------------


def datastream_hints(options: object) -> DatastreamHints:
    """The `DatastreamHints` of one `[devices.datastreams.<name>]` table: every field the
    object has (the daemon's `DatastreamOptions` has them all; a library host's config may
    carry only `name` and `expire_after_s`, the rest is then unset)."""
    return DatastreamHints(
        **{f.name: getattr(options, f.name, None) for f in fields(DatastreamHints)}
    )


def device_name(config: object) -> str | None:
    """The HA device name a board's configuration gives (`[[devices]] name`), or None."""
    name = getattr(config, "name", None)
    return name if isinstance(name, str) and name else None


class BoardProblem(NamedTuple):
    """An option of `[devices.datastreams.<datastream>]` that does not fit the datastream
    the board declares; `str()` is the line `[devices.datastreams.<name>] <key>: <message>`."""

    datastream: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"[devices.datastreams.{self.datastream}] {self.key}: {self.message}"


def board_problems(board: BoardDiscovery) -> list[BoardProblem]:
    """Every datastream option that does not fit the board's declared datastream
    (`datastream_problems`), in HELLO order; discovery publishes such a datastream without
    its shaping options and the adapter reports each on `{base}/{dev}/error`
    (`docs/home-assistant.md`, "Shaping datastream entities")."""
    return [
        BoardProblem(ds.name, key, message)
        for ds in board.hello.datastreams
        if (hints := board.hints.get(ds.name)) is not None and hints.shaped
        for key, message in datastream_problems(ds, hints, board.read_only)
    ]
