"""The runtime of one board's declared entities (`docs/entities.md` §5, §6).

`EntityEngine` checks every entity against the HELLO_RESP when the board comes online
(and again when the handshake routine re-runs after a reboot the link did not show),
sets each one up with the core's own operations — `PinState.set_mode/write/read/subscribe`
and `core.modules.run_command`, so every argument and capability check is the one all
commands get — restores the last state of the settings (switch, light, servo, strip, PID
setpoint, climate), runs the reads (DHT, encoder) and turns pin values into entity
states. Observers (the Conduyt layout) publish the states and report refusals; this
module knows no topic and no payload format.

One engine per board, set up per board (`attach` / `detach`), so a board added while the
bridge runs gets its own without anything done only at start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import structlog

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.entities.checks import (
    SETUP_COMMANDS,
    check_entity,
    resolve_module,
    setup_args,
)
from conduyt_bridge.core.entities.climate import ClimateRunner
from conduyt_bridge.core.entities.spec import (
    BinarySensorSpec,
    ButtonSpec,
    ClimateSpec,
    DhtSpec,
    EncoderSpec,
    EntitySpec,
    LightSpec,
    NeoPixelSpec,
    PidSpec,
    SensorSpec,
    ServoSpec,
    StepperSpec,
    SwitchSpec,
    command_parts,
)
from conduyt_bridge.core.entities.values import (
    EntityValue,
    as_bool,
    as_number,
    light_duty,
    light_fill,
    light_state,
    parse_light,
    scaled,
    show,
)
from conduyt_bridge.core.events import (
    BoardEvent,
    BoardOffline,
    BoardOnline,
    DatastreamUpdated,
    PinValue,
)
from conduyt_bridge.core.modules import run_command
from conduyt_bridge.core.pins import Subscription
from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytCommandError,
    ConduytDisconnectedError,
    ConduytError,
    ConduytForbiddenError,
    ConduytInternalError,
    ConduytNAKError,
    ConduytRequestError,
    ErrorName,
    describe_exception,
)
from conduyt_bridge.protocol.constants import ErrorCode, PinMode, SubscribeMode
from conduyt_bridge.protocol.modules import CATALOG

log = structlog.stdlib.get_logger(__name__)

MAX_PULSE_MS = 10_000
"""Longest button pulse, ms (the press holds the board's command worker)."""

SETTINGS = (SwitchSpec, LightSpec, ServoSpec, NeoPixelSpec, PidSpec, StepperSpec, ClimateSpec)
"""Kinds whose state is a setting: published retained and restored after a reboot
(a stepper's target is published but never re-driven: it would move the motor)."""


class EntityObserver(Protocol):
    """Who hears of entity states and refusals (an adapter)."""

    def entity_state(self, spec: EntitySpec, part: str, value: EntityValue) -> None:
        """A new state of `spec` (`part` "" for the main state, else `temperature`…)."""
        ...

    def entity_refused(self, spec: EntitySpec, error: ConduytError) -> None:
        """`spec` cannot run on this board (checked at connect) or its setup failed."""
        ...


class EntityEngine:
    """The declared entities of one board."""

    def __init__(self, board: Board, specs: Sequence[EntitySpec]) -> None:
        self.board = board
        self.specs = {s.name: s for s in specs}
        self.observers: list[EntityObserver] = []
        self.states: dict[tuple[str, str], EntityValue] = {}
        self.seeds: dict[str, EntityValue] = {}
        """Retained settings found at start (the broker is the bridge's only store)."""
        self.refusals: dict[str, ConduytError] = {}
        self.running: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._debounce: dict[str, asyncio.TimerHandle] = {}
        self._pin_owner: dict[int, EntitySpec] = {}
        self.climate = ClimateRunner(self)
        self._unsubscribe: Callable[[], None] | None = None
        self.log = log.bind(device=board.dev)

    # ---- lifecycle ---------------------------------------------------------------------

    def attach(self) -> None:
        """Listen to the board's events (first, so states are known before adapters
        announce the board). Idempotent."""
        if self._unsubscribe is None:
            self._unsubscribe = self.board.bus.subscribe(
                self.on_event,
                kinds=(BoardOnline, BoardOffline, PinValue, DatastreamUpdated),
                first=True,
            )

    def detach(self) -> None:
        """Stop listening and cancel the reads (the board was removed)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.stop()

    def stop(self) -> None:
        """Cancel reads and pending debounces (the link is gone or the board removed)."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        for handle in self._debounce.values():
            handle.cancel()
        self._debounce.clear()

    def on_event(self, event: BoardEvent) -> Awaitable[None] | None:
        """Bus listener: set up on `BoardOnline` (awaited by the session: `deliver`),
        stop on `BoardOffline`, convert pin values and follow datastreams a climate names
        (synchronously: `emit` does not await)."""
        if event.dev != self.board.dev:
            return None
        if isinstance(event, PinValue):
            self._on_pin(event.pin, event.value)
        elif isinstance(event, DatastreamUpdated):
            self.climate.on_datastream(event.slug)
        elif isinstance(event, BoardOnline):
            return self.setup()
        elif isinstance(event, BoardOffline):
            self.stop()
        return None

    async def on_handshake(self, session: DeviceSession) -> None:
        """Handshake hook: when the routine re-runs on a board that may have rebooted with
        its link open (`docs/architecture.md` §4), set every entity up again; the first
        handshake is served by `BoardOnline`."""
        if session.online:
            await self.setup()

    def seed(self, name: str, value: EntityValue) -> None:
        """A retained setting found at start, restored at the next setup unless the
        entity has a state of its own by then."""
        self.seeds[name] = value

    async def setup(self) -> None:
        """Check and set up every entity; a refused or failing one is reported to the
        observers and the others run."""
        self.stop()
        hello = self.board.require_hello()
        specs = list(self.specs.values())
        self.running.clear()
        self._pin_owner.clear()
        for spec in specs:
            try:
                if self.board.config.read_only:  # refused by the config file; a plugin's
                    raise ConduytForbiddenError(
                        f"board '{self.board.dev}' is configured read_only: its entities "
                        "cannot be set up",
                        ErrorName.READ_ONLY,
                    )
                check_entity(hello, spec, specs)
                await self._setup(spec)
            except ConduytDisconnectedError:
                raise
            except ConduytCommandError as exc:
                self._refuse(spec, exc)
                continue
            except Exception as exc:  # a bug in one entity must not stop the others
                self.log.exception("entity setup failed", entity=spec.name)
                self._refuse(spec, ConduytInternalError(f"entity '{spec.name}': {exc}"))
                continue
            self.refusals.pop(spec.name, None)
            self.running.add(spec.name)
        self.climate.evaluate_all()

    def _refuse(self, spec: EntitySpec, error: ConduytError) -> None:
        if isinstance(error, ConduytRequestError) and not str(error).startswith("entity '"):
            # The check's and the core's own messages, named after the entity; a NAK or
            # a timeout keeps its class (the report on the entity's topic names it).
            error = type(error)(f"entity '{spec.name}': {error}", error.name)
        self.refusals[spec.name] = error
        self.log.warning("entity refused", entity=spec.name, error=describe_exception(error))
        for observer in self.observers:
            observer.entity_refused(spec, error)

    def _restore(self, spec: EntitySpec, part: str = "") -> EntityValue:
        key = (spec.name, part)
        if key in self.states:
            return self.states[key]
        return self.seeds.pop(spec.name, None) if not part else None

    def publish(self, spec: EntitySpec, part: str, value: EntityValue) -> None:
        """Record a state and tell the observers."""
        self.states[(spec.name, part)] = value
        for observer in self.observers:
            observer.entity_state(spec, part, value)
        self.climate.on_entity(spec.name, part)

    # ---- setup per kind --------------------------------------------------------------------

    async def _setup(self, spec: EntitySpec) -> None:
        pins = self.board.pins
        match spec:
            case SwitchSpec():
                await pins.set_mode(spec.pin, PinMode.OUTPUT)
                on = self._restore(spec)
                await self.switch(spec, bool(on) if isinstance(on, bool) else False)
            case ButtonSpec():
                await pins.set_mode(spec.pin, PinMode.OUTPUT)
                await pins.write(spec.pin, 1 if spec.inverted else 0)
            case LightSpec():
                await pins.set_mode(spec.pin, PinMode.PWM)
                await self._light(spec, self._restored_light(spec, rgb=False))
            case BinarySensorSpec():
                self._pin_owner[spec.pin] = spec
                mode = PinMode.INPUT_PULLUP if spec.pull == "up" else PinMode.INPUT
                await pins.set_mode(spec.pin, mode)
                sub = Subscription(spec.pin, SubscribeMode.CHANGE, spec.poll_ms, 0)
                await pins.subscribe(spec.pin, sub)
            case SensorSpec():
                self._pin_owner[spec.pin] = spec
                sub = Subscription(
                    spec.pin, SubscribeMode.ANALOG_POLL, spec.interval_ms, spec.threshold
                )
                await pins.subscribe(spec.pin, sub)
                await pins.read(spec.pin)  # a first value now, not after `threshold`
            case PidSpec():
                await self._module(spec, "config", {"kp": spec.kp, "ki": spec.ki, "kd": spec.kd})
                await self._module(spec, "set_input", {"pin": spec.input_pin})
                await self._module(spec, "set_output", {"pin": spec.output_pin})
                target = self._restore(spec)
                value = float(target) if isinstance(target, int | float) else 0.0
                await self._module(spec, "set_target", {"value": value})
                await self._module(spec, "enable", {"flag": 1})
                self.publish(spec, "", value)
            case ServoSpec() | NeoPixelSpec() | DhtSpec() | EncoderSpec() | StepperSpec():
                await self._module(spec, SETUP_COMMANDS[spec.kind], setup_args(spec))
                await self._after_module_setup(spec)
            case ClimateSpec():
                self.climate.setup(spec, self._restore(spec))

    async def _after_module_setup(self, spec: EntitySpec) -> None:
        match spec:
            case ServoSpec():
                angle = self._restore(spec)
                if isinstance(angle, int | float) and not isinstance(angle, bool):
                    await self._servo(spec, int(angle))
            case NeoPixelSpec():
                await self._light(spec, self._restored_light(spec, rgb=True))
            case DhtSpec():
                self._spawn(spec, self._read_loop(spec, "read", spec.interval_s))
            case EncoderSpec():
                self._spawn(spec, self._read_loop(spec, "read", spec.interval_ms / 1000))
            case StepperSpec():
                target = self._restore(spec)
                if isinstance(target, int) and not isinstance(target, bool):
                    self.states[(spec.name, "")] = target  # known, not re-driven

    def _restored_light(self, spec: EntitySpec, rgb: bool) -> dict[str, Any]:
        state = self._restore(spec)
        off = light_state(False, 255, (255, 255, 255) if rgb else None)
        if not isinstance(state, dict):
            return off
        # A published state also carries `color_mode` (and `ts`), which a command may not.
        kept = {k: v for k, v in state.items() if k in ("state", "brightness", "color")}
        try:
            return parse_light(f"entity '{spec.name}'", kept, off, rgb)
        except ConduytCommandError:
            return off

    def _spawn(self, spec: EntitySpec, coro: Any) -> None:
        self._tasks[spec.name] = self.board.pins.tasks.spawn(
            coro, name=f"entity-{self.board.dev}-{spec.name}"
        )

    # ---- operations -----------------------------------------------------------------------

    async def _module(self, spec: EntitySpec, command: str, args: dict[str, Any]) -> dict[str, Any]:
        module = resolve_module(self.board.require_hello(), spec)
        cmd = CATALOG[str(spec.kind)].commands[command]
        return await run_command(self.board, module, cmd, args)

    async def switch(self, spec: SwitchSpec, on: bool) -> None:
        """Drive switch `spec` on or off (`inverted`: LOW is on) and publish its state
        (a command, and a climate's heater)."""
        await self.board.pins.write(spec.pin, 1 if on != spec.inverted else 0)
        self.publish(spec, "", on)

    async def _light(self, spec: LightSpec | NeoPixelSpec, state: dict[str, Any]) -> None:
        if isinstance(spec, LightSpec):
            await self.board.pins.write(spec.pin, light_duty(state))
        else:
            r, g, b = light_fill(state)
            await self._module(spec, "fill", {"r": r, "g": g, "b": b})
            await self._module(spec, "show", {})
        self.publish(spec, "", state)

    async def _servo(self, spec: ServoSpec, angle: int) -> None:
        await self._module(spec, "write", {"angle": angle})
        self.publish(spec, "", angle)

    async def _read_loop(self, spec: DhtSpec | EncoderSpec, command: str, every_s: float) -> None:
        while True:
            try:
                fields = await self._module(spec, command, {})
            except ConduytCommandError as exc:
                self.log.debug(
                    "entity read failed", entity=spec.name, error=describe_exception(exc)
                )
                if isinstance(exc, ConduytNAKError) and exc.code == ErrorCode.MODULE_NOT_LOADED:
                    # The module forgot its begin/attach: the board rebooted unseen, so
                    # the handshake routine (and this setup) must run again.
                    session = self.board.session
                    if session is not None:
                        session.suspect_reboot(f"entity '{spec.name}': module not begun")
            else:
                if isinstance(spec, DhtSpec):
                    self.publish(spec, "temperature", fields.get("temperature_c"))
                    self.publish(spec, "humidity", fields.get("humidity_percent"))
                elif self.states.get((spec.name, "")) != fields.get("count"):
                    self.publish(spec, "", fields.get("count"))
            await asyncio.sleep(every_s)

    def _on_pin(self, pin: int, value: int) -> None:
        spec = self._pin_owner.get(pin)
        if isinstance(spec, SensorSpec):
            self.publish(spec, "", scaled(value, spec.scale, spec.offset, spec.precision))
        elif isinstance(spec, BinarySensorSpec):
            level = bool(value) != spec.inverted
            pending = self._debounce.pop(spec.name, None)
            if pending is not None:
                pending.cancel()
            if spec.debounce_ms <= 0:
                self._settle(spec, level)
                return
            loop = asyncio.get_running_loop()
            self._debounce[spec.name] = loop.call_later(
                spec.debounce_ms / 1000, self._settle, spec, level
            )

    def _settle(self, spec: BinarySensorSpec, level: bool) -> None:
        self._debounce.pop(spec.name, None)
        if self.states.get((spec.name, "")) != level:
            self.publish(spec, "", level)

    # ---- commands -------------------------------------------------------------------------

    def require(self, name: str, part: str) -> EntitySpec:
        """The running entity `name` that takes commands on `part`.

        Raises ConduytCapabilityError: not declared (`BAD_TOPIC`), refused on this board
        (its refusal), read-only or no such part (`CAPABILITY`)."""
        spec = self.specs.get(name)
        if spec is None:
            known = ", ".join(self.specs) or "none"
            raise ConduytCapabilityError(
                f"entity {show(name)} is not declared for board '{self.board.dev}' "
                f"(entities: {known})",
                ErrorName.BAD_TOPIC,
            )
        refusal = self.refusals.get(name)
        if refusal is not None:
            named = refusal.name in ErrorName.__members__
            raise ConduytCapabilityError(
                str(refusal), ErrorName(refusal.name) if named else ErrorName.CAPABILITY
            )
        parts = command_parts(spec)
        if not parts:
            raise ConduytCapabilityError(
                f"entity '{name}' ({spec.kind}) is read-only: it takes no commands"
            )
        if part not in parts:
            what = ", ".join(p or "set" for p in parts)
            raise ConduytCapabilityError(
                f"entity '{name}' ({spec.kind}) has no command {show(part)} (commands: {what})"
            )
        if name not in self.running:
            raise ConduytDisconnectedError(
                f"entity '{name}' is not set up yet: board '{self.board.dev}' has not "
                "completed a handshake"
            )
        return spec

    async def command(self, name: str, part: str, value: Any) -> EntityValue:
        """Drive entity `name` (`part` "" for its main command) with a decoded command
        value; returns the new state (`docs/entities.md` §3 lists what each kind takes).

        Raises ConduytCapabilityError, ConduytPayloadError, ConduytNAKError,
        ConduytTimeoutError, ConduytDisconnectedError.
        """
        self.board.require_online()
        spec = self.require(name, part)
        label = f"entity '{name}'"
        match spec:
            case SwitchSpec():
                await self.switch(spec, as_bool(label, value))
            case ButtonSpec():
                active = 0 if spec.inverted else 1
                await self.board.pins.write(spec.pin, active)
                await asyncio.sleep(spec.pulse_ms / 1000)
                await self.board.pins.write(spec.pin, 1 - active)
                return None
            case LightSpec() | NeoPixelSpec():
                current = self.states.get((name, "")) or {}
                assert isinstance(current, dict)
                rgb = isinstance(spec, NeoPixelSpec)
                await self._light(spec, parse_light(label, value, current, rgb))
            case ServoSpec():
                angle = as_number(f"{label} angle", value, 0, 180, "°")
                if not isinstance(angle, int):
                    raise ConduytCapabilityError(
                        f"{label} angle takes whole degrees 0..180, got {angle}",
                        ErrorName.OUT_OF_RANGE,
                    )
                await self._servo(spec, angle)
            case PidSpec():
                target = float(as_number(f"{label} setpoint", value, 0, 100, "%"))
                await self._module(spec, "set_target", {"value": target})
                self.publish(spec, "", target)
            case StepperSpec():
                position = as_number(f"{label} target", value, spec.min, spec.max, "steps")
                if not isinstance(position, int):
                    raise ConduytCapabilityError(
                        f"{label} target takes whole steps, got {position}",
                        ErrorName.OUT_OF_RANGE,
                    )
                args = {"position": position, "speed_hz": spec.speed_hz}
                await self._module(spec, "move_to", args)
                self.publish(spec, "", position)
            case EncoderSpec():
                await self._module(spec, "reset", {})
                self.publish(spec, "", 0)
            case ClimateSpec():
                await self.climate.command(spec, part, value)
        return self.states.get((name, ""))


__all__ = [
    "MAX_PULSE_MS",
    "SETTINGS",
    "EntityEngine",
    "EntityObserver",
]
