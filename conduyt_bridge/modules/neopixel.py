"""`conduyt.modules.neopixel`'s path: `ConduytNeoPixel` (`docs/library.md` §3)."""

from __future__ import annotations

from conduyt_bridge.device.module_wrappers import ConduytNeoPixel

__all__ = ["ConduytNeoPixel"]
