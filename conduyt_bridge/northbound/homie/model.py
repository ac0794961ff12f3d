"""The Homie model of the bridge and its boards: devices, nodes, properties, and the
`$description` documents built from them (`docs/homie.md` §3; the Homie convention,
"Devices", "Nodes", "Properties", "Formats").

Each property carries a `Binding`: what in the board core it stands for (a datastream, a
pin, a module command or event), so that values and `/set` commands find their way.
Datastreams become properties of the `datastreams` node, pins that have a mode or a
subscription properties of the `pins` node, every module a node of its own
(`conduyt_bridge.northbound.homie.module_nodes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.pins import Subscription
from conduyt_bridge.northbound.homie.ids import CONVENTION, unique_ids
from conduyt_bridge.northbound.homie.units import homie_unit
from conduyt_bridge.northbound.homie.values import number_text
from conduyt_bridge.protocol.constants import DatastreamType, PinMode, SubscribeMode
from conduyt_bridge.protocol.hello import DatastreamDescriptor
from conduyt_bridge.protocol.values import value_range, write_range

BindingKind = Literal["datastream", "pin", "command", "event", "bridge"]

DATASTREAMS_NODE = "datastreams"
"""Node ID of a board's datastreams."""

PINS_NODE = "pins"
"""Node ID of a board's pins that have a mode or a subscription."""

BRIDGE_NODE = "bridge"
"""Node ID of the root device's own node (the bridge's version)."""

BOARD_TYPE = "conduyt.board"
"""`type` of a child device (namespaced, as the convention asks)."""

BRIDGE_TYPE = "conduyt.bridge"
"""`type` of the root device."""


@dataclass(frozen=True, slots=True)
class Binding:
    """What a property stands for: `datastream` (`key` = its slug), `pin` (`key` = the
    pin number as text), `command`/`event` (`key` = module slug, `name` = command or
    event name), `bridge` (`key` = a field of the bridge)."""

    kind: BindingKind
    key: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class PropertyModel:
    """One Homie property: its ID, `$description` members and binding."""

    id: str
    name: str
    datatype: str
    binding: Binding
    format: str | None = None
    unit: str | None = None
    settable: bool = False
    retained: bool = True

    def describe(self) -> dict[str, Any]:
        """The property object of `$description` (defaults left out: `settable` false,
        `retained` true)."""
        doc: dict[str, Any] = {"name": self.name, "datatype": self.datatype}
        if self.format is not None:
            doc["format"] = self.format
        if self.unit is not None:
            doc["unit"] = self.unit
        if self.settable:
            doc["settable"] = True
        if not self.retained:
            doc["retained"] = False
        return doc


@dataclass(frozen=True, slots=True)
class NodeModel:
    """One Homie node: ID, name, `type` and properties by ID."""

    id: str
    name: str
    type: str
    properties: Mapping[str, PropertyModel]

    def describe(self) -> dict[str, Any]:
        """The node object of `$description`."""
        return {
            "name": self.name,
            "type": self.type,
            "properties": {p.id: p.describe() for p in self.properties.values()},
        }


@dataclass(frozen=True, slots=True)
class DeviceModel:
    """One Homie device (the root when `root` is None): its description without the
    `version`, and the way back from a binding to its property."""

    id: str
    name: str
    type: str
    nodes: Mapping[str, NodeModel]
    root: str | None = None
    children: tuple[str, ...] = ()
    _by_binding: dict[Binding, tuple[str, PropertyModel]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        for node in self.nodes.values():
            for prop in node.properties.values():
                self._by_binding[prop.binding] = (node.id, prop)

    def content(self) -> dict[str, Any]:
        """`$description` without `version` (what decides whether the version changes)."""
        doc: dict[str, Any] = {"homie": CONVENTION, "name": self.name, "type": self.type}
        if self.root is not None:
            doc["root"] = self.root
            doc["parent"] = self.root
        if self.children:
            doc["children"] = list(self.children)
        doc["nodes"] = {n.id: n.describe() for n in self.nodes.values()}
        return doc

    def describe(self, version: int) -> dict[str, Any]:
        """The `$description` document with `version` (an integer, higher for every change)."""
        return {**self.content(), "version": version}

    def property(self, node: str, prop: str) -> PropertyModel | None:
        """The property `{node}/{prop}`, or None."""
        found = self.nodes.get(node)
        return found.properties.get(prop) if found is not None else None

    def bound(self, binding: Binding) -> tuple[str, PropertyModel] | None:
        """(node ID, property) bound to `binding`, or None."""
        return self._by_binding.get(binding)


# ---- datastreams ------------------------------------------------------------------------

_INTEGER_TYPES = frozenset(
    {
        DatastreamType.INT8,
        DatastreamType.UINT8,
        DatastreamType.INT16,
        DatastreamType.UINT16,
        DatastreamType.INT32,
    }
)


def range_format(bounds: tuple[float, float] | None) -> str | None:
    """`min:max` of a numeric format (`0:100`, `-1000000000:1000000000`), None if open."""
    if bounds is None:
        return None
    return f"{number_text(bounds[0])}:{number_text(bounds[1])}"


def datastream_property(prop_id: str, slug: str, ds: DatastreamDescriptor) -> PropertyModel | None:
    """The property of datastream `ds` (None for a type code the bridge does not know).

    BOOL → `boolean`; INT8..INT32 → `integer`, FLOAT32 → `float`, with `format` the range a
    write may take when writable (`conduyt_bridge.protocol.values.write_range`: a `%`
    integer 0..100, a float ±1e9), else the type's range; STRING → `string`; BYTES →
    `string` holding base64. `unit` in the convention's notation; always retained
    (datastreams are state); settable when the board declares it writable.
    """
    ds_type = ds.known_type
    if ds_type is None:
        return None
    binding = Binding("datastream", slug)
    unit = homie_unit(ds.unit)
    if ds_type is DatastreamType.BOOL:
        return PropertyModel(prop_id, ds.name, "boolean", binding, settable=ds.writable)
    if ds_type in _INTEGER_TYPES or ds_type is DatastreamType.FLOAT32:
        bounds = write_range(ds) if ds.writable else value_range(ds_type)
        datatype = "float" if ds_type is DatastreamType.FLOAT32 else "integer"
        return PropertyModel(
            prop_id,
            ds.name,
            datatype,
            binding,
            format=range_format(bounds),
            unit=unit,
            settable=ds.writable,
        )
    return PropertyModel(prop_id, ds.name, "string", binding, unit=unit, settable=ds.writable)


def datastreams_node(board: Board) -> NodeModel | None:
    """The `datastreams` node of a board (None when it declares none): one property per
    datastream, IDs from the datastream names (`door_open` → `door-open`)."""
    items = [(slug, ds) for slug, ds in board.ds_by_slug.items()]
    ids = unique_ids(ds.name for _, ds in items)
    props: dict[str, PropertyModel] = {}
    for prop_id, (slug, ds) in zip(ids, items, strict=True):
        prop = datastream_property(prop_id, slug, ds)
        if prop is not None:
            props[prop_id] = prop
    if not props:
        return None
    return NodeModel(DATASTREAMS_NODE, "Datastreams", "conduyt.datastreams", props)


# ---- pins ---------------------------------------------------------------------------------


def pin_property(pin: int, mode: PinMode | None, sub: Subscription | None) -> PropertyModel:
    """The property `pin-{n}` of a pin with a mode set through the bridge and/or a
    subscription.

    An `analog_poll` subscription or ANALOG mode → `integer` `0:` (ADC counts), read-only;
    OUTPUT → `boolean`, settable; PWM → `integer` `0:255`, settable; INPUT/INPUT_PULLUP or
    an edge subscription → `boolean`, read-only, not retained for `rising`/`falling`
    (momentary edges).
    """
    binding = Binding("pin", str(pin))
    prop_id, name = f"pin-{pin}", f"Pin {pin}"
    if (sub is not None and sub.mode is SubscribeMode.ANALOG_POLL) or mode is PinMode.ANALOG:
        return PropertyModel(prop_id, name, "integer", binding, format="0:")
    if mode is PinMode.OUTPUT:
        return PropertyModel(prop_id, name, "boolean", binding, settable=True)
    if mode is PinMode.PWM:
        return PropertyModel(prop_id, name, "integer", binding, format="0:255", settable=True)
    edges_only = sub is not None and sub.mode in (SubscribeMode.RISING, SubscribeMode.FALLING)
    return PropertyModel(prop_id, name, "boolean", binding, retained=not edges_only)


def pins_node(board: Board) -> NodeModel | None:
    """The `pins` node: the pins with a mode (`board.pins.modes`) or an active
    subscription (`board.pins.active`), by pin number; None when there are none."""
    pins = board.pins
    numbers = sorted(set(pins.modes) | set(pins.active))
    if not numbers:
        return None
    props = {f"pin-{n}": pin_property(n, pins.modes.get(n), pins.active.get(n)) for n in numbers}
    return NodeModel(PINS_NODE, "Pins", "conduyt.pins", props)


__all__ = [
    "BOARD_TYPE",
    "BRIDGE_NODE",
    "BRIDGE_TYPE",
    "DATASTREAMS_NODE",
    "PINS_NODE",
    "Binding",
    "DeviceModel",
    "NodeModel",
    "PropertyModel",
    "datastream_property",
    "datastreams_node",
    "pin_property",
    "pins_node",
    "range_format",
]
