"""`conduyt.modules.dht`'s path: `ConduytDHT`, `DHTReading` (`docs/library.md` §3)."""

from __future__ import annotations

from conduyt_bridge.device.module_wrappers import (
    ConduytDHT,
    DHTReading,
)

__all__ = ["ConduytDHT", "DHTReading"]
