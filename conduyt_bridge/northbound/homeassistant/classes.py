"""Home Assistant's device classes and state classes of the platforms a datastream can
become (sensor, number, binary_sensor, switch), after HA's documentation and its
`DEVICE_CLASS_UNITS`/`DEVICE_CLASS_STATE_CLASSES`: HA refuses a discovery config whose
device class does not belong to its platform, or whose unit or state class its device
class does not allow. Used by `conduyt_bridge.northbound.homeassistant.shaping` to check
a user's overrides before HA sees them (`docs/home-assistant.md`, "Shaping datastream
entities").
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "BINARY_SENSOR_CLASSES",
    "ENTITY_CATEGORIES",
    "NUMERIC_CLASSES",
    "STATE_CLASSES",
    "STRING_SENSOR_CLASSES",
    "SWITCH_CLASSES",
    "EntityCategory",
    "StateClass",
]

StateClass = Literal["measurement", "measurement_angle", "total", "total_increasing"]
EntityCategory = Literal["config", "diagnostic"]
STATE_CLASSES: tuple[StateClass, ...] = (
    "measurement",
    "total_increasing",
    "total",
    "measurement_angle",
)
"""HA's sensor state classes, in the order a default is picked when a device class
allows several."""
ENTITY_CATEGORIES: tuple[EntityCategory, ...] = ("config", "diagnostic")

_M = frozenset({"measurement"})
_ANY = frozenset(STATE_CLASSES) - {"measurement_angle"}
_TOTALS = frozenset({"total", "total_increasing"})
_UG = frozenset({"µg/m³"})
_PRESSURE = frozenset({"Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"})

# Numeric device classes of HA's sensor and number platforms → (allowed units, allowed
# state classes), after HA's DEVICE_CLASS_UNITS and DEVICE_CLASS_STATE_CLASSES: HA refuses a
# discovery config whose unit is not one of its device class's. None: no unit.
NUMERIC_CLASSES: dict[str, tuple[frozenset[str | None], frozenset[str]]] = {
    "apparent_power": (frozenset({"VA"}), _M),
    "aqi": (frozenset({None}), _M),
    "atmospheric_pressure": (_PRESSURE, _M),
    "battery": (frozenset({"%"}), _M),
    "carbon_dioxide": (frozenset({"ppm"}), _M),
    "carbon_monoxide": (frozenset({"ppm"}), _M),
    "conductivity": (frozenset({"S/cm", "mS/cm", "µS/cm"}), _M),
    "current": (frozenset({"A", "mA"}), _M),
    "distance": (frozenset({"mm", "cm", "m", "km", "in", "ft", "yd", "mi"}), _ANY),
    "duration": (frozenset({"d", "h", "min", "s", "ms", "µs"}), _ANY),
    "energy": (
        frozenset({"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh"})
        | {"cal", "kcal", "Mcal", "Gcal"},
        _TOTALS,
    ),
    "frequency": (frozenset({"Hz", "kHz", "MHz", "GHz"}), _M),
    "humidity": (frozenset({"%"}), _M),
    "illuminance": (frozenset({"lx"}), _M),
    "irradiance": (frozenset({"W/m²", "BTU/(h⋅ft²)"}), _M),
    "moisture": (frozenset({"%"}), _M),
    "nitrogen_dioxide": (_UG, _M),
    "nitrogen_monoxide": (_UG, _M),
    "nitrous_oxide": (_UG, _M),
    "ozone": (_UG, _M),
    "ph": (frozenset({None}), _M),
    "pm1": (_UG, _M),
    "pm10": (_UG, _M),
    "pm25": (_UG, _M),
    "power": (frozenset({"mW", "W", "kW", "MW", "GW", "TW"}), _M),
    "power_factor": (frozenset({"%", None}), _M),
    "pressure": (_PRESSURE, _M),
    "signal_strength": (frozenset({"dB", "dBm"}), _M),
    "sound_pressure": (frozenset({"dB", "dBA"}), _M),
    "speed": (
        frozenset({"ft/s", "in/d", "in/h", "in/s", "km/h", "kn", "m/s", "mph", "mm/d"})
        | {"mm/h", "mm/s", "Beaufort"},
        _M,
    ),
    "sulphur_dioxide": (_UG, _M),
    "temperature": (frozenset({"°C", "°F", "K"}), _M),
    "volatile_organic_compounds": (_UG, _M),
    "volatile_organic_compounds_parts": (frozenset({"ppb", "ppm"}), _M),
    "voltage": (frozenset({"V", "mV", "µV", "kV", "MV"}), _M),
    "volume_flow_rate": (frozenset({"m³/h", "ft³/min", "L/min", "gal/min", "mL/s"}), _M),
    "weight": (frozenset({"µg", "mg", "g", "kg", "oz", "lb", "st"}), _ANY),
    "wind_direction": (frozenset({"°"}), frozenset({"measurement_angle"})),
    "wind_speed": (frozenset({"Beaufort", "ft/s", "km/h", "kn", "m/s", "mph"}), _M),
}
STRING_SENSOR_CLASSES = frozenset({"date", "timestamp"})
"""Device classes of a sensor whose state is text (HA's `enum` needs `options`, which a
datastream does not declare)."""
BINARY_SENSOR_CLASSES = frozenset(
    {
        *("battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door"),
        *("garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving"),
        *("occupancy", "opening", "plug", "power", "presence", "problem", "running"),
        *("safety", "smoke", "sound", "tamper", "update", "vibration", "window"),
    }
)
SWITCH_CLASSES = frozenset({"outlet", "switch"})
