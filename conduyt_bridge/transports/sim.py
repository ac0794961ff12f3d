"""`SimTransport("thermostat")`: a simulated board in-process (`docs/library.md` §2)."""

from __future__ import annotations

from conduyt_bridge.device.transports import SimTransport

__all__ = ["SimTransport"]
