"""Units in the Homie convention's recommended notation (`docs/homie.md` §3; the Homie
convention, "Units").

A board declares its unit as free text of at most 8 bytes (`celsius`, `%`, `degC`, `V`);
the convention lists well-known unit strings (`°C`, `%`, `V`, `m³`…) that every Homie
consumer must recognise. `homie_unit` maps the usual spellings onto them and keeps any
other unit as declared (the convention allows units outside its list).
"""

from __future__ import annotations

_DEGREE = "\u00b0"
_UNITS: dict[str, str] = {
    # temperature
    "°c": f"{_DEGREE}C",
    "ºc": f"{_DEGREE}C",
    "c": f"{_DEGREE}C",
    "degc": f"{_DEGREE}C",
    "deg c": f"{_DEGREE}C",
    "celsius": f"{_DEGREE}C",
    "°f": f"{_DEGREE}F",
    "ºf": f"{_DEGREE}F",
    "f": f"{_DEGREE}F",
    "degf": f"{_DEGREE}F",
    "fahrenheit": f"{_DEGREE}F",
    "°": _DEGREE,
    "deg": _DEGREE,
    "degree": _DEGREE,
    "degrees": _DEGREE,
    "k": "K",
    "kelvin": "K",
    # ratios and counts
    "%": "%",
    "percent": "%",
    "pct": "%",
    "%rh": "%",
    "ppm": "ppm",
    "#": "#",
    "count": "#",
    # electricity
    "v": "V",
    "volt": "V",
    "volts": "V",
    "w": "W",
    "watt": "W",
    "watts": "W",
    "kw": "kW",
    "kwh": "kWh",
    "a": "A",
    "amp": "A",
    "ampere": "A",
    "hz": "Hz",
    "hertz": "Hz",
    # mechanics, volume, pressure
    "rpm": "rpm",
    "l": "L",
    "liter": "L",
    "litre": "L",
    "gal": "gal",
    "gallon": "gal",
    "m": "m",
    "meter": "m",
    "metre": "m",
    "m3": "m\u00b3",
    "m³": "m\u00b3",
    "ft": "ft",
    "feet": "ft",
    "m/s": "m/s",
    "kn": "kn",
    "knots": "kn",
    "pa": "Pa",
    "pascal": "Pa",
    "psi": "psi",
    # time, light, colour temperature
    "s": "s",
    "sec": "s",
    "second": "s",
    "seconds": "s",
    "min": "min",
    "minute": "min",
    "minutes": "min",
    "h": "h",
    "hour": "h",
    "hours": "h",
    "lx": "lx",
    "lux": "lx",
    "mired": "MK\u207b\u00b9",
}


def homie_unit(unit: str) -> str | None:
    """The `unit` member for a datastream declaring `unit`: the convention's spelling of a
    known unit (`celsius` → `°C`, `percent` → `%`, `lux` → `lx`), any other unit as
    declared (trimmed), None for no unit."""
    text = unit.strip()
    if not text:
        return None
    return _UNITS.get(text.lower(), text)


__all__ = ["homie_unit"]
