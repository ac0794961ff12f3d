"""Homie IDs and topics (`docs/homie.md` §2; the Homie convention, "Topic IDs").

A Homie topic level (device, node and property IDs, the domain) holds only `a`-`z`,
`0`-`9` and `-`. Board ids, datastream and module names and command names are free text,
so they are folded into that alphabet here; two names that fold to the same ID are told
apart with a numeric suffix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

CONVENTION = "5.0"
"""The `homie` member of every `$description`: the convention's major.minor."""

MAJOR = "5"
"""The second topic level: `{domain}/5/…`."""

ID_PATTERN = re.compile(r"[a-z0-9-]+")
"""A valid Homie ID (the whole string must match)."""

_NOT_ID = re.compile(r"[^a-z0-9]+")


def homie_id(text: str, fallback: str = "x") -> str:
    """`text` as a Homie ID: lower case, every run of other characters one `-`, no `-` at
    either end; `fallback` when nothing is left.

    `"Temperature_Sensor"` → `temperature-sensor`; `"°C"` → `c`; `"__"` → `fallback`.
    """
    folded = _NOT_ID.sub("-", text.lower()).strip("-")
    return folded or fallback


def is_homie_id(text: str) -> bool:
    """True if `text` is a valid Homie ID (`[a-z0-9-]+`, not starting with `$`)."""
    return ID_PATTERN.fullmatch(text) is not None


def unique_ids(names: Iterable[str], taken: Iterable[str] = (), fallback: str = "x") -> list[str]:
    """Homie IDs for `names`, in order, distinct from each other and from `taken`: an ID
    met again gets `-2`, `-3`… appended (`["a_b", "a-b"]` → `["a-b", "a-b-2"]`)."""
    used = set(taken)
    out: list[str] = []
    for name in names:
        base = homie_id(name, fallback)
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}-{n}"
        used.add(candidate)
        out.append(candidate)
    return out


@dataclass(frozen=True, slots=True)
class HomieTopics:
    """Topic builder for one Homie domain (`homie` unless configured): `{domain}/5/…`."""

    domain: str = "homie"

    @property
    def root(self) -> str:
        """`{domain}/5`."""
        return f"{self.domain}/{MAJOR}"

    def state(self, device: str) -> str:
        """`{domain}/5/{device}/$state`."""
        return f"{self.root}/{device}/$state"

    def description(self, device: str) -> str:
        """`{domain}/5/{device}/$description`."""
        return f"{self.root}/{device}/$description"

    def value(self, device: str, node: str, prop: str) -> str:
        """`{domain}/5/{device}/{node}/{property}`: the property's value."""
        return f"{self.root}/{device}/{node}/{prop}"

    def set_filter(self, device: str) -> str:
        """`{domain}/5/{device}/+/+/set`: every command topic of a device."""
        return f"{self.root}/{device}/+/+/set"

    def parse_set(self, topic: str) -> tuple[str, str, str] | None:
        """(device, node, property) of a `{domain}/5/{device}/{node}/{property}/set` topic,
        None for any other topic."""
        prefix = self.root + "/"
        if not topic.startswith(prefix) or not topic.endswith("/set"):
            return None
        parts = topic[len(prefix) : -len("/set")].split("/")
        if len(parts) != 3:
            return None
        return parts[0], parts[1], parts[2]


__all__ = [
    "CONVENTION",
    "ID_PATTERN",
    "MAJOR",
    "HomieTopics",
    "homie_id",
    "is_homie_id",
    "unique_ids",
]
