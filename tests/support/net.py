"""Network addresses for the tests: MQTT URLs, free ports, waiting for a port to accept.

* :class:`BrokerLike` - anything with a ``host`` and a ``port``; :func:`address` turns one
  (or an ``mqtt://`` URL) into ``(host, port)``.
* :func:`parse_mqtt_url`, :func:`free_port`, :func:`port_accepts`, :func:`wait_port`.

No pytest and no MQTT client here, so the bench scripts can use it too.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

__all__ = [
    "BrokerLike",
    "address",
    "free_port",
    "parse_mqtt_url",
    "port_accepts",
    "wait_port",
]


class BrokerLike(Protocol):
    """Anything with a ``host`` and a ``port`` (a :class:`support.broker.Broker`, for instance)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """Return ``(host, port)`` of an ``mqtt://`` / ``tcp://`` URL (port defaults to 1883).

    ``mqtts://`` / ``ssl://`` default to port 8883. A bare ``host[:port]`` is accepted too.
    """
    if "://" not in url:
        url = f"mqtt://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
        msg = f"unsupported MQTT URL scheme {parts.scheme!r} in {url!r}"
        raise ValueError(msg)
    default_port = 8883 if parts.scheme in ("mqtts", "ssl") else 1883
    host = parts.hostname or "localhost"
    return host, parts.port or default_port


def address(target: BrokerLike | str) -> tuple[str, int]:
    """``(host, port)`` of a broker object or of an MQTT URL (see :func:`parse_mqtt_url`)."""
    if isinstance(target, str):
        return parse_mqtt_url(target)
    return target.host, target.port


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on *host* that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """Return True when a TCP connection to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(
    host: str,
    port: int,
    timeout: float = 10.0,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Poll until ``host:port`` accepts a TCP connection; False after *timeout* seconds.

    *alive*, when given, is checked between attempts: once it returns False (the server
    process died) waiting stops early and False is returned.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_accepts(host, port):
            return True
        if alive is not None and not alive():
            return False
        time.sleep(0.02)
    return False
