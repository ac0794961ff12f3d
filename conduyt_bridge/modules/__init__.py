"""The library's module wrappers, named as in conduyt-py (`docs/library.md` §3).

`ConduytServo(device, module_id=0)`; without `module_id` the module is found by its name
in the board's HELLO_RESP. Arguments are checked against the module catalog and the
board's pins before anything is sent.

Submodules mirror conduyt-py's import paths (`from conduyt_bridge.modules.servo import
ConduytServo`, as `from conduyt.modules.servo import ConduytServo`).
"""

from __future__ import annotations

from conduyt_bridge.device.module_wrappers import (
    ConduytDHT,
    ConduytEncoder,
    ConduytModule,
    ConduytNeoPixel,
    ConduytOLED,
    ConduytPID,
    ConduytServo,
    ConduytStepper,
    DHTReading,
)

__all__ = [
    "ConduytDHT",
    "ConduytEncoder",
    "ConduytModule",
    "ConduytNeoPixel",
    "ConduytOLED",
    "ConduytPID",
    "ConduytServo",
    "ConduytStepper",
    "DHTReading",
]
