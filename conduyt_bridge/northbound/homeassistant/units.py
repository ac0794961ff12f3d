"""Home Assistant unit, device class and state class of a numeric datastream.

`classify_unit` maps the unit text a board declares in HELLO_RESP (and, where a unit is
shared by several classes, the datastream's name) to what an HA `sensor` or `number`
entity gets (`docs/topics.md` §8, `docs/home-assistant.md`). Every unit is spelled as HA
spells it for its device class, or HA rejects the whole discovery config.

`conversion` gives the exact linear map between two units of one quantity (°C ↔ °F ↔ K,
Pa ↔ hPa ↔ psi…) for a display unit a user chose (`docs/home-assistant.md`, "Shaping
datastream entities": the conversion table).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

__all__ = [
    "Linear",
    "UnitClass",
    "classify_unit",
    "conversion",
    "convertible_units",
    "ha_unit",
    "reachable_units",
]

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


def ha_unit(text: str) -> str:
    """`text` (a board's or a user's unit) spelled as HA spells it: `celsius`, `degc` →
    `°C`; a unit the table does not know is returned stripped, as is."""
    known = classify_unit("", text).unit
    return known if known is not None else text.strip()


# --- conversions ---------------------------------------------------------------------------

_F = Fraction
# HA unit → (quantity, scale, offset): value in the quantity's base unit = x·scale + offset.
# Every factor is exact by definition (the international inch, foot, pound and pound-force;
# the conventional millimetre and inch of mercury), so a conversion and its inverse
# compose to the identity in exact arithmetic.
_PSI = _F("4.4482216152605") / _F("0.00064516")  # lbf / in², in Pa
_CONVERSIONS: dict[str, tuple[str, Fraction, Fraction]] = {
    "°C": ("temperature", _F(1), _F("273.15")),
    "°F": ("temperature", _F(5, 9), _F("459.67") * _F(5, 9)),
    "K": ("temperature", _F(1), _F(0)),
    "Pa": ("pressure", _F(1), _F(0)),
    "hPa": ("pressure", _F(100), _F(0)),
    "kPa": ("pressure", _F(1000), _F(0)),
    "mbar": ("pressure", _F(100), _F(0)),
    "bar": ("pressure", _F(100000), _F(0)),
    "psi": ("pressure", _PSI, _F(0)),
    "mmHg": ("pressure", _F("133.322387415"), _F(0)),
    "inHg": ("pressure", _F("3386.389"), _F(0)),
    "mm": ("distance", _F(1, 1000), _F(0)),
    "cm": ("distance", _F(1, 100), _F(0)),
    "m": ("distance", _F(1), _F(0)),
    "km": ("distance", _F(1000), _F(0)),
    "in": ("distance", _F("0.0254"), _F(0)),
    "ft": ("distance", _F("0.3048"), _F(0)),
    "mW": ("power", _F(1, 1000), _F(0)),
    "W": ("power", _F(1), _F(0)),
    "kW": ("power", _F(1000), _F(0)),
    "Wh": ("energy", _F(1), _F(0)),
    "kWh": ("energy", _F(1000), _F(0)),
    "m/s": ("speed", _F(1), _F(0)),
    "km/h": ("speed", _F(5, 18), _F(0)),
    "mph": ("speed", _F("0.44704"), _F(0)),
    "mg": ("weight", _F(1, 1000), _F(0)),
    "g": ("weight", _F(1), _F(0)),
    "kg": ("weight", _F(1000), _F(0)),
    "oz": ("weight", _F("28.349523125"), _F(0)),
    "lb": ("weight", _F("453.59237"), _F(0)),
    "mV": ("voltage", _F(1, 1000), _F(0)),
    "V": ("voltage", _F(1), _F(0)),
    "mA": ("current", _F(1, 1000), _F(0)),
    "A": ("current", _F(1), _F(0)),
    "ms": ("duration", _F(1, 1000), _F(0)),
    "s": ("duration", _F(1), _F(0)),
    "min": ("duration", _F(60), _F(0)),
    "h": ("duration", _F(3600), _F(0)),
}


@dataclass(frozen=True, slots=True)
class Linear:
    """The exact map `y = x·scale + offset` from one unit to another."""

    scale: Fraction
    offset: Fraction

    def __call__(self, x: float | Fraction) -> Fraction:
        return Fraction(x) * self.scale + self.offset

    @property
    def identity(self) -> bool:
        return self.scale == 1 and self.offset == 0

    def inverse(self) -> Linear:
        return Linear(1 / self.scale, -self.offset / self.scale)

    @property
    def places(self) -> int | None:
        """The decimal places every image of a whole number has, when scale and offset
        are finite decimals (°C → °F: 1; Pa → hPa: 2; cm → mm: 0), else None (°F → °C):
        rounding an integer datastream's converted value to them loses nothing and drops
        the noise of floating-point arithmetic."""
        if _finite_decimal(self.scale) and _finite_decimal(self.offset):
            return max(_places(self.scale), _places(self.offset))
        return None

    def expression(self, var: str) -> str:
        """The map as arithmetic on `var` in the syntax Jinja and Python share, with
        exact decimal constants: `var * 1.8 + 32`, `(var - 32) / 1.8`, `var / 100`."""
        a, b = self.scale, self.offset
        if b and a != 1 and _finite_decimal(b / a):
            # (x + c)·a reads better than x·a + b when c is a plain number: °F → °C.
            return f"({var}{_signed(b / a)}){_times(a)}"
        return f"{var}{_times(a)}{_signed(b) if b else ''}"


def _places(value: Fraction) -> int:
    # Digits after the point of a finite decimal: the larger power of 2 or 5 of its
    # denominator (1/8 = 0.125: 3; 1/100: 2).
    den, places = value.denominator, 0
    while den != 1:
        den //= 10 if den % 10 == 0 else 2 if den % 2 == 0 else 5
        places += 1
    return places


def _finite_decimal(value: Fraction) -> bool:
    den = value.denominator
    for prime in (2, 5):
        while den % prime == 0:
            den //= prime
    return den == 1


def _decimal(value: Fraction) -> str:
    # Exact: only called for fractions with a finite decimal expansion.
    with localcontext() as ctx:
        ctx.prec = 60
        text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _signed(value: Fraction) -> str:
    sign = " + " if value > 0 else " - "
    mag = abs(value)
    return sign + (
        _decimal(mag) if _finite_decimal(mag) else f"{mag.numerator} / {mag.denominator}"
    )


def _times(a: Fraction) -> str:
    if a == 1:
        return ""
    if a.numerator == 1:
        # Dividing by an integer is exact where multiplying by its decimal inverse is not
        # (0.01 has no float): `x / 100`, not `x * 0.01`.
        return f" / {a.denominator}"
    if _finite_decimal(a):
        return f" * {_decimal(a)}"
    if _finite_decimal(1 / a):
        return f" / {_decimal(1 / a)}"
    return f" * {a.numerator} / {a.denominator}"


def convertible_units() -> tuple[str, ...]:
    """Every unit of the conversion table, in table order (grouped by quantity)."""
    return tuple(_CONVERSIONS)


def reachable_units(unit: str) -> tuple[str, ...]:
    """The units `unit` (HA spelling) converts to, itself included; `()` when the table
    does not know it."""
    entry = _CONVERSIONS.get(unit)
    if entry is None:
        return ()
    return tuple(u for u, (quantity, _, _) in _CONVERSIONS.items() if quantity == entry[0])


def conversion(src: str, dst: str) -> Linear | None:
    """The exact map from unit `src` to unit `dst` (HA spellings): the identity when they
    are equal, None when the table has no conversion between them."""
    if src == dst:
        return Linear(Fraction(1), Fraction(0))
    a, b = _CONVERSIONS.get(src), _CONVERSIONS.get(dst)
    if a is None or b is None or a[0] != b[0]:
        return None
    # x → base: x·a + a0; base → y: (v - b0) / b
    return Linear(a[1] / b[1], (a[2] - b[2]) / b[1])
