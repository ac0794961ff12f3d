"""conduyt-py's `conduyt.transports.mock` (`MockTransport`) has no counterpart in conduyt-bridge
(`docs/library.md` §7): importing this module raises ImportError saying what to use
instead.

Raises ImportError on import.
"""

from __future__ import annotations

raise ImportError(
    "conduyt-bridge has no MockTransport (conduyt-py's conduyt.transports.mock): use "
    "a simulated board: SimTransport('thermostat') or the URL sim://thermostat"
)
