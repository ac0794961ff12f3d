"""`conduyt.modules.stepper`'s path: `ConduytStepper` (`docs/library.md` §3)."""

from __future__ import annotations

from conduyt_bridge.device.module_wrappers import ConduytStepper

__all__ = ["ConduytStepper"]
