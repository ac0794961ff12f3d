"""The composite `climate` entity (`docs/entities.md` §4): a thermostat made of values the
board already has — a current temperature and a heater (entities of the board or
datastreams), an optional target datastream and humidity — with modes `off` and
`heat`. While `heat`, the bridge switches the heater on below target - hysteresis and
off above target + hysteresis (a two-point controller, as ESPHome's `thermostat`);
switching to `off` switches the heater off once (then it is the user's again). The
mode and a bridge-kept target are settings: restored after a reboot and a bridge
restart.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import structlog

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.entities.spec import ClimateSpec, EntitySpec, SwitchSpec
from conduyt_bridge.core.entities.values import EntityValue, as_number, show
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytCommandError,
    ConduytPayloadError,
    ErrorName,
    describe_exception,
)


class _Engine(Protocol):
    """What the runner uses of its `EntityEngine` (a protocol: the engine imports this
    module)."""

    board: Board
    specs: dict[str, EntitySpec]
    states: dict[tuple[str, str], EntityValue]
    running: set[str]

    def publish(self, spec: EntitySpec, part: str, value: EntityValue) -> None: ...

    async def switch(self, spec: SwitchSpec, on: bool) -> None: ...


log = structlog.stdlib.get_logger(__name__)

MODES = ("off", "heat")
"""The climate modes offered (HA's `modes`)."""


class ClimateRunner:
    """Every climate entity of one engine: their modes, targets and heater control."""

    def __init__(self, engine: _Engine) -> None:
        self.engine = engine
        self.modes: dict[str, str] = {}
        self.targets: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _specs(self) -> list[ClimateSpec]:
        return [
            s
            for s in self.engine.specs.values()
            if isinstance(s, ClimateSpec) and s.name in self.modes
        ]

    def setup(self, spec: ClimateSpec, restored: EntityValue) -> None:
        """Take the restored setting (`{"mode", "target"}`) or the defaults; the heater
        reference must be a switch entity or a datastream.

        Raises ConduytCapabilityError."""
        heater = spec.heater
        if not heater.startswith("ds:"):
            heater_spec = self.engine.specs.get(heater)
            if not isinstance(heater_spec, SwitchSpec):
                raise ConduytCapabilityError(
                    f"entity '{spec.name}': heater '{heater}' must be a switch entity or a "
                    "datastream (ds:<slug>)",
                    ErrorName.BAD_VALUE,
                )
        if spec.name not in self.modes:
            mode, target = "off", spec.initial_target
            if isinstance(restored, dict):
                if restored.get("mode") in MODES:
                    mode = str(restored["mode"])
                value = restored.get("target")
                if isinstance(value, int | float) and spec.min_temp <= value <= spec.max_temp:
                    target = float(value)
            self.modes[spec.name] = mode
            self.targets[spec.name] = target

    # ---- values -----------------------------------------------------------------------------

    def value(self, ref: str | None) -> EntityValue:
        """The current value a reference names (None when unknown)."""
        if not ref:
            return None
        if ref.startswith("ds:"):
            return self.engine.board.values.get(ref[3:])  # type: ignore[return-value]
        name, _, part = ref.partition(".")
        return self.engine.states.get((name, part))

    def target(self, spec: ClimateSpec) -> float | None:
        if spec.target_temperature:
            value = self.value(spec.target_temperature)
            return float(value) if isinstance(value, int | float) else None
        return self.targets.get(spec.name)

    def state(self, spec: ClimateSpec) -> dict[str, Any]:
        """`{"mode", "target", "current", "humidity", "action"}`: action `off`, `heating`
        or `idle` (HA's hvac_action words)."""
        current = self.value(spec.current_temperature)
        heating = self.value(spec.heater)
        mode = self.modes.get(spec.name, "off")
        action = "off" if mode == "off" else ("heating" if heating is True else "idle")
        doc: dict[str, Any] = {
            "mode": mode,
            "target": self.target(spec),
            "current": current if isinstance(current, int | float) else None,
            "action": action,
        }
        if spec.humidity:
            hum = self.value(spec.humidity)
            doc["humidity"] = hum if isinstance(hum, int | float) else None
        return doc

    # ---- control ----------------------------------------------------------------------------

    def _uses(self, spec: ClimateSpec, ref: str) -> bool:
        return ref in (
            spec.current_temperature,
            spec.heater,
            spec.target_temperature,
            spec.humidity,
        )

    def on_entity(self, name: str, part: str) -> None:
        ref = f"{name}.{part}" if part else name
        for spec in self._specs():
            if self._uses(spec, ref):
                self._schedule(spec)

    def on_datastream(self, slug: str) -> None:
        for spec in self._specs():
            if self._uses(spec, f"ds:{slug}"):
                self._schedule(spec)

    def evaluate_all(self) -> None:
        for spec in self._specs():
            if spec.name in self.engine.running:
                self._schedule(spec)

    def _schedule(self, spec: ClimateSpec) -> None:
        if spec.name not in self.engine.running:
            return
        self.engine.board.pins.tasks.spawn(
            self.evaluate(spec), name=f"climate-{self.engine.board.dev}-{spec.name}"
        )

    def desired(self, spec: ClimateSpec) -> bool | None:
        """Whether the heater should be on now; None to leave it (mode `off`: switched off
        once when the mode changed, then left to the user; inside the band; the
        temperature unknown)."""
        if self.modes.get(spec.name) != "heat":
            return None
        current, target = self.value(spec.current_temperature), self.target(spec)
        if not isinstance(current, int | float) or target is None:
            return None
        if current < target - spec.hysteresis:
            return True
        if current > target + spec.hysteresis:
            return False
        return None

    async def evaluate(self, spec: ClimateSpec) -> None:
        """Drive the heater as `desired` says, then publish the climate's state."""
        async with self._locks.setdefault(spec.name, asyncio.Lock()):
            want = self.desired(spec)
            if want is not None and self.value(spec.heater) is not want:
                try:
                    await self._drive(spec, want)
                except ConduytCommandError as exc:
                    log.warning(
                        "climate could not switch its heater",
                        device=self.engine.board.dev,
                        entity=spec.name,
                        error=describe_exception(exc),
                    )
            state = self.state(spec)
            if self.engine.states.get((spec.name, "")) != state:
                self.engine.publish(spec, "", state)

    async def _drive(self, spec: ClimateSpec, on: bool) -> None:
        if spec.heater.startswith("ds:"):
            await self.engine.board.write_datastream(spec.heater[3:], on)
            return
        heater = self.engine.specs[spec.heater]
        assert isinstance(heater, SwitchSpec)
        await self.engine.switch(heater, on)

    async def command(self, spec: ClimateSpec, part: str, value: Any) -> None:
        """`mode`: `off` or `heat`; `target`: °C in `min_temp..max_temp` (written to the
        target datastream when one is named). Raises ConduytPayloadError `BAD_VALUE`,
        ConduytCapabilityError `OUT_OF_RANGE`, what the datastream write raises."""
        label = f"entity '{spec.name}'"
        if part == "mode":
            word = value.get("value") if isinstance(value, dict) else value
            if not isinstance(word, str) or word.strip().lower() not in MODES:
                raise ConduytPayloadError(
                    f"{label} mode takes off or heat, not {show(word)}", ErrorName.BAD_VALUE
                )
            self.modes[spec.name] = word.strip().lower()
            if self.modes[spec.name] == "off" and self.value(spec.heater) is not False:
                await self._drive(spec, False)
        else:
            target = float(as_number(f"{label} target", value, spec.min_temp, spec.max_temp, "°C"))
            if spec.target_temperature:
                await self.engine.board.write_datastream(spec.target_temperature[3:], target)
            self.targets[spec.name] = target
        await self.evaluate(spec)


__all__ = ["MODES", "ClimateRunner"]
