"""Periodic analog sampling on the board: pin subscriptions and the analog stream.

Both follow the firmware (`docs/protocol.md` §4.2): subscriptions live in a fixed table
of `max_subscriptions` slots that PIN_UNSUBSCRIBE never frees (quirk Q6), only ANALOG_POLL
ever fires (Q11), and the stream sends at most one STREAM_DATA per main-loop pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from conduyt_bridge.protocol.constants import SubscribeMode

DEFAULT_POLL_INTERVAL_MS = 100
"""PIN_SUBSCRIBE interval 0 means 100 ms (§4.2)."""
DEFAULT_STREAM_RATE_HZ = 100
"""STREAM_START rate 0 means 100 Hz (§4.2)."""
TIME_EPSILON_S = 1e-6
"""Slack in "has the interval elapsed" tests: the firmware counts whole milliseconds,
and float seconds such as 10.1 - 10.0 fall a hair short of 0.1."""


@dataclass(slots=True)
class Subscription:
    """One subscription slot. `mode` is stored unvalidated, as the firmware does."""

    pin: int
    mode: int
    interval_s: float
    threshold: int
    last_value: int
    last_check: float
    active: bool = True


class SubscriptionTable:
    """The board's PIN_SUBSCRIBE slots (`capacity` = MAX_SUBSCRIPTIONS)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.slots: list[Subscription] = []
        """Every slot taken since boot or RESET, active or not (they leak, Q6)."""

    def active(self, pin: int) -> Subscription | None:
        """The active subscription on `pin`, if any."""
        return next((s for s in self.slots if s.active and s.pin == pin), None)

    def subscribe(self, pin: int, mode: int, interval_ms: int, threshold: int, now: float) -> bool:
        """Add or update the subscription on `pin`; False when no slot is free (NAK 0x0B).

        An active subscription on the same pin is updated in place with its last value
        reset to 0; otherwise a new slot is taken.
        """
        interval_s = (interval_ms or DEFAULT_POLL_INTERVAL_MS) / 1000.0
        sub = self.active(pin)
        if sub is not None:
            sub.mode, sub.interval_s, sub.threshold = mode, interval_s, threshold
            sub.last_value = 0
            return True
        if len(self.slots) >= self.capacity:
            return False
        self.slots.append(Subscription(pin, mode, interval_s, threshold, 0, now))
        return True

    def unsubscribe(self, pin: int) -> bool:
        """Deactivate the subscription on `pin` without freeing its slot; False if none."""
        sub = self.active(pin)
        if sub is None:
            return False
        sub.active = False
        return True

    def clear(self) -> None:
        """RESET: deactivate everything and free all slots."""
        self.slots.clear()

    def poll(self, now: float, analog_read: Callable[[int], int]) -> list[tuple[int, int]]:
        """(pin, value) PIN_EVENTs due at `now`: ANALOG_POLL slots whose interval elapsed
        and whose reading moved at least `threshold` from the last one reported."""
        events: list[tuple[int, int]] = []
        for sub in self.slots:
            if not sub.active or sub.mode != SubscribeMode.ANALOG_POLL:
                continue  # CHANGE/RISING/FALLING are accepted but never fire (Q11)
            if now - sub.last_check < sub.interval_s - TIME_EPSILON_S:
                continue
            sub.last_check = now
            value = analog_read(sub.pin)
            if abs(value - sub.last_value) >= sub.threshold:
                sub.last_value = value
                events.append((sub.pin, value))
        return events


@dataclass(slots=True)
class AnalogStream:
    """A running STREAM_START: `pin_mask` bits 0..15 and the period in seconds."""

    pin_mask: int
    period_s: float
    last_sent: float

    @classmethod
    def start(cls, pin_mask: int, rate_hz: int, now: float) -> AnalogStream:
        """A stream at `rate_hz` (0 → 100 Hz) whose first sample is due at once."""
        period = 1.0 / (rate_hz or DEFAULT_STREAM_RATE_HZ)
        return cls(pin_mask, period, now - period)

    @property
    def bits(self) -> list[int]:
        """Selected bit numbers, ascending (the order of values in STREAM_DATA)."""
        return [p for p in range(16) if self.pin_mask >> p & 1]

    def due(self, now: float) -> bool:
        """True if a sample is due; marks it sent (one per pass, best effort like the board)."""
        if now - self.last_sent < self.period_s - TIME_EPSILON_S:
            return False
        self.last_sent = now
        return True
