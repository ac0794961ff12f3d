"""The library's transports, for `ConduytDevice(transport)` (`docs/library.md` §2).

`SerialTransport(port, baudrate=115200)` for a device path, `socket://` or `rfc2217://`;
`TcpTransport("tcp://host:port")` for a board that accepts TCP connections (raw packets);
`SimTransport("thermostat")` or `SimTransport("sim://thermostat")` for a simulated board;
`transport_for_url(url)` picks one from a URL.

Submodules mirror conduyt-py's import paths: `from conduyt_bridge.transports.serial
import SerialTransport` works as `from conduyt.transports.serial import ...` did;
`conduyt_bridge.transports.tcp` and `.sim` hold the other two. conduyt-py's `mock` and
`mqtt` transports have no counterpart (importing them says what to use instead).
"""

from __future__ import annotations

from conduyt_bridge.device.transports import (
    SerialTransport,
    SimTransport,
    TcpTransport,
    Transport,
    transport_for_url,
)

__all__ = ["SerialTransport", "SimTransport", "TcpTransport", "Transport", "transport_for_url"]
