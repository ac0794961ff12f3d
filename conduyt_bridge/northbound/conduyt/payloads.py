"""MQTT payload codecs (pure): state payloads out, command values in, error reports.

Formats per `docs/topics.md` §5: `plain` (numbers as JSON numbers, float32 in their shortest
round-tripping text, booleans `true`/`false`, strings as UTF-8, bytes as base64) or
`json` (`{"value": …, "unit": …, "ts": <RFC 3339 UTC>}`). Commands accept the same,
plus `on`/`off`, `ON`/`OFF`, `1`/`0` for booleans and a JSON object `{"value": …}`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytDisconnectedError,
    ConduytError,
    ConduytForbiddenError,
    ConduytInternalError,
    ConduytNAKError,
    ConduytPayloadError,
    ConduytTimeoutError,
    ErrorName,
)
from conduyt_bridge.northbound.json_limits import (
    refuse_deep_json,
)
from conduyt_bridge.protocol.constants import DatastreamType
from conduyt_bridge.protocol.hello import DatastreamDescriptor
from conduyt_bridge.protocol.values import DatastreamValue

PayloadFormat = Literal["plain", "json"]

_TRUE = {"true", "on", "1", "yes"}
_FALSE = {"false", "off", "0", "no"}


def utc_timestamp(now: datetime | None = None) -> str:
    """RFC 3339 UTC timestamp with milliseconds, e.g. `2026-11-22T04:17:23.123Z`."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class UtcClock:
    """RFC 3339 UTC timestamps for JSON payloads, the date-and-seconds text built once per
    second (`datetime.isoformat` costs about 20 µs per call; a board pushing thousands
    of events a second needs only the milliseconds changed). One per publisher; not
    thread-safe (it lives on the event loop)."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self, epoch_s: float | None = None) -> str:
        """`epoch_s` (default: now), s since the epoch, as `2026-11-22T04:17:23.123Z`
        (the same text as `utc_timestamp`)."""
        t = time.time() if epoch_s is None else epoch_s
        ms_total = int(t * 1000)
        second, ms = divmod(ms_total, 1000)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{ms:03d}Z"


def json_value(value: DatastreamValue) -> Any:
    """A datastream value as a JSON-ready object (bytes → base64 text; NaN/inf → None)."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_state(
    value: DatastreamValue, fmt: PayloadFormat = "plain", unit: str = "", ts: str | None = None
) -> bytes:
    """The state payload of a datastream value (`docs/topics.md` §5)."""
    if fmt == "json":
        doc = {"value": json_value(value), "unit": unit, "ts": ts or utc_timestamp()}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    if type(value) is float:  # the common case first (FLOAT32 telemetry)
        # repr is JSON's number text for finite floats, and cheaper than json.dumps.
        return repr(value).encode() if math.isfinite(value) else b"null"
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return base64.b64encode(value)
    if isinstance(value, float):
        # repr is JSON's number text for finite floats, and cheaper than json.dumps.
        return repr(value).encode() if math.isfinite(value) else b"null"
    return str(value).encode()


@dataclass(frozen=True, slots=True)
class CommandValue:
    """A parsed command payload: the value and the caller's optional `transaction` id."""

    value: Any
    transaction: Any = None
    is_object: bool = False


def parse_command_payload(payload: bytes) -> CommandValue:
    """Decode a command payload: JSON when it parses, else the raw text.

    A JSON object yields its `value` member (if any) and `transaction`; `is_object` tells
    that the payload was an object (module commands take named arguments from it).
    Raises ConduytPayloadError for payloads that are not UTF-8 or are empty.
    """
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConduytPayloadError("payload is not UTF-8 text", ErrorName.NOT_UTF8) from None
    if not text:
        raise ConduytPayloadError("payload is empty", ErrorName.EMPTY_PAYLOAD)
    refuse_deep_json(text)
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError cannot come past the depth check; kept so that no payload can
        # ever make the parser raise anything but a refusal or a plain-text value.
        return CommandValue(text)
    if isinstance(doc, dict):
        return CommandValue(doc, doc.get("transaction"), is_object=True)
    return CommandValue(doc)


def datastream_command_value(payload: bytes, ds: DatastreamDescriptor) -> CommandValue:
    """Parse a `/set` payload for datastream `ds` into a value of its type's Python kind.

    Booleans: `true`/`false`, `on`/`off` (any case), `1`/`0`, JSON true/false/1/0.
    Numbers: JSON numbers (integers for integer types; range is checked when encoding).
    STRING: the text as sent (a JSON string is unquoted). BYTES: base64 text or a JSON list
    of 0..255. Any of these may come as `{"value": …, "transaction": …}`.
    Raises ConduytPayloadError with a message naming the datastream and what it takes.
    """
    raw = parse_command_payload(payload)
    value = raw.value
    transaction = raw.transaction
    if raw.is_object:
        if "value" not in value:
            raise ConduytPayloadError(
                f"JSON object for datastream '{ds.name}' needs a \"value\" member",
                ErrorName.NO_VALUE
            )
        value = value["value"]
    ds_type = ds.known_type
    label = f"datastream '{ds.name}' ({ds_type.name if ds_type else ds.type})"
    text = payload.decode("utf-8").strip()
    if ds_type is DatastreamType.BOOL:
        if isinstance(value, bool):
            return CommandValue(value, transaction)
        if isinstance(value, int | float) and value in (0, 1):
            return CommandValue(bool(value), transaction)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return CommandValue(value.strip().lower() in _TRUE, transaction)
        raise ConduytPayloadError(f"{label} takes true/false, on/off or 1/0, not {_show(value)}")
    if ds_type is not None and ds_type.is_numeric:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConduytPayloadError(f"{label} takes a number, not {_show(value)}")
        return CommandValue(value, transaction)
    if ds_type is DatastreamType.STRING:
        if isinstance(value, str):
            return CommandValue(value, transaction)
        if raw.is_object:
            return CommandValue(json.dumps(value), transaction)
        return CommandValue(text, transaction)
    if ds_type is DatastreamType.BYTES:
        if isinstance(value, list) and all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value
        ):
            return CommandValue(bytes(value), transaction)
        if isinstance(value, str):
            try:
                return CommandValue(base64.b64decode(value, validate=True), transaction)
            except (binascii.Error, ValueError):
                pass
        raise ConduytPayloadError(f"{label} takes base64 text or a JSON list of bytes 0..255")
    raise ConduytPayloadError(f"{label}: this bridge cannot write type code {int(ds.type)}")


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


ERROR_KINDS: tuple[tuple[type[ConduytError], str], ...] = (
    (ConduytCapabilityError, "capability"),
    (ConduytPayloadError, "payload"),
    (ConduytForbiddenError, "forbidden"),
    (ConduytNAKError, "nak"),
    (ConduytTimeoutError, "timeout"),
    (ConduytDisconnectedError, "disconnected"),
    # A bug in the bridge: `payload` with the name `INTERNAL`, as reports always said.
    (ConduytInternalError, "payload"),
)
"""The report's `error` field for each error class (`docs/topics.md` §6)."""


def error_kind(error: ConduytError) -> str:
    """The `error` field of the report of `error`: `capability`, `payload`, `forbidden`,
    `nak`, `timeout` or `disconnected`."""
    for cls, kind in ERROR_KINDS:
        if isinstance(error, cls):
            return kind
    return "payload"


def error_report(topic: str, error: ConduytError, transaction: Any = None) -> dict[str, Any]:
    """The error report of `docs/topics.md` §6 for a failed command on `topic`."""
    doc: dict[str, Any] = {
        "topic": topic,
        "error": error_kind(error),
        "code": error.code,
        "name": error.name,
        "message": str(error),
    }
    if transaction is not None:
        doc["transaction"] = transaction
    return doc


def dumps(doc: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
