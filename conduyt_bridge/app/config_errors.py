"""Configuration errors: `ConfigError` and turning pydantic's errors into its lines.

A bad configuration stops the bridge with the file (or environment variable), the key,
the reason and, where there is one, a suggestion (`docs/architecture.md` §8). The models
(`conduyt_bridge.app.config_sections`, `conduyt_bridge.app.config_devices`) raise
`ConfigProblems` to point below themselves; `conduyt_bridge.app.config.load_settings`
converts what pydantic raises with `convert_validation_error` and
`convert_settings_error`. No line ever contains a password.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import SettingsError

__all__ = [
    "ConfigError",
    "ConfigProblems",
    "EnvVarFor",
    "Location",
    "convert_settings_error",
    "convert_validation_error",
]

Location = tuple[str | int, ...]
"""Where a value sits in the settings: field names, list indexes and dict keys."""

EnvVarFor = Callable[[Sequence[str | int]], str | None]
"""The environment variable that supplied the value at a location, if one did."""


class ConfigError(Exception):
    """A configuration that cannot be used.

    `str()` is one line per problem, `<origin>: <dotted.key>: <reason>`, where the
    origin is the config file or, for a value taken from the environment, `env <NAME>`.
    No line ever contains a password.

    Attributes:
        path: the config file as the caller named it.
        errors: `(dotted key, reason)` per problem; the key is `""` for a problem with
            the file as a whole (missing, unreadable, not TOML).
        origins: where each problem's value came from, parallel to `errors`.
    """

    def __init__(
        self,
        path: str | Path,
        errors: Sequence[tuple[str, str]],
        origins: Sequence[str] | None = None,
    ) -> None:
        self.path = str(path)
        self.errors: list[tuple[str, str]] = list(errors)
        self.origins: list[str] = (
            list(origins) if origins is not None else [self.path] * len(self.errors)
        )
        super().__init__(self._render())

    def _render(self) -> str:
        lines = []
        for (key, reason), origin in zip(self.errors, self.origins, strict=True):
            lines.append(f"{origin}: {key}: {reason}" if key else f"{origin}: {reason}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._render()


class ConfigProblems(ValueError):
    """Validation problems located *below* the model whose validator raises them.

    A model validator can only fail the model as a whole; pydantic keeps the raised
    exception in the error's `ctx`, so `convert_validation_error` reads `items` from it to
    point at the exact key (`devices[1].id`) and to report several problems at once.
    """

    def __init__(self, items: Sequence[tuple[Location, str]]) -> None:
        self.items = list(items)
        super().__init__("; ".join(reason for _, reason in self.items))


def _format_key(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            quoted = '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
            out += f".{quoted}" if out else quoted
    return out


def _tagged_member(annotation: Any, step: str | int) -> Any:
    """The member of the discriminated union `annotation` (`Annotated[A | B,
    Field(discriminator=...)]`) whose tag is `step`, or None. Pydantic puts the tag in an
    error's location (`entities[0].switch.pin`); the user's file has no such level."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return None
    base, *metadata = typing.get_args(annotation)
    key = next((m.discriminator for m in metadata if isinstance(m, FieldInfo)), None)
    if not isinstance(key, str):
        return None
    for member in typing.get_args(base):
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = member.model_fields.get(key)
            if field is not None and step in typing.get_args(field.annotation):
                return member
    return None


def _walk(root: Any, loc: Sequence[str | int]) -> tuple[Location, Any]:
    """`loc` as the user's file spells it (discriminator tags dropped) and the type found
    at its end (None when unknown)."""
    current, clean = root, []
    for step in loc:
        member = _tagged_member(current, step)
        if member is not None:
            current = member
            continue
        clean.append(step)
        current = _unwrap_model(current, step)
    return tuple(clean), current


def _unwrap_model(annotation: Any, step: str | int) -> Any:
    """The type found one step (field name, list index or dict key) below `annotation`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap_model(typing.get_args(annotation)[0], step)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                return _unwrap_model(arg, step)
        return None
    if origin is list:
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(step))
        return field.annotation if field is not None else None
    return None


def _unknown_key_reason(root: type[BaseModel], loc: Sequence[str | int]) -> str:
    """Reason for an unknown key, with the closest allowed key when there is one."""
    _, current = _walk(root, loc[:-1])
    while typing.get_origin(current) in (typing.Union, types.UnionType):
        current = next(a for a in typing.get_args(current) if a is not type(None))
    if isinstance(current, type) and issubclass(current, BaseModel) and loc:
        close = difflib.get_close_matches(str(loc[-1]), list(current.model_fields), n=1)
        if close:
            return f"unknown key (did you mean {close[0]!r}?)"
    return "unknown key"


def _reason(root: type[BaseModel], error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key_reason(root, error["loc"])
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a table"
    if kind == "value_error" and "error" in error.get("ctx", {}):
        # Our own messages, without pydantic's "Value error, " prefix.
        return str(error["ctx"]["error"])
    return str(error["msg"])


def convert_validation_error(
    exc: ValidationError, label: str, root: type[BaseModel], env_var_for: EnvVarFor
) -> tuple[list[tuple[str, str]], list[str]]:
    """`ConfigError`'s `errors` and `origins` for what validating `root` raised.

    `label` is the config file as the caller named it; a value that came from the
    environment is attributed to `env <NAME>` instead (`env_var_for`). Unknown keys get
    the closest key of their table as a suggestion.
    """
    errors: list[tuple[str, str]] = []
    origins: list[str] = []
    for error in exc.errors(include_url=False):
        loc: Location = tuple(error["loc"])
        problem = error.get("ctx", {}).get("error")
        items = (
            [(loc + sub, reason) for sub, reason in problem.items]
            if isinstance(problem, ConfigProblems)
            else [(loc, _reason(root, error))]
        )
        for tagged, reason in items:
            item_loc, _ = _walk(root, tagged)
            var = env_var_for(item_loc)
            errors.append((_format_key(item_loc), reason))
            origins.append(f"env {var}" if var else label)
    return errors, origins


def convert_settings_error(exc: SettingsError, label: str, env_var_for: EnvVarFor) -> ConfigError:
    """The `ConfigError` for a value from the environment that pydantic-settings could not
    parse (`env_var_for` names the variable)."""
    # pydantic-settings raises this (not a ValidationError) when a list or table value
    # from the environment is not valid JSON; only the field name is in the message.
    match = re.search(r'field "([^"]+)"', str(exc))
    field = match.group(1) if match else ""
    var = env_var_for((field,)) if field else None
    reason = "cannot parse the value from the environment (a list or table must be JSON)"
    return ConfigError(label, [(field, reason)], [f"env {var}" if var else "environment"])
