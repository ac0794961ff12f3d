"""Homie payloads (`docs/homie.md` §4; the Homie convention, "Payloads"): property values
out, `/set` payloads in.

Out: integers as decimal text, floats in their shortest round-tripping text without a `+`
in the exponent (`1e20`, never `1e+20`: the convention allows only digits, `-`, `.`,
`e`/`E`), booleans `true`/`false`, strings as UTF-8 with the empty string as one 0x00 byte,
JSON as compact JSON. Non-finite floats have no Homie form: a float property with one is
not published, and inside a JSON value they become `null` (`NaN` is not JSON, RFC 8259 §6).

In: exactly the convention's forms (`TRUE`, `1`, ` 21.5` and `NaN` are refused), checked
here for form only; ranges, writability and capabilities are checked by the board core like
every other command (`conduyt_bridge.core.board.Board.write_datastream`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

from conduyt_bridge.errors import ConduytPayloadError, ErrorName
from conduyt_bridge.northbound.json_limits import refuse_deep_json

EMPTY_STRING = b"\x00"
"""The Homie payload of an empty string (an empty MQTT payload deletes a retained topic)."""

_INTEGER = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE]-?[0-9]+)?")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""The range of a Homie integer (64-bit signed)."""


def number_text(value: float) -> str:
    """A finite number in the convention's float/integer text: `21.5`, `-3`, `1e20`,
    `3.4028234663852886e38` (whole floats below 1e15 without `.0`)."""
    if isinstance(value, int):
        return str(int(value))
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value).replace("e+", "e")


def float_text(value: float) -> str:
    """A float property value in its shortest round-tripping text without `e+`: `21.5`,
    `21.0`, `1e20`, `-0.5`. Raises ValueError for NaN and ±inf (no Homie form)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError("NaN and infinity have no Homie float form")
    return repr(value).replace("e+", "e")


def format_value(datatype: str, value: Any) -> bytes | None:
    """The payload of `value` for a property of Homie `datatype`; None when the value has
    no valid form for it (a NaN float, a value of the wrong kind).

    `boolean` → `true`/`false` (any truthy value: a pin's 0/1); `integer` → decimal text;
    `float` → `float_text`; `string` → UTF-8 (bytes as base64, "" as `EMPTY_STRING`);
    `json` → compact JSON, non-finite floats as `null` (`json_safe`).
    """
    if datatype == "boolean":
        return b"true" if value else b"false"
    if datatype == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(value, float) and not value.is_integer():
            return None
        return str(int(value)).encode()
    if datatype == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            return float_text(value).encode()
        except ValueError:
            return None
    if datatype == "string":
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        text = str(value)
        return text.encode("utf-8") if text else EMPTY_STRING
    if datatype == "json":
        try:
            doc = json.dumps(
                json_safe(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False
            )
        except (TypeError, ValueError):
            return None
        return doc.encode()
    return None


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float (NaN, ±inf) replaced by None, in nested
    objects and arrays too: JSON has no form for them (RFC 8259 §6)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def decode_text(payload: bytes) -> str:
    """The `/set` payload as text. Raises ConduytPayloadError `NOT_UTF8`."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ConduytPayloadError(
            "payload is not UTF-8 text (Homie payloads are UTF-8 strings)", ErrorName.NOT_UTF8
        ) from None


def parse_value(datatype: str, payload: bytes, what: str) -> Any:
    """The value of a `/set` payload for a property of Homie `datatype`; `what` names the
    property in messages (`property 'setpoint' (float)`).

    `boolean` → bool (`true`/`false` only); `integer` → int (`-?[0-9]+`, 64-bit); `float`
    → float (digits, `-`, `.`, `e`; no NaN/inf); `string` → str (0x00 alone → ""); `json`
    → a JSON array or object (at most `MAX_JSON_DEPTH` levels). Raises
    ConduytPayloadError: `NOT_UTF8`, `EMPTY_PAYLOAD`, `NESTED_TOO_DEEP`, `BAD_VALUE`.
    """
    text = decode_text(payload)
    if datatype == "string":
        return "" if text == "\x00" else text
    if not text:
        raise ConduytPayloadError(
            f"{what} takes a value; the payload is empty", ErrorName.EMPTY_PAYLOAD
        )
    if datatype == "boolean":
        if text in ("true", "false"):
            return text == "true"
        raise ConduytPayloadError(
            f"{what} takes true or false (lower case), not {_show(text)}", ErrorName.BAD_VALUE
        )
    if datatype == "integer":
        if _INTEGER.fullmatch(text) and INT64_MIN <= int(text) <= INT64_MAX:
            return int(text)
        raise ConduytPayloadError(
            f"{what} takes a whole number such as 42 or -7, not {_show(text)}",
            ErrorName.BAD_VALUE,
        )
    if datatype == "float":
        if _FLOAT.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return number
        raise ConduytPayloadError(
            f"{what} takes a number such as 21.5 or -1e3, not {_show(text)}", ErrorName.BAD_VALUE
        )
    if datatype == "json":
        return _parse_json(text, what)
    raise ConduytPayloadError(f"{what} cannot be set (datatype {datatype})", ErrorName.BAD_VALUE)


def parse_base64(text: str, what: str) -> bytes:
    """Bytes from base64 `text`. Raises ConduytPayloadError `BAD_VALUE`."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConduytPayloadError(
            f"{what} takes base64 text, not {_show(text)}", ErrorName.BAD_VALUE
        ) from None


def _parse_json(text: str, what: str) -> Any:
    refuse_deep_json(text)
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise ConduytPayloadError(
            f"{what} takes a JSON object or array, and the payload is not JSON",
            ErrorName.BAD_VALUE,
        ) from None
    if not isinstance(doc, dict | list):
        raise ConduytPayloadError(
            f"{what} takes a JSON object or array, not {_show(text)}", ErrorName.BAD_VALUE
        )
    return doc


def _show(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37]) + "..."


__all__ = [
    "EMPTY_STRING",
    "INT64_MAX",
    "INT64_MIN",
    "decode_text",
    "float_text",
    "format_value",
    "json_safe",
    "number_text",
    "parse_base64",
    "parse_value",
]
