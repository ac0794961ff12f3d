"""Device `port` strings and `host:port` endpoints of the configuration, parsed.

A device `port` is a serial device path or a `scheme://` URL, one per transport
(`docs/architecture.md` §1); `_PORT_SCHEMES` is the one table of known schemes, and any
other scheme is a config error with a suggestion. `[http] listen` is a `host:port`
endpoint (`split_host_port`). Every function raises `ValueError` with the message the
user sees after the key (`docs/architecture.md` §8).
"""

from __future__ import annotations

import difflib
import re
import typing
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "ParsedPort",
    "PortKind",
    "parse_port",
    "port_identity",
    "slugify",
    "split_host_port",
]

PortKind = Literal["serial", "socket", "rfc2217", "tcp", "listen", "sim"]

_SLUG_BAD_RE = re.compile(r"[^A-Za-z0-9_-]+")
_PORT_SCHEMES: dict[str, PortKind] = {
    "socket": "socket",
    "rfc2217": "rfc2217",
    "tcp": "tcp",
    "listen": "listen",
    "sim": "sim",
}
"""URL schemes a device `port` may use; a port without `://` is a serial device path.
A new transport is one entry here (plus its `PortKind` and transport class); any other
scheme is a config error."""

_SCHEME_HINTS: dict[str, str] = {
    "udp": "Conduyt runs over TCP: 'tcp://host:port' for a board that accepts "
    "connections, 'listen://0.0.0.0:5000' for boards that connect to the bridge",
}
"""Advice for schemes people try that mean something else here."""


def slugify(text: str) -> str:
    """`text` with every run of characters outside `[A-Za-z0-9_-]` made one `-`, and no
    `-` at either end: a device id derived from a port."""
    return _SLUG_BAD_RE.sub("-", text).strip("-")


def split_host_port(text: str) -> tuple[str, int]:
    """`(host, port)` of `host:port` (IPv6 in brackets, returned without them).

    Raises:
        ValueError: no port, an IPv6 address without brackets, or a port outside
            1..65535.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"must be 'host:port', e.g. '0.0.0.0:9100' (got {text!r})")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address must be in brackets, e.g. '[::]:9100' (got {text!r})")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number 1..65535 (got {text!r})")
    return host, int(port_text)


class ParsedPort(typing.NamedTuple):
    """A device port, classified by `parse_port`."""

    kind: PortKind
    host: str  # network kinds only
    number: int  # network kinds only, else 0
    profile: str  # sim only


def _unknown_scheme_reason(scheme: str) -> str:
    known = ", ".join(f"'{name}://'" for name in sorted(_PORT_SCHEMES))
    reason = (
        f"unknown port scheme '{scheme}://': use one of {known} "
        "or a serial device path (e.g. '/dev/ttyUSB0')"
    )
    hint = _SCHEME_HINTS.get(scheme)
    if hint is None:
        close = difflib.get_close_matches(scheme, list(_PORT_SCHEMES), n=1)
        hint = f"did you mean '{close[0]}://'?" if close else None
    return f"{reason}; {hint}" if hint else reason


def _check_sim_profile(profile: str) -> None:
    """Raises ValueError for a profile the simulator does not have, with the closest one."""
    from conduyt_bridge.simulator.profiles import PROFILES

    if profile in PROFILES:
        return
    known = ", ".join(sorted(PROFILES))
    close = difflib.get_close_matches(profile, list(PROFILES), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ValueError(f"unknown simulator profile '{profile}'{hint}; profiles: {known}")


def parse_port(port: str) -> ParsedPort:
    """Classify a device port string.

    Raises:
        ValueError: the port is empty, its scheme is unknown, a network/sim URL is
            incomplete, or the simulator has no such profile.
    """
    if not port:
        raise ValueError("must not be empty")
    scheme, sep, rest = port.partition("://")
    scheme = scheme.lower() if sep else ""
    if not sep:
        return ParsedPort("serial", "", 0, "")
    kind = _PORT_SCHEMES.get(scheme)
    if kind is None:
        raise ValueError(_unknown_scheme_reason(scheme))
    if kind == "sim":
        profile = rest.strip("/")
        if not profile:
            raise ValueError(f"sim:// needs a profile name, e.g. 'sim://thermostat' (got {port!r})")
        _check_sim_profile(profile)
        return ParsedPort("sim", "", 0, profile)
    # The network kinds (socket, rfc2217, tcp, listen) need host:port.
    example = "listen://0.0.0.0:5000" if kind == "listen" else f"{scheme}://192.0.2.7:4000"
    try:
        parts = urlsplit(port)
        number = parts.port
    except ValueError:
        number = None
    if number is None or not 1 <= number <= 65535:
        raise ValueError(
            f"{scheme}:// needs a port number 1..65535, e.g. '{example}' (got {port!r})"
        )
    host = parts.hostname or ""
    # A listener may bind all interfaces with an empty host; a client needs a peer.
    if not host and kind != "listen":
        raise ValueError(f"{scheme}:// needs a host, e.g. '{example}' (got {port!r})")
    return ParsedPort(kind, host, number, "")


def port_identity(port: str) -> tuple[str, ...]:
    """A key under which two devices would fight over the same port."""
    parsed = parse_port(port)
    if parsed.kind in ("socket", "rfc2217", "tcp"):
        # socket://, rfc2217:// and tcp:// to one endpoint are still one TCP peer.
        return ("tcp", parsed.host.lower(), str(parsed.number))
    if parsed.kind == "listen":
        return ("listen", parsed.host.lower(), str(parsed.number))
    if parsed.kind == "sim":
        return ("sim", parsed.profile)
    return ("serial", port)
