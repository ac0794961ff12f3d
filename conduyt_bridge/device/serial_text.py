"""What the bridge makes of text a board prints between frames (`docs/serial-text.md`).

A sketch's own `Serial.println` lines share the line with the protocol. They are the
sketch's business, not evidence of anything: they go to `{base}/{dev}/log` and never make
the bridge assume a reboot. Only text that a boot ROM prints after a reset (ESP32,
ESP32-S2/S3/C3, ESP8266) counts as evidence of a reboot.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

_BOOT_BANNER = re.compile(
    r"rst:0x[0-9a-fA-F]+ \("  # ESP32 family: `rst:0x1 (POWERON_RESET),boot:0x13 (...)`
    r"|rst cause:\d"  # ESP8266: ` ets Jan  8 2013,rst cause:2, boot mode:(3,6)`
    r"|^\s*ets [A-Z][a-z]{2} +\d{1,2} \d{4}"  # the ROM's build date, first banner line
    r"|^ESP-ROM:"  # ESP32-S2/S3/C3/C6
)


def boot_banner(line: str) -> str | None:
    """The part of `line` that a boot ROM prints right after a reset, or None."""
    match = _BOOT_BANNER.search(line)
    return match.group(0).strip() if match else None


LOG_LINES_PER_S = 20.0
"""Text lines per second a board may publish on `{dev}/log` in the long run."""

LOG_BURST = 50
"""Text lines a board may publish at once (e.g. a banner) before the rate applies."""


@dataclass
class LineRateLimiter:
    """Token bucket: `allow()` is True for at most `burst` lines at once and `rate` lines
    per second after that; refused lines are counted in `dropped`."""

    rate: float = LOG_LINES_PER_S
    burst: int = LOG_BURST
    dropped: int = 0
    _tokens: float = field(init=False)
    _stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()

    def allow(self) -> bool:
        """Take one token if there is one."""
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.dropped += 1
        return False
