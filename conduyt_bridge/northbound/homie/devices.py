"""The Homie devices of a bridge (`docs/homie.md` §3): the root device (the bridge) and
one child device per board, built from the board core's state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conduyt_bridge.core.board import Board
from conduyt_bridge.northbound.homie.model import (
    BOARD_TYPE,
    BRIDGE_NODE,
    BRIDGE_TYPE,
    Binding,
    DeviceModel,
    NodeModel,
    PropertyModel,
    datastreams_node,
    pins_node,
)
from conduyt_bridge.northbound.homie.module_nodes import module_nodes


def board_device(board: Board, device_id: str, root_id: str) -> DeviceModel:
    """The child device of `board`: before its first handshake a device without nodes,
    then the `datastreams` and `pins` nodes and one node per module."""
    nodes: dict[str, NodeModel] = {}
    hello = board.hello
    name = board.dev
    if hello is not None:
        name = f"{board.dev} ({hello.firmware_name} {hello.version_string})"
        for node in (datastreams_node(board), pins_node(board)):
            if node is not None:
                nodes[node.id] = node
        for node in module_nodes(board, taken=nodes.keys()):
            nodes[node.id] = node
    return DeviceModel(device_id, name, BOARD_TYPE, nodes, root=root_id)


def bridge_device(root_id: str, name: str, children: tuple[str, ...]) -> DeviceModel:
    """The root device: the bridge, with every board's child device in `children` and a
    `bridge` node holding its `version` (string)."""
    version = PropertyModel("version", "Bridge version", "string", Binding("bridge", "version"))
    node = NodeModel(BRIDGE_NODE, "Bridge", "conduyt.bridge", {"version": version})
    return DeviceModel(root_id, name, BRIDGE_TYPE, {BRIDGE_NODE: node}, children=children)


def known_values(
    board: Board, pins: Mapping[int, int], model: DeviceModel
) -> list[tuple[str, PropertyModel, Any]]:
    """(node ID, property, value) of the known values of `board`'s datastreams and of
    its pins (`pins`: pin → last value) that have a property in `model`."""
    found: list[tuple[str, PropertyModel, Any]] = []
    keys = [Binding("datastream", slug) for slug in board.values]
    keys += [Binding("pin", str(pin)) for pin in pins]
    values = [*board.values.values(), *pins.values()]
    for key, value in zip(keys, values, strict=True):
        bound = model.bound(key)
        if bound is not None:
            found.append((bound[0], bound[1], value))
    return found


__all__ = ["board_device", "bridge_device", "known_values"]
