"""Bounds on JSON payloads from the broker, shared by every northbound adapter
(`docs/hostile-input.md`): how deep a payload may nest before it is refused, checked
before `json.loads` sees it."""

from __future__ import annotations

import re

from conduyt_bridge.errors import ConduytPayloadError, ErrorName

MAX_JSON_DEPTH = 32
"""Deepest nesting of JSON arrays and objects a command payload may have. No command needs
more than a few levels (`{"value": [1, 2]}` is two); Python's JSON parser recurses once
per level, so a `"[" * 100000` payload would otherwise end in a RecursionError."""

_JSON_TOKENS = re.compile(r'[\[\]{}"\\]')


def json_nesting_exceeds(text: str, limit: int) -> bool:
    """True when `text` nests `[`/`{` more than `limit` levels deep (brackets inside JSON
    strings do not count).

    Linear in the length of `text`; a text with at most `limit` brackets in all (every
    ordinary command) is answered by two `str.count` calls without any scan.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = False
    escaped_until = -1
    for match in _JSON_TOKENS.finditer(text):
        at = match.start()
        if at < escaped_until:
            continue  # the character after a backslash
        char = match.group()
        if in_string:
            if char == "\\":
                escaped_until = at + 2
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth = max(0, depth - 1)
    return False


def refuse_deep_json(text: str) -> None:
    """Raise ConduytPayloadError `NESTED_TOO_DEEP` when `text` nests JSON arrays/objects
    more than `MAX_JSON_DEPTH` levels deep; call before `json.loads`."""
    if json_nesting_exceeds(text, MAX_JSON_DEPTH):
        raise ConduytPayloadError(
            f"payload nests JSON arrays/objects more than {MAX_JSON_DEPTH} levels deep",
            ErrorName.NESTED_TOO_DEEP,
        )


__all__ = ["MAX_JSON_DEPTH", "json_nesting_exceeds", "refuse_deep_json"]
