"""`conduyt.modules.oled`'s path: `ConduytOLED` (`docs/library.md` §3)."""

from __future__ import annotations

from conduyt_bridge.device.module_wrappers import ConduytOLED

__all__ = ["ConduytOLED"]
