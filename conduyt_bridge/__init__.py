"""conduyt-bridge: Conduyt boards on MQTT, and a Python library to talk to them.

The library API (`docs/library.md`) is exported here lazily, so that importing a part of
the package (`conduyt_bridge.protocol`) does not load the device layer:

```python
from conduyt_bridge import ConduytDevice, ConduytDeviceSync, open_device
from conduyt_bridge.transports import SerialTransport, TcpTransport, SimTransport
from conduyt_bridge.modules import ConduytServo
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conduyt_bridge.version import __version__

if TYPE_CHECKING:
    from conduyt_bridge.device.conduyt_device import ConduytDevice, open_device
    from conduyt_bridge.device.conduyt_sync import ConduytDeviceSync
    from conduyt_bridge.device.datastream import Datastream
    from conduyt_bridge.device.event_stream import EventStream
    from conduyt_bridge.device.events import (
        DatastreamEvent,
        DeviceEvent,
        LogEvent,
        LogSource,
        ModuleEvent,
        PinEvent,
    )
    from conduyt_bridge.device.ota import ConduytOTA
    from conduyt_bridge.device.pin import Pin
    from conduyt_bridge.device.reasons import ConnectReason, DisconnectReason
    from conduyt_bridge.errors import (
        ConduytCapabilityError,
        ConduytDisconnectedError,
        ConduytError,
        ConduytForbiddenError,
        ConduytNAKError,
        ConduytPayloadError,
        ConduytRequestError,
        ConduytTimeoutError,
        ErrorName,
    )
    from conduyt_bridge.protocol.hello import HelloResp

_EXPORTS: dict[str, str] = {
    "ConduytDevice": "conduyt_bridge.device.conduyt_device",
    "open_device": "conduyt_bridge.device.conduyt_device",
    "ConduytDeviceSync": "conduyt_bridge.device.conduyt_sync",
    "ConduytOTA": "conduyt_bridge.device.ota",
    "Datastream": "conduyt_bridge.device.datastream",
    "EventStream": "conduyt_bridge.device.event_stream",
    "DatastreamEvent": "conduyt_bridge.device.events",
    "DeviceEvent": "conduyt_bridge.device.events",
    "LogEvent": "conduyt_bridge.device.events",
    "LogSource": "conduyt_bridge.device.events",
    "ModuleEvent": "conduyt_bridge.device.events",
    "PinEvent": "conduyt_bridge.device.events",
    "Pin": "conduyt_bridge.device.pin",
    "ConnectReason": "conduyt_bridge.device.reasons",
    "DisconnectReason": "conduyt_bridge.device.reasons",
    "ConduytCapabilityError": "conduyt_bridge.errors",
    "ConduytDisconnectedError": "conduyt_bridge.errors",
    "ConduytError": "conduyt_bridge.errors",
    "ConduytForbiddenError": "conduyt_bridge.errors",
    "ConduytNAKError": "conduyt_bridge.errors",
    "ConduytPayloadError": "conduyt_bridge.errors",
    "ConduytRequestError": "conduyt_bridge.errors",
    "ConduytTimeoutError": "conduyt_bridge.errors",
    "ErrorName": "conduyt_bridge.errors",
    "HelloResp": "conduyt_bridge.protocol.hello",
}
"""Public name → the module that defines it (imported on first access)."""

__all__ = [
    "ConduytCapabilityError",
    "ConduytDevice",
    "ConduytDeviceSync",
    "ConduytDisconnectedError",
    "ConduytError",
    "ConduytForbiddenError",
    "ConduytNAKError",
    "ConduytOTA",
    "ConduytPayloadError",
    "ConduytRequestError",
    "ConduytTimeoutError",
    "ConnectReason",
    "Datastream",
    "DatastreamEvent",
    "DeviceEvent",
    "DisconnectReason",
    "ErrorName",
    "EventStream",
    "HelloResp",
    "LogEvent",
    "LogSource",
    "ModuleEvent",
    "Pin",
    "PinEvent",
    "__version__",
    "open_device",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'conduyt_bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
