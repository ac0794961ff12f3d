"""Which ports the request API may open (`docs/requests.md` §5): `[bridge] allowed_ports`.

A request names a port; unchecked, `device/add` could make the bridge open, and write
HELLO packets into, any file it can reach (`/etc/passwd`, a disk), or connect to any host
(`tcp://`, `socket://`, `rfc2217://`). A port is allowed when one of the configured
globs (`fnmatch`, case-sensitive) matches it as written, under these rules:

- a port with whitespace at either end or a control character matches nothing;
- a serial device path must be absolute and have no `.` or `..` segment, so
  `/dev/ttyUSB*` cannot reach `/dev/ttyUSB0/../sda` (a symlink is matched by the path
  given, as `/dev/serial/by-id/…` links are meant to be);
- a network port (`tcp://`, `socket://`, `rfc2217://`, `listen://`) is matched by its
  parts, not its text: the scheme exactly, the port number by the glob's port (any when
  the glob has none), and the host by the glob's host only when the host is an IP
  address (`socket://10.0.0.*` allows `socket://10.0.0.7:5000`); a host name must be
  the glob's host exactly, unless that is `*`. So `10.0.0.*` does not match
  `10.0.0.7.example.com`, and `socket://10.0.0.5:1@evil.example:80` (user info), a path,
  a query or a fragment match nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from conduyt_bridge.app.requests.errors import RequestError

__all__ = ["check_port", "port_allowed"]

Endpoint = tuple[str, str, str]
"""A network port's (scheme, host, port number) as text."""


def check_port(port: str, allowed: Sequence[str]) -> None:
    """Raise RequestError unless `port` is allowed by one of the `allowed` globs (see the
    module docstring); the message names the globs."""
    if port_allowed(port, allowed):
        return
    listed = ", ".join(repr(g) for g in allowed) or "none"
    raise RequestError(f"port {port!r} is not allowed: [bridge] allowed_ports permits {listed}")


def port_allowed(port: str, allowed: Sequence[str]) -> bool:
    """True when one of the `allowed` globs matches `port` (see the module docstring)."""
    if port != port.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in port):
        return False
    scheme, sep, _ = port.partition("://")
    if not sep:
        if not port.startswith("/") or {".", ".."} & set(port.split("/")):
            return False
        return any(fnmatchcase(port, glob) for glob in allowed if "://" not in glob)
    if scheme == "sim":
        return any(fnmatchcase(port, glob) for glob in allowed if glob.startswith("sim://"))
    target = _endpoint(port)
    return target is not None and any(_endpoint_matches(target, glob) for glob in allowed)


def _endpoint(port: str) -> Endpoint | None:
    try:
        parts = urlsplit(port)
        number = parts.port
    except ValueError:
        return None
    extra = parts.username is not None or parts.password is not None
    extra = extra or parts.path not in ("", "/") or bool(parts.query or parts.fragment)
    if extra or number is None or "%" in port:
        return None
    return parts.scheme, parts.hostname or "", str(number)


def _endpoint_matches(target: Endpoint, glob: str) -> bool:
    scheme, host, number = target
    glob_scheme, sep, rest = glob.partition("://")
    if not sep or glob_scheme.lower() != scheme:
        return False
    glob_host, glob_number = rest, "*"
    head, colon, tail = rest.rpartition(":")
    if colon and not rest.endswith("]") and (not head.startswith("[") or head.endswith("]")):
        glob_host, glob_number = head, tail
    glob_host = glob_host.strip("[]").lower()
    if not fnmatchcase(number, glob_number):
        return False
    if glob_host == "*":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host == glob_host
    return fnmatchcase(host, glob_host)
