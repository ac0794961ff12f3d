"""Home Assistant unit, device class and state class of a numeric datastream.

`classify_unit` maps the unit text a board declares in HELLO_RESP (and, where a unit is
shared by several classes, the datastream's name) to what an HA `sensor` or `number`
entity gets (`docs/topics.md` §8, `docs/home-assistant.md`). Every unit is spelled as HA
spells it for its device class, or HA rejects the whole discovery config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["UnitClass", "classify_unit"]

_NAME_WORDS = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class UnitClass:
    """What HA gets for a numeric datastream's unit: unit_of_measurement (None: omit),
    device_class (None: omit) and state_class."""

    unit: str | None
    device_class: str | None = None
    state_class: str = "measurement"


# Unit text from HELLO, lower-cased, → (HA unit, device_class, state_class).
# HA rejects a discovery config whose unit is not one of the device class's units
# ("The unit of measurement ... is not valid together with device class ..."), so every
# unit here is spelled exactly as HA's DEVICE_CLASS_UNITS spells it (`°C`, `µg/m³`, `L`).
# Lower-casing merges milli and mega (`mW`/`MW`): on a microcontroller milli is the
# plausible one. Volumes (L, mL) get no device class: HA's `volume` class only allows
# total/total_increasing, and a board reporting litres is far more often a tank level
# than a meter; rpm has no HA device class at all; `g` is left alone because on a board
# it is as likely an accelerometer's g-force as a weight in grams.
_M = "measurement"
_UNIT_TABLE: dict[str, tuple[str | None, str | None, str]] = {
    "°c": ("°C", "temperature", _M),
    "ºc": ("°C", "temperature", _M),  # ordinal indicator, a common typo for the degree sign
    "c": ("°C", "temperature", _M),
    "degc": ("°C", "temperature", _M),
    "deg c": ("°C", "temperature", _M),
    "celsius": ("°C", "temperature", _M),
    "°f": ("°F", "temperature", _M),
    "ºf": ("°F", "temperature", _M),
    "degf": ("°F", "temperature", _M),
    "fahrenheit": ("°F", "temperature", _M),
    "kelvin": ("K", "temperature", _M),
    "v": ("V", "voltage", _M),
    "volt": ("V", "voltage", _M),
    "mv": ("mV", "voltage", _M),
    "a": ("A", "current", _M),
    "amp": ("A", "current", _M),
    "ma": ("mA", "current", _M),
    "w": ("W", "power", _M),
    "watt": ("W", "power", _M),
    "mw": ("mW", "power", _M),
    "kw": ("kW", "power", _M),
    "va": ("VA", "apparent_power", _M),
    # Energy on a board is a counter that restarts at 0 when the board reboots:
    # total_increasing is the state class whose semantics (a drop = a reset) match that,
    # and HA allows only total/total_increasing for the energy class.
    "wh": ("Wh", "energy", "total_increasing"),
    "kwh": ("kWh", "energy", "total_increasing"),
    "pa": ("Pa", "pressure", _M),
    "hpa": ("hPa", "pressure", _M),
    "kpa": ("kPa", "pressure", _M),
    "bar": ("bar", "pressure", _M),
    "mbar": ("mbar", "pressure", _M),
    "psi": ("psi", "pressure", _M),
    "lx": ("lx", "illuminance", _M),
    "lux": ("lx", "illuminance", _M),
    "dbm": ("dBm", "signal_strength", _M),
    "dba": ("dBA", "sound_pressure", _M),
    "hz": ("Hz", "frequency", _M),
    "khz": ("kHz", "frequency", _M),
    "s": ("s", "duration", _M),
    "sec": ("s", "duration", _M),
    "ms": ("ms", "duration", _M),
    "min": ("min", "duration", _M),
    "h": ("h", "duration", _M),
    "m": ("m", "distance", _M),
    "cm": ("cm", "distance", _M),
    "mm": ("mm", "distance", _M),
    "km": ("km", "distance", _M),
    "km/h": ("km/h", "speed", _M),
    "kmh": ("km/h", "speed", _M),
    "m/s": ("m/s", "speed", _M),
    "kg": ("kg", "weight", _M),
    "w/m2": ("W/m²", "irradiance", _M),
    "w/m²": ("W/m²", "irradiance", _M),
    "l/min": ("L/min", "volume_flow_rate", _M),
    "µs/cm": ("µS/cm", "conductivity", _M),
    "us/cm": ("µS/cm", "conductivity", _M),
    "l": ("L", None, _M),
    "ml": ("mL", None, _M),
    "rpm": ("rpm", None, _M),
    "°": ("°", None, _M),
    "deg": ("°", None, _M),
    # Unit-less device classes: HA wants no unit_of_measurement for these.
    "ph": (None, "ph", _M),
    "aqi": (None, "aqi", _M),
}
_MICROGRAMS_PER_M3 = frozenset({"µg/m³", "µg/m3", "ug/m³", "ug/m3", "μg/m³", "μg/m3", "mcg/m3"})


def classify_unit(name: str, unit: str) -> UnitClass:
    """HA unit_of_measurement, device_class and state_class of a numeric datastream.

    `unit` is the HELLO unit text (matched case-insensitively, `celsius`, `°C`, `degc`
    all → `°C`/temperature); `name` disambiguates units several classes share: `%` is
    humidity when the name contains "humid", battery with "batt", moisture with "moist"
    or "soil", else a plain percentage; `ppm` is CO₂ with "co2" in the name; `µg/m³` is
    PM2.5 with "pm2" (PM10, PM1 likewise); `dB` is signal strength for rssi/snr/signal
    names, else sound pressure. An unknown unit is passed through with no device class.
    """
    text = unit.strip()
    key = text.lower()
    lname = name.lower()
    words = set(_NAME_WORDS.split(lname))
    if not key:
        return UnitClass(None)
    if key == "%":
        if "humid" in lname or "rh" in words:
            return UnitClass("%", "humidity")
        if "batt" in lname:
            return UnitClass("%", "battery")
        if "moist" in lname or "soil" in lname:
            return UnitClass("%", "moisture")
        return UnitClass("%")
    if key == "ppm":
        if "co2" in lname:
            return UnitClass("ppm", "carbon_dioxide")
        if "voc" in lname:
            return UnitClass("ppm", "volatile_organic_compounds_parts")
        if "co" in words:
            return UnitClass("ppm", "carbon_monoxide")
        return UnitClass("ppm")
    if key == "ppb":
        return UnitClass("ppb", "volatile_organic_compounds_parts" if "voc" in lname else None)
    if key in _MICROGRAMS_PER_M3:
        # Order matters: "pm10" contains "pm1".
        for hint, pm_class in (("pm10", "pm10"), ("pm2", "pm25"), ("pm1", "pm1")):
            if hint in lname:
                return UnitClass("µg/m³", pm_class)
        if "voc" in lname:
            return UnitClass("µg/m³", "volatile_organic_compounds")
        return UnitClass("µg/m³")
    if key == "db":
        if words & {"rssi", "snr", "signal", "link"}:
            return UnitClass("dB", "signal_strength")
        return UnitClass("dB", "sound_pressure")
    if key in _UNIT_TABLE:
        ha_unit, device_class, state_class = _UNIT_TABLE[key]
        return UnitClass(ha_unit, device_class, state_class)
    return UnitClass(text)
