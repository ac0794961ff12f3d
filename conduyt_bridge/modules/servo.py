"""`conduyt.modules.servo`'s path: `ConduytServo` (`docs/library.md` §3)."""

from __future__ import annotations

from conduyt_bridge.device.module_wrappers import ConduytServo

__all__ = ["ConduytServo"]
