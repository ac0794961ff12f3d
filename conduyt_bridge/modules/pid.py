"""`conduyt.modules.pid`'s path: `ConduytPID` (`docs/library.md` §3)."""

from __future__ import annotations

from conduyt_bridge.device.module_wrappers import ConduytPID

__all__ = ["ConduytPID"]
