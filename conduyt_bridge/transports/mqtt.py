"""conduyt-py's `conduyt.transports.mqtt` (`MQTTTransport`) has no counterpart in conduyt-bridge
(`docs/library.md` §7): importing this module raises ImportError saying what to use
instead.

Raises ImportError on import.
"""

from __future__ import annotations

raise ImportError(
    "conduyt-bridge has no MQTTTransport (conduyt-py's conduyt.transports.mqtt): use "
    "the bridge daemon (it puts boards on MQTT), or a serial/TCP transport for the board itself"
)
