"""What a `DeviceSession` reads of its configuration, and a plain-Python default.

`SessionConfig` is structural: the daemon's pydantic `DeviceConfig`
(`conduyt_bridge/app/config.py`) satisfies it as it is, and a library user passes a
`SessionOptions`, so the device layer never imports the configuration layer
(`docs/architecture.md` §2). Key meanings and defaults: `docs/architecture.md` §8.
"""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass
from typing import Protocol

MAX_READ_COALESCE_MS = 250.0
"""Largest `read_coalesce_ms` accepted, ms (a USB serial adapter's latency timer goes to
255 ms; more would hold a streaming board's events back for no gain)."""


class SessionConfig(Protocol):
    """The settings a `DeviceSession` reads (nothing else of a device's configuration)."""

    @property
    def device_id(self) -> str:
        """Name of the board in logs and error messages."""
        ...

    @property
    def pins(self) -> Sized:
        """Pin subscriptions the handshake sets up; only their number is read (it bounds
        how long a handshake may take)."""
        ...

    @property
    def command_timeout_ms(self) -> int:
        """How long a command waits for its reply, ms."""
        ...

    @property
    def hello_timeout_ms(self) -> int:
        """How long one HELLO waits for HELLO_RESP, ms (`docs/protocol.md` §3.5)."""
        ...

    @property
    def keepalive_s(self) -> float:
        """Seconds of silence before a keepalive PING; 0 disables the keepalive."""
        ...

    @property
    def keepalive_misses(self) -> int:
        """Unanswered keepalive PINGs in a row that declare the link lost."""
        ...

    @property
    def read_coalesce_ms(self) -> float:
        """While the board streams, reading its link pauses this many ms after each small
        read (`conduyt_bridge.device.coalescing`); 0 reads as soon as bytes arrive."""
        ...

    @property
    def reconnect_min_s(self) -> float:
        """First wait before reopening a lost link, seconds (doubled per failure)."""
        ...

    @property
    def reconnect_max_s(self) -> float:
        """Cap of the reopen backoff, seconds."""
        ...


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """A `SessionConfig` for library use, with the daemon's defaults.

    Times: `command_timeout_ms` and `hello_timeout_ms` in ms, the rest in seconds.
    `pins` is only counted (see `SessionConfig.pins`).
    """

    device_id: str = "board"
    pins: tuple[object, ...] = ()
    command_timeout_ms: int = 1000
    hello_timeout_ms: int = 1000
    keepalive_s: float = 5.0
    keepalive_misses: int = 3
    read_coalesce_ms: float = 1.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.command_timeout_ms <= 0 or self.hello_timeout_ms <= 0:
            raise ValueError("command_timeout_ms and hello_timeout_ms must be > 0")
        if self.keepalive_s < 0 or self.keepalive_misses < 1:
            raise ValueError("keepalive_s must be >= 0 and keepalive_misses >= 1")
        if not 0 <= self.read_coalesce_ms <= MAX_READ_COALESCE_MS:
            raise ValueError(
                f"read_coalesce_ms must be 0-{MAX_READ_COALESCE_MS:g} (ms), "
                f"got {self.read_coalesce_ms!r}"
            )
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError("need 0 < reconnect_min_s <= reconnect_max_s")
