"""`TcpTransport("tcp://host:port")`: a board that accepts TCP connections
(`docs/library.md` §2)."""

from __future__ import annotations

from conduyt_bridge.device.transports import TcpTransport

__all__ = ["TcpTransport"]
