"""A checker of Homie 5 `$description` documents and property values, written from the
text of the Homie convention (homieiot/convention `convention.md`: "Topic IDs",
"Payloads", "Devices", "Nodes", "Properties", "Formats") and from nothing in the bridge.

`description_problems(doc, device_id, root=…)` lists every rule a document breaks (empty:
valid); `value_problem(prop, payload)` says why a payload is not a valid value of a
property object. The rules, as the convention states them:

* IDs (device, node, property, child): only `a`-`z`, `0`-`9`, `-`.
* Device: `homie` string `5.x` (required), `version` integer (required), `name` string,
  `type` string, `nodes` object of nodes by ID, `children` array of IDs, `root` ID
  (required for a child, omitted on the root), `parent` ID, `extensions` array of strings.
* Node: `name`, `type` strings, `properties` object of properties by ID.
* Property: `datatype` one of integer, float, boolean, string, enum, color, datetime,
  duration, json (required); `format` string (required for enum and color); `settable`,
  `retained` booleans; `unit` string; `name` string.
* Formats: integer/float `[min]:[max][:step]` (step > 0); enum a comma list of non-empty,
  distinct values; color a comma list of rgb/hsv/xyz; boolean exactly two entries; json a
  JSON schema as a string.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

ID = re.compile(r"[a-z0-9-]+")
INTEGER = re.compile(r"-?[0-9]+")
FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE]-?[0-9]+)?")
DATATYPES = {
    "integer",
    "float",
    "boolean",
    "string",
    "enum",
    "color",
    "datetime",
    "duration",
    "json",
}
DEVICE_FIELDS = {
    "homie",
    "version",
    "nodes",
    "name",
    "type",
    "children",
    "root",
    "parent",
    "extensions",
}
STATES = {"init", "ready", "disconnected", "sleeping", "lost"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(text: str, datatype: str) -> float | None:
    pattern = INTEGER if datatype == "integer" else FLOAT
    return float(text) if pattern.fullmatch(text) else None


def format_problem(datatype: str, fmt: str) -> str | None:
    """Why `fmt` is not a valid `format` for `datatype`, or None."""
    if datatype in ("integer", "float"):
        parts = fmt.split(":")
        if len(parts) not in (2, 3):
            return f"numeric format {fmt!r} is not [min]:[max][:step]"
        lo, hi = (_number(p, datatype) if p else None for p in parts[:2])
        if (parts[0] and lo is None) or (parts[1] and hi is None):
            return f"numeric format {fmt!r} has a bound that is not a {datatype}"
        if lo is not None and hi is not None and lo > hi:
            return f"numeric format {fmt!r} has min > max"
        if len(parts) == 3:
            step = _number(parts[2], datatype)
            if step is None or step <= 0:
                return f"numeric format {fmt!r} has a step that is not > 0"
        return None
    if datatype == "enum":
        values = fmt.split(",")
        if any(v == "" for v in values) or len(set(values)) != len(values):
            return f"enum format {fmt!r} has empty or duplicate values"
        return None
    if datatype == "color":
        values = fmt.split(",")
        if not values or any(v not in ("rgb", "hsv", "xyz") for v in values):
            return f"color format {fmt!r} is not a list of rgb, hsv, xyz"
        return None
    if datatype == "boolean":
        values = fmt.split(",")
        if len(values) != 2 or "" in values:
            return f"boolean format {fmt!r} does not have exactly two entries"
        return None
    if datatype == "json":
        try:
            schema = json.loads(fmt)
        except ValueError:
            return f"json format is not a JSON schema: {fmt[:40]!r}"
        if not isinstance(schema, dict | bool):
            return "json format is not a JSON schema object"
        return None
    return None


def property_problems(where: str, prop: Any) -> list[str]:
    """Problems of one property object."""
    if not isinstance(prop, dict):
        return [f"{where}: property is not an object"]
    out: list[str] = []
    datatype = prop.get("datatype")
    if datatype not in DATATYPES:
        out.append(f"{where}: datatype {datatype!r} is not one of the convention's")
    for key in ("name", "format", "unit"):
        if key in prop and not isinstance(prop[key], str):
            out.append(f"{where}: {key} is not a string")
    for key in ("settable", "retained"):
        if key in prop and not isinstance(prop[key], bool):
            out.append(f"{where}: {key} is not a boolean")
    if datatype in ("enum", "color") and "format" not in prop:
        out.append(f"{where}: {datatype} requires a format")
    if isinstance(prop.get("format"), str) and datatype in DATATYPES:
        problem = format_problem(datatype, prop["format"])
        if problem:
            out.append(f"{where}: {problem}")
    return out


def description_problems(doc: Any, device_id: str, *, root: bool) -> list[str]:
    """Every rule of the convention `doc` breaks as the `$description` of `device_id`
    (`root`: the device is the root of its tree)."""
    if not isinstance(doc, dict):
        return ["description is not a JSON object"]
    out: list[str] = []
    if not ID.fullmatch(device_id):
        out.append(f"device ID {device_id!r} is not a valid ID")
    homie = doc.get("homie")
    if not isinstance(homie, str) or not re.fullmatch(r"5\.[0-9]+", homie):
        out.append(f"homie {homie!r} is not '5.x'")
    if not _is_int(doc.get("version")):
        out.append(f"version {doc.get('version')!r} is not an integer")
    for key in ("name", "type"):
        if key in doc and not isinstance(doc[key], str):
            out.append(f"{key} is not a string")
    for key in ("children", "extensions"):
        if key in doc and (
            not isinstance(doc[key], list) or not all(isinstance(c, str) for c in doc[key])
        ):
            out.append(f"{key} is not an array of strings")
    for child in doc.get("children", []) if isinstance(doc.get("children"), list) else []:
        if isinstance(child, str) and not ID.fullmatch(child):
            out.append(f"child ID {child!r} is not a valid ID")
    if root and "root" in doc:
        out.append("the root device must omit 'root'")
    if not root and not (isinstance(doc.get("root"), str) and ID.fullmatch(doc["root"])):
        out.append("a child device requires 'root' (an ID)")
    if "parent" in doc and not (isinstance(doc["parent"], str) and ID.fullmatch(doc["parent"])):
        out.append("parent is not an ID")
    nodes = doc.get("nodes", {})
    if not isinstance(nodes, dict):
        return [*out, "nodes is not an object"]
    for node_id, node in nodes.items():
        if not ID.fullmatch(node_id):
            out.append(f"node ID {node_id!r} is not a valid ID")
        if not isinstance(node, dict):
            out.append(f"node {node_id}: not an object")
            continue
        for key in ("name", "type"):
            if key in node and not isinstance(node[key], str):
                out.append(f"node {node_id}: {key} is not a string")
        props = node.get("properties", {})
        if not isinstance(props, dict):
            out.append(f"node {node_id}: properties is not an object")
            continue
        for prop_id, prop in props.items():
            if not ID.fullmatch(prop_id):
                out.append(f"property ID {node_id}/{prop_id!r} is not a valid ID")
            out += property_problems(f"{node_id}/{prop_id}", prop)
    return out


def value_problem(prop: dict[str, Any], payload: bytes) -> str | None:
    """Why `payload` is not a valid value of property object `prop`, or None
    ("Payloads"; numeric ranges from `format`)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    if text.startswith("\ufeff"):
        return "starts with a BOM"
    datatype = prop["datatype"]
    if datatype == "string":
        return None
    if text == "":
        return "empty payload"
    if datatype == "boolean":
        return None if text in ("true", "false") else f"{text!r} is not true/false"
    if datatype in ("integer", "float"):
        number = _number(text, datatype)
        if number is None or not math.isfinite(number):
            return f"{text!r} is not a {datatype}"
        fmt = prop.get("format")
        if fmt:
            lo, hi = (float(p) if p else None for p in fmt.split(":")[:2])
            if (lo is not None and number < lo) or (hi is not None and number > hi):
                return f"{text} is outside {fmt}"
        return None
    if datatype == "enum":
        return None if text in prop["format"].split(",") else f"{text!r} is not in the enum"
    if datatype == "json":
        try:
            doc = json.loads(text)
        except ValueError:
            return "not JSON"
        return None if isinstance(doc, dict | list) else "JSON but not an array or object"
    return None


__all__ = ["STATES", "description_problems", "format_problem", "property_problems", "value_problem"]
