"""Stable names of a board's datastreams and modules (`docs/topics.md` §1), shared by every
northbound adapter: a datastream is known by its slug (name and unit), a module by its
HELLO_RESP name, suffixed with the module id when two modules share a name."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from conduyt_bridge.protocol.hello import DatastreamDescriptor, ModuleDescriptor

_UNIT_WORDS = {"%": "percent", "°": "deg", "/": "_per_"}
_SLUG_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def slug_part(text: str) -> str:
    """`text` with `%`→`percent`, `°`→`deg`, `/`→`_per_`, and any other character outside
    `[A-Za-z0-9_.-]` → `_` (`docs/topics.md` §1)."""
    for char, word in _UNIT_WORDS.items():
        text = text.replace(char, word)
    return _SLUG_BAD.sub("_", text)


def datastream_slug(name: str, unit: str) -> str:
    """Topic slug of a datastream: name, then `_` and the unit when the unit is not empty.

    `("temperature", "celsius")` → `temperature_celsius`; `("humidity", "%")` →
    `humidity_percent`; `("setpoint", "")` → `setpoint`.
    """
    return slug_part(name) + (f"_{slug_part(unit)}" if unit else "")


def datastream_slugs(
    datastreams: Iterable[DatastreamDescriptor],
) -> dict[str, DatastreamDescriptor]:
    """Slug → datastream for a board; a slug that repeats gets `_<index>` appended."""
    out: dict[str, DatastreamDescriptor] = {}
    items = list(datastreams)
    counts: dict[str, int] = {}
    for ds in items:
        slug = datastream_slug(ds.name, ds.unit)
        counts[slug] = counts.get(slug, 0) + 1
    for ds in items:
        slug = datastream_slug(ds.name, ds.unit)
        out[f"{slug}_{ds.index}" if counts[slug] > 1 else slug] = ds
    return out


def module_slugs(modules: Iterable[ModuleDescriptor]) -> dict[str, ModuleDescriptor]:
    """Topic name → module: the HELLO name, or `name_<module_id>` when names repeat."""
    items = list(modules)
    counts: dict[str, int] = {}
    for m in items:
        counts[m.name] = counts.get(m.name, 0) + 1
    out: dict[str, ModuleDescriptor] = {}
    for m in items:
        name = slug_part(m.name) or f"module{m.module_id}"
        out[f"{name}_{m.module_id}" if counts[m.name] > 1 else name] = m
    return out


def find_module(slugs: Mapping[str, ModuleDescriptor], ref: str) -> ModuleDescriptor | None:
    """Module by topic name, or by its numeric module id (`"2"`), `docs/topics.md` §1."""
    if ref in slugs:
        return slugs[ref]
    if ref.isdigit():
        return next((m for m in slugs.values() if m.module_id == int(ref)), None)
    return None
