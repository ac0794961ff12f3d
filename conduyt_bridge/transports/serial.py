"""`conduyt.transports.serial`'s path: `SerialTransport(port, baudrate=115200)`
(`docs/library.md` §2)."""

from __future__ import annotations

from conduyt_bridge.device.transports import SerialTransport

__all__ = ["SerialTransport"]
