"""`conduyt.modules.encoder`'s path: `ConduytEncoder` (`docs/library.md` §3)."""

from __future__ import annotations

from conduyt_bridge.device.module_wrappers import ConduytEncoder

__all__ = ["ConduytEncoder"]
