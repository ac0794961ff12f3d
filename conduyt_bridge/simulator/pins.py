"""The simulated board's pins: mode memory, written outputs, and inputs that move.

Mirrors the firmware's pin handling (`docs/protocol.md` §4.2): PIN_MODE is remembered for
pins 0..69 only and is what PIN_READ uses without a mode byte; pin numbers are never range
checked (quirk Q12), so writes to pins the board does not have are accepted and reads of
them return 0. The world outside the board is simulated too: analog inputs wander around a
per-pin level and digital inputs flip now and then, driven by the board's seeded RNG.
"""

from __future__ import annotations

import math
import random

from conduyt_bridge.protocol.constants import Capability, PinMode

MODE_MEMORY_PINS = 70
"""The firmware remembers PIN_MODE for pins 0..69 (§4.2, §6.5)."""

STEP_S = 0.1
"""Simulation step of the outside world, seconds: inputs change at most this often."""

_ANALOG_SIGMA = 0.01
"""Analog noise per step as a fraction of full scale."""
_ANALOG_REVERT = 0.05
"""Fraction of the distance back to a pin's base level recovered per step."""
_TOGGLE_RATE_PER_S = 0.02
"""How often a floating digital input flips, per second (a switch now and then)."""


class PinBank:
    """Pin state of one board: modes, outputs, and simulated input levels.

    Args:
        caps: capability bits per pin (the HELLO_RESP pin table).
        adc_max: largest raw ADC value (1023 for 10 bits).
        rng: the board's seeded random generator.
    """

    def __init__(self, caps: tuple[Capability, ...], adc_max: int, rng: random.Random) -> None:
        self._caps = caps
        self._adc_max = adc_max
        self._rng = rng
        self.modes: dict[int, PinMode] = {}
        """Remembered PIN_MODE per pin (pins < 70 only)."""
        self.outputs: dict[int, int] = {}
        """Last value written per pin: 0/1 for digitalWrite, the duty for analogWrite."""
        self._base: dict[int, float] = {}
        self._analog: dict[int, float] = {}
        self._levels: dict[int, int] = {}
        self.held: set[int] = set()
        """Pins whose input a test forced with `set_input`: they stop wandering."""
        for pin, cap in enumerate(caps):
            if cap & Capability.ANALOG_IN:
                base = rng.uniform(0.25, 0.75) * adc_max
                self._base[pin] = base
                self._analog[pin] = base
            elif cap & Capability.DIGITAL_IN:
                # An ADC pin's digital reading follows its analog signal instead.
                self._levels[pin] = 0

    @property
    def count(self) -> int:
        """Number of pins the board has."""
        return len(self._caps)

    def caps(self, pin: int) -> Capability:
        """Capability bits of `pin`, NONE for a pin the board does not have."""
        return self._caps[pin] if 0 <= pin < len(self._caps) else Capability.NONE

    def set_mode(self, pin: int, mode: PinMode) -> None:
        """PIN_MODE: remember the mode (pins < 70); an input mode releases a written output."""
        if pin < MODE_MEMORY_PINS:
            self.modes[pin] = mode
        if mode in (PinMode.INPUT, PinMode.INPUT_PULLUP, PinMode.ANALOG):
            self.outputs.pop(pin, None)

    def mode(self, pin: int) -> PinMode:
        """The mode PIN_READ uses without a mode byte: the remembered one, else INPUT."""
        return self.modes.get(pin, PinMode.INPUT)

    def write(self, pin: int, value: int) -> None:
        """Record a digitalWrite (0/1) or analogWrite (duty 0..255) on `pin`."""
        self.outputs[pin] = value

    def set_input(self, pin: int, value: int) -> None:
        """Hold the signal on `pin` at `value` (raw ADC counts on an ADC pin, else 0/1).

        The pin stops wandering until `release_input(pin)`, so tests can drive inputs
        deterministically. Pins the board does not have are ignored.
        """
        if pin in self._analog:
            self._analog[pin] = float(min(max(value, 0), self._adc_max))
        elif pin in self._levels:
            self._levels[pin] = 1 if value else 0
        else:
            return
        self.held.add(pin)

    def release_input(self, pin: int) -> None:
        """Let a pin held by `set_input` wander again (from where it was held)."""
        self.held.discard(pin)

    def read_analog(self, pin: int) -> int:
        """`analogRead(pin)`, unguarded like the firmware's subscriptions and streams.

        Pins without an ADC read 0 (on real hardware: anything, or a hang on an Uno R4).
        """
        value = self._analog.get(pin)
        return 0 if value is None else round(value)

    def read_digital(self, pin: int) -> int:
        """`digitalRead(pin)` → 0/1: an output reads back its level, an input its signal."""
        if pin in self.outputs:
            return 1 if self.outputs[pin] else 0
        if pin in self._analog:
            return 1 if self._analog[pin] > self._adc_max / 2 else 0
        return self._levels.get(pin, 0)

    def snapshot(self) -> dict[int, int]:
        """Current value of every pin: written output, else analog reading, else level."""
        out: dict[int, int] = {}
        for pin in range(len(self._caps)):
            if pin in self.outputs:
                out[pin] = self.outputs[pin]
            elif pin in self._analog:
                out[pin] = self.read_analog(pin)
            else:
                out[pin] = self._levels.get(pin, 0)
        for pin, value in self.outputs.items():
            out.setdefault(pin, value)
        return out

    def step(self) -> None:
        """Advance the outside world by one `STEP_S`."""
        rng = self._rng
        sigma = _ANALOG_SIGMA * self._adc_max
        for pin, value in self._analog.items():
            if pin in self.held:
                continue
            value += (self._base[pin] - value) * _ANALOG_REVERT + rng.gauss(0.0, sigma)
            self._analog[pin] = min(max(value, 0.0), float(self._adc_max))
        flip = 1.0 - math.exp(-_TOGGLE_RATE_PER_S * STEP_S)
        for pin in self._levels:
            if pin not in self.outputs and pin not in self.held and rng.random() < flip:
                self._levels[pin] ^= 1
