"""When to suspect that a board rebooted behind an open port.

Reboots behind an open port (reset button, watchdog, brown-out) leave no protocol trace:
the firmware sends nothing on boot and keeps no state to ask for. The evidence used, named
in the "board may have rebooted" log line, is: a boot-ROM banner line (ESP32/ESP8266,
`conduyt_bridge.device.serial_text.boot_banner`), at least `BOOT_NOISE_BYTES` of non-text
noise in one read (a bootloader or a boot ROM at another baud rate), or a board that
answers again after unanswered keepalive PINGs. Text a sketch prints between frames is
never such evidence (`docs/serial-text.md`).
"""

from __future__ import annotations

REBOOT_CHECK_INTERVAL_S = 10.0
"""Least time between two re-runs of the handshake routine on a suspected reboot, s."""

BOOT_NOISE_BYTES = 16
"""Bytes of non-protocol, non-text noise in one read that suggest a reset (bootloader
output, or a boot ROM printing at another baud rate). Text lines never count, nor do the
few bad bytes of a mostly printable line or ANSI colour codes (`docs/serial-text.md`)."""


class RerunLimiter:
    """Allows a re-run of the handshake routine at most once per
    `REBOOT_CHECK_INTERVAL_S` (evidence often comes in bursts: a banner of many lines)."""

    def __init__(self) -> None:
        self._last = 0.0

    def allow(self, now: float) -> bool:
        """True (and remembered) if no re-run was allowed in the last interval; `now` is
        `time.monotonic()`, seconds."""
        if now - self._last < REBOOT_CHECK_INTERVAL_S:
            return False
        self._last = now
        return True
