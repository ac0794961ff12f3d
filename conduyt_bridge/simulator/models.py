"""Value models: how a simulated sketch's datastream values evolve between pushes.

A model is a small immutable recipe; the board keeps the current value and asks the model
for the next one each time the datastream is pushed (`step`), passing the seconds since
the previous push, the board's seeded RNG and the other datastreams' current values (so a
temperature can follow a heater). Models return the Python type that matches the declared
datastream type (float for FLOAT32, int for integers, bool, str); the board coerces
anyway.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from conduyt_bridge.protocol.values import DatastreamValue


class ValueModel(Protocol):
    """A datastream's value over time."""

    def initial(self) -> DatastreamValue:
        """The value at boot."""
        ...

    def step(
        self,
        current: DatastreamValue,
        dt: float,
        rng: random.Random,
        values: Mapping[str, DatastreamValue],
    ) -> DatastreamValue:
        """The next value, `dt` seconds after `current`; `values` are all current values."""
        ...


def _chance(rate_per_s: float, dt: float) -> float:
    """Probability that a Poisson event with `rate_per_s` happens within `dt` seconds."""
    return 1.0 - math.exp(-max(rate_per_s, 0.0) * max(dt, 0.0))


def _quantize(value: float, resolution: float) -> float:
    return round(value / resolution) * resolution if resolution > 0 else value


def _number(value: DatastreamValue, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


@dataclass(frozen=True, slots=True)
class Hold:
    """A value that only changes when the host writes it (DS_WRITE) or a test sets it."""

    value: DatastreamValue

    def initial(self) -> DatastreamValue:
        return self.value

    def step(
        self,
        current: DatastreamValue,
        dt: float,
        rng: random.Random,
        values: Mapping[str, DatastreamValue],
    ) -> DatastreamValue:
        return current


@dataclass(frozen=True, slots=True)
class RandomWalk:
    """A noisy sensor reading that wanders around `start` within [low, high].

    `sigma_per_s` is the noise (units per √second); `revert_per_s` pulls the value back
    toward `start` (fraction of the distance per second), so it never drifts off for good.
    `resolution` rounds the reading like a real sensor (0 = no rounding).
    """

    start: float
    low: float
    high: float
    sigma_per_s: float = 0.1
    revert_per_s: float = 0.05
    resolution: float = 0.01

    def initial(self) -> DatastreamValue:
        return self.start

    def step(
        self,
        current: DatastreamValue,
        dt: float,
        rng: random.Random,
        values: Mapping[str, DatastreamValue],
    ) -> DatastreamValue:
        x = _number(current, self.start)
        x += (self.start - x) * min(1.0, self.revert_per_s * dt)
        x += rng.gauss(0.0, self.sigma_per_s * math.sqrt(max(dt, 0.0)))
        return _quantize(min(max(x, self.low), self.high), self.resolution)


@dataclass(frozen=True, slots=True)
class Thermal:
    """A room temperature driven by a heater: the simulated thermostat sketch.

    While the BOOL datastream `heater` is on and the temperature is below the FLOAT32
    datastream `setpoint`, it rises by `heat_per_s` °C/s; otherwise it relaxes toward
    `ambient` by `cool_per_s` °C/s. Plus sensor noise of `noise` °C.
    """

    start: float = 21.0
    ambient: float = 19.0
    setpoint: str = "setpoint"
    heater: str = "heater"
    heat_per_s: float = 0.05
    cool_per_s: float = 0.01
    noise: float = 0.02
    resolution: float = 0.01

    def initial(self) -> DatastreamValue:
        return self.start

    def step(
        self,
        current: DatastreamValue,
        dt: float,
        rng: random.Random,
        values: Mapping[str, DatastreamValue],
    ) -> DatastreamValue:
        t = _number(current, self.start)
        target = _number(values.get(self.setpoint, self.ambient), self.ambient)
        if values.get(self.heater) is True and t < target:
            t = min(target, t + self.heat_per_s * dt)
        else:
            step = self.cool_per_s * dt
            t = max(self.ambient, t - step) if t > self.ambient else min(self.ambient, t + step)
        t += rng.gauss(0.0, self.noise)
        return _quantize(t, self.resolution)


@dataclass(frozen=True, slots=True)
class Toggle:
    """A boolean that flips now and then (a door contact): `rate_per_s` flips per second."""

    start: bool = False
    rate_per_s: float = 0.05

    def initial(self) -> DatastreamValue:
        return self.start

    def step(
        self,
        current: DatastreamValue,
        dt: float,
        rng: random.Random,
        values: Mapping[str, DatastreamValue],
    ) -> DatastreamValue:
        flip = rng.random() < _chance(self.rate_per_s, dt)
        return (not current) if flip else bool(current)


@dataclass(frozen=True, slots=True)
class Choice:
    """A status text that changes to another of `values` about `rate_per_s` times a second."""

    values: tuple[str, ...]
    rate_per_s: float = 0.05

    def initial(self) -> DatastreamValue:
        return self.values[0]

    def step(
        self,
        current: DatastreamValue,
        dt: float,
        rng: random.Random,
        values: Mapping[str, DatastreamValue],
    ) -> DatastreamValue:
        if len(self.values) < 2 or rng.random() >= _chance(self.rate_per_s, dt):
            return current
        return rng.choice([v for v in self.values if v != current] or list(self.values))


@dataclass(frozen=True, slots=True)
class Counter:
    """A value that grows by `step` per push and wraps to `start` beyond `wrap`.

    Used by the `firehose` profile: consecutive values let a benchmark count lost or
    reordered events. The default wrap (2**24) keeps every value exact in float32.
    """

    start: float = 0.0
    increment: float = 1.0
    wrap: float = float(2**24)

    def initial(self) -> DatastreamValue:
        return self.start

    def step(
        self,
        current: DatastreamValue,
        dt: float,
        rng: random.Random,
        values: Mapping[str, DatastreamValue],
    ) -> DatastreamValue:
        nxt = _number(current, self.start) + self.increment
        return self.start if nxt > self.wrap else nxt
