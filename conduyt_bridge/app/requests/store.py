"""The config file as the request API edits it (`docs/requests.md` §4): one `[[devices]]`
entry added, removed or changed, every other byte of the file kept, written atomically.

The edits work on the file's text: the lines of one `[[devices]]` entry (its header, its
keys and sub-tables, and the comment lines right above its header) are located, and only
they are replaced, through tomlkit, which keeps the comments and layout inside the entry.
A plain tomlkit edit of the whole document would attach a comment written above the next
table to the entry before it (tomlkit keeps comments with the item they follow), so a key
added to one entry would land below the next entry's comment. Every edit is checked by
parsing the result again: the `devices` list must be exactly the expected one (an odd
file, such as a multi-line string that looks like a header, falls back to tomlkit's edit
of the whole document).

`ConfigFile.stage` writes the new text to a temporary file beside the config file (same
directory, same mode, fsync'd); `Staged.commit` renames it over the file, `discard`
removes it. The rename is atomic on POSIX file systems: a reader sees the old file or the
new one, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table

from conduyt_bridge.app.requests.errors import RequestError

__all__ = [
    "ConfigFile",
    "EntryEdit",
    "Staged",
    "add_entry",
    "edit_entry",
    "remove_entry",
    "replace_file",
]

EntryEdit = Callable[[Table], None]
"""Changes one `[[devices]]` table in place."""

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TRIVIA = re.compile(r"^\s*(#.*)?$")

replace_file: Callable[[Path, Path], None] = os.replace
"""The rename that commits a staged file (a module attribute, so a test can make it fail)."""


@dataclass(frozen=True, slots=True)
class _Span:
    """Line indexes of one entry: `lead` (its comment lines above the header), `start`
    (the header), `end` (one past its last key or sub-table line)."""

    lead: int
    start: int
    end: int


def _table_name(line: str) -> tuple[bool, str] | None:
    """`(is_array_header, dotted name)` of a table header line, None for any other line."""
    match = _HEADER.match(line)
    if match is None:
        return None
    name = re.sub(r"\s*\.\s*", ".", match.group(2)).strip("\"'")
    return match.group(1) == "[[", name


def _spans(lines: list[str]) -> list[_Span]:
    """The `[[devices]]` entries of a file, in order."""
    spans: list[_Span] = []
    start: int | None = None

    def close(end: int) -> None:
        assert start is not None
        while end > start + 1 and _TRIVIA.match(lines[end - 1]):
            end -= 1  # trailing blank and comment lines belong to what follows
        lead = start
        while lead > 0 and lines[lead - 1].strip().startswith("#"):
            lead -= 1
        spans.append(_Span(lead, start, end))

    for index, line in enumerate(lines):
        header = _table_name(line)
        if header is None:
            continue
        is_array, name = header
        if is_array and name == "devices":
            if start is not None:
                close(index)
            start = index
        elif start is not None and not name.startswith("devices."):
            close(index)
            start = None
    if start is not None:
        close(len(lines))
    return spans


def _devices(text: str) -> list[Any] | None:
    """The `devices` of `text` as plain data; None when a line edit broke the TOML."""
    try:
        return list(tomlkit.parse(text).unwrap().get("devices", []))
    except TOMLKitError:
        return None


def _join(lines: list[str]) -> str:
    return "".join(lines)


def _entry_lines(entry: dict[str, Any]) -> list[str]:
    text = tomlkit.dumps({"devices": [entry]})
    return text.splitlines(keepends=True)


def add_entry(text: str, entry: dict[str, Any]) -> str:
    """`text` with `entry` appended as a `[[devices]]` table: after the last entry, or at
    the end of the file when there is none."""
    expected = [*(_devices(text) or []), entry]
    lines = text.splitlines(keepends=True)
    spans = _spans(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    at = spans[-1].end if spans else len(lines)
    new = _join([*lines[:at], "\n", *_entry_lines(entry), *lines[at:]])
    if _devices(new) == expected:
        return new
    doc = tomlkit.parse(text)
    devices = doc.get("devices")
    if devices is None:
        doc["devices"] = tomlkit.aot()
        devices = doc["devices"]
    devices.append(tomlkit.item(entry) if isinstance(devices, AoT) else entry)
    return doc.as_string()


def remove_entry(text: str, index: int) -> str:
    """`text` without the `[[devices]]` entry at `index` (with its comment lines above)."""
    expected = _devices(text) or []
    del expected[index]
    lines = text.splitlines(keepends=True)
    spans = _spans(lines)
    if len(spans) == len(expected) + 1:
        span = spans[index]
        before, after = lines[: span.lead], lines[span.end :]
        if before and after and not before[-1].strip() and not after[0].strip():
            after = after[1:]  # one blank line between the neighbours, not two
        new = _join([*before, *after])
        if _devices(new) == expected:
            return new
    doc = tomlkit.parse(text)
    del doc["devices"][index]
    return doc.as_string()


def edit_entry(text: str, index: int, edit: EntryEdit) -> str:
    """`text` with the `[[devices]]` entry at `index` changed by `edit` (a tomlkit table
    holding only that entry's keys and sub-tables). Raises RequestError for devices
    written as an inline array."""
    doc = tomlkit.parse(text)
    devices = doc["devices"]
    table = devices[index]
    if not isinstance(table, Table):
        raise RequestError(
            "the config file lists its devices inline (devices = [...]): write them as "
            "[[devices]] tables to change one here"
        )
    edit(table)
    expected = _devices(doc.as_string())
    lines = text.splitlines(keepends=True)
    spans = _spans(lines)
    if expected is not None and len(spans) == len(expected):
        span = spans[index]
        alone = tomlkit.parse(_join(lines[span.start : span.end]))
        one = alone["devices"][0]
        assert isinstance(one, Table)
        edit(one)
        body = alone.as_string()
        body += "" if body.endswith("\n") else "\n"
        new = _join([*lines[: span.start], body, *lines[span.end :]])
        if _devices(new) == expected:
            return new
    return doc.as_string()


# ---- the file ----------------------------------------------------------------------------


@dataclass(slots=True)
class Staged:
    """New text written beside the config file, not yet in its place."""

    temp: Path
    target: Path

    def commit(self) -> None:
        """Rename the staged file over the config file, then fsync the directory (so
        the rename survives a power cut). Raises OSError; the staged file is removed
        then and the config file is as it was."""
        try:
            replace_file(self.temp, self.target)
        except OSError:
            self.discard()
            raise
        with contextlib.suppress(OSError):
            fd = os.open(self.target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def discard(self) -> None:
        """Remove the staged file (nothing changes)."""
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """The config file at `path` (a symlink is followed: its target is rewritten)."""

    path: Path

    @property
    def target(self) -> Path:
        """The file actually written."""
        return self.path.resolve()

    def read(self) -> str:
        """The file's text. Raises OSError, UnicodeDecodeError."""
        return self.target.read_bytes().decode("utf-8")

    def stage(self, text: str) -> Staged:
        """Write `text` to a new temporary file in the config file's directory with the
        file's mode (and owner, where permitted), fsync'd. Raises OSError."""
        target = self.target
        info = target.stat()
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()  # left by a crash of this process id
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        staged = Staged(temp, target)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(fd, info.st_mode & 0o7777)
                with contextlib.suppress(PermissionError):
                    os.fchown(fd, info.st_uid, info.st_gid)
                handle.write(text.encode("utf-8"))
                handle.flush()
                os.fsync(fd)
        except OSError:
            staged.discard()
            raise
        return staged
