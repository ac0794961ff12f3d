"""Simulated built-in modules (`docs/protocol.md` §8): MOD_CMD handlers and MOD_EVENTs.

Each module sees only the MOD_CMD arguments (the bytes after `[module_id][cmd]`) and, like
the firmware, reads missing argument bytes as 0. A handler returns a `ModuleReply` (ACK,
NAK or MOD_RESP) or None, in which case the board auto-ACKs (§4.2). Built-in modules put
module_id 0 in MOD_RESP and MOD_EVENT whatever their real id (quirk Q9); the board adds
that byte, the modules return only what follows it.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from conduyt_bridge.protocol.constants import ErrorCode, PacketType


@dataclass(frozen=True, slots=True)
class ModuleReply:
    """What a module answers: `type` is ACK, NAK or MOD_RESP; `payload` excludes the 0 id."""

    type: PacketType
    payload: bytes = b""


ACK = ModuleReply(PacketType.ACK)


def nak(code: ErrorCode) -> ModuleReply:
    """A NAK reply with `code`."""
    return ModuleReply(PacketType.NAK, bytes((code,)))


def resp(data: bytes) -> ModuleReply:
    """A MOD_RESP reply carrying `data` (the board prepends module_id 0)."""
    return ModuleReply(PacketType.MOD_RESP, data)


UNKNOWN_CMD = nak(ErrorCode.UNKNOWN_MODULE_CMD)


class SimModule(Protocol):
    """A module the simulated sketch registered."""

    kind: str

    def command(self, cmd: int, args: bytes, now: float) -> ModuleReply | None:
        """Handle MOD_CMD `cmd` with `args` at time `now` (s); None means auto-ACK."""
        ...

    def tick(self, now: float) -> list[bytes]:
        """MOD_EVENT payloads due at `now`, each `[event_code][data…]` (no module id)."""
        ...


class _Args:
    """Little-endian argument reader where bytes past the end read as 0 (firmware habit)."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    def _take(self, offset: int, size: int) -> bytes:
        return self._raw[offset : offset + size].ljust(size, b"\x00")

    def u8(self, offset: int) -> int:
        return self._take(offset, 1)[0]

    def u16(self, offset: int) -> int:
        return int.from_bytes(self._take(offset, 2), "little")

    def i32(self, offset: int) -> int:
        return int.from_bytes(self._take(offset, 4), "little", signed=True)

    def f32(self, offset: int) -> float:
        return float(struct.unpack("<f", self._take(offset, 4))[0])

    def rest(self, offset: int) -> bytes:
        return self._raw[offset:]

    def __len__(self) -> int:
        return len(self._raw)


@dataclass(slots=True)
class Servo:
    """`servo` (§8.1): attach, write (angle clamped 0..180), write_us, detach."""

    kind: str = "servo"
    pin: int | None = None
    min_us: int = 544
    max_us: int = 2400
    angle: int = 90
    pulse_us: int | None = None

    def command(self, cmd: int, args: bytes, now: float) -> ModuleReply | None:
        a = _Args(args)
        if cmd == 0x01:
            self.pin = a.u8(0)
            self.min_us = a.u16(1) or 544
            self.max_us = a.u16(3) or 2400
        elif cmd == 0x02:
            self.angle = min(a.u8(0), 180)
            self.pulse_us = None
        elif cmd == 0x03:
            self.pulse_us = a.u16(0)
        elif cmd == 0x04:
            self.pin = None
        else:
            return UNKNOWN_CMD
        return ACK

    def tick(self, now: float) -> list[bytes]:
        return []


MAX_PIXELS = 4096
"""Pixel buffer cap: a begin with a larger count keeps this many (memory bound)."""


@dataclass(slots=True)
class NeoPixel:
    """`neopixel` (§8.2): a pixel buffer (r, g, b, w); `shown` is what the strip displays."""

    kind: str = "neopixel"
    begun: bool = False
    pin: int = 0
    pixel_type: int = 0
    brightness: int = 255
    pixels: list[tuple[int, int, int, int]] = field(default_factory=list)
    shown: list[tuple[int, int, int, int]] = field(default_factory=list)

    def command(self, cmd: int, args: bytes, now: float) -> ModuleReply | None:
        if not 0x01 <= cmd <= 0x06:
            return UNKNOWN_CMD
        a = _Args(args)
        if cmd == 0x01:
            self.begun = True
            self.pin = a.u8(0)
            # type 0 means NEO_GRB + NEO_KHZ800 (0x52); other values pass through (§8.2).
            self.pixel_type = a.u8(3) or 0x52
            self.pixels = [(0, 0, 0, 0)] * min(a.u16(1), MAX_PIXELS)
            self.shown = list(self.pixels)
        elif not self.begun:
            pass  # commands before begin are ACKed and ignored
        elif cmd == 0x02:
            index = a.u16(0)
            if index < len(self.pixels):
                self.pixels[index] = (a.u8(2), a.u8(3), a.u8(4), a.u8(5))
        elif cmd == 0x03:
            start, count = a.u16(0), a.u16(2)
            colour = (a.u8(4), a.u8(5), a.u8(6), 0)
            for i in range(start, min(start + count, len(self.pixels))):
                self.pixels[i] = colour
        elif cmd == 0x04:
            self.pixels = [(a.u8(0), a.u8(1), a.u8(2), a.u8(3))] * len(self.pixels)
        elif cmd == 0x05:
            self.shown = list(self.pixels)
        else:
            self.brightness = a.u8(0)
        return ACK

    def tick(self, now: float) -> list[bytes]:
        return []


@dataclass(slots=True)
class Dht:
    """`dht` (§8.3): read answers MOD_RESP `[temp f32][hum f32]` (NAK 0x08 before begin).

    `temperature` (°C) and `humidity` (%RH) wander a little on each read; set
    `sensor_error` to make reads fail like a NaN reading (NAK 0x0C, §5.1).
    """

    rng: random.Random
    kind: str = "dht"
    begun: bool = False
    pin: int = 0
    sensor_type: int = 11
    temperature: float = 22.0
    humidity: float = 50.0
    sensor_error: bool = False

    def command(self, cmd: int, args: bytes, now: float) -> ModuleReply | None:
        a = _Args(args)
        if cmd == 0x01:
            self.begun = True
            self.pin = a.u8(0)
            self.sensor_type = 22 if a.u8(1) == 22 else 11
            return ACK
        if cmd == 0x02:
            if not self.begun:
                return nak(ErrorCode.MODULE_NOT_LOADED)
            if self.sensor_error:
                return nak(ErrorCode.OUT_OF_MEMORY)
            # DHT11 reports whole degrees/percent, DHT22 tenths.
            step = 1.0 if self.sensor_type == 11 else 0.1
            self.temperature = min(max(self.temperature + self.rng.gauss(0, 0.1), 10.0), 35.0)
            self.humidity = min(max(self.humidity + self.rng.gauss(0, 0.3), 20.0), 90.0)
            t = round(self.temperature / step) * step
            h = round(self.humidity / step) * step
            return resp(struct.pack("<ff", t, h))
        return UNKNOWN_CMD

    def tick(self, now: float) -> list[bytes]:
        return []


@dataclass(slots=True)
class Encoder:
    """`encoder` (§8.4): attach, read (MOD_RESP `[count i32]`), reset; tick events.

    The knob is turned by tests or the sketch via `turn(steps)`; each step is one level
    change of pin A and yields one MOD_EVENT `[0x01][count i32][delta i16]` on the next tick.
    Nothing turns by itself, so a board with an encoder stays deterministic.
    """

    kind: str = "encoder"
    attached: bool = False
    pins: tuple[int, int] = (0, 0)
    count: int = 0
    pending: int = 0

    def turn(self, steps: int) -> None:
        """Queue `steps` detents (negative = the other way), emitted on the next tick."""
        self.pending += steps

    def command(self, cmd: int, args: bytes, now: float) -> ModuleReply | None:
        a = _Args(args)
        if cmd == 0x01:
            self.attached = True
            self.pins = (a.u8(0), a.u8(1))
            self.count = 0
            return ACK
        if cmd == 0x02:
            return resp(struct.pack("<i", self.count))
        if cmd == 0x03:
            self.count = 0
            return ACK
        return UNKNOWN_CMD

    def tick(self, now: float) -> list[bytes]:
        if not self.pending:
            return []
        if not self.attached:
            # Nobody polls pin A before attach: turns are lost, as on the board.
            self.pending = 0
            return []
        events = []
        delta = 1 if self.pending > 0 else -1
        for _ in range(abs(self.pending)):
            self.count = (self.count + delta + 2**31) % 2**32 - 2**31
            events.append(b"\x01" + struct.pack("<ih", self.count, delta))
        self.pending = 0
        return events


@dataclass(slots=True)
class Stepper:
    """`stepper` (§8.5): config, move, move_to, stop; event 0x01 `[position i32]` when done.

    Steps are taken at `speed` steps/s of simulated time (0 → 1000). Commands before
    config are ACKed without motion; a stop ends a move without an event.
    """

    kind: str = "stepper"
    configured: bool = False
    pins: tuple[int, int, int] = (0, 0, 0xFF)
    steps_per_rev: int = 200
    position: int = 0
    target: int = 0
    speed: int = 1000
    moving: bool = False
    _last: float = 0.0
    _carry: float = 0.0

    def command(self, cmd: int, args: bytes, now: float) -> ModuleReply | None:
        a = _Args(args)
        if cmd == 0x01:
            self.configured = True
            self.pins = (a.u8(0), a.u8(1), a.u8(2))
            self.steps_per_rev = a.u16(3)
        elif cmd in (0x02, 0x03):
            if self.configured:
                self.target = self.position + a.i32(0) if cmd == 0x02 else a.i32(0)
                self.speed = a.u16(4) or 1000
                self.moving = True
                self._last = now
                self._carry = 0.0
        elif cmd == 0x04:
            self.moving = False
        else:
            return UNKNOWN_CMD
        return ACK

    def tick(self, now: float) -> list[bytes]:
        if not self.moving:
            return []
        self._carry += max(now - self._last, 0.0) * self.speed
        self._last = now
        steps = math.floor(self._carry)
        self._carry -= steps
        remaining = self.target - self.position
        step = min(steps, abs(remaining))
        self.position += step if remaining > 0 else -step
        if self.position != self.target:
            return []
        self.moving = False
        return [b"\x01" + struct.pack("<i", self.position)]


@dataclass(slots=True)
class Oled1306:
    """`oled1306` (§8.6): every drawing command is ACKed; `texts` records text commands."""

    kind: str = "oled1306"
    begun: bool = False
    size: tuple[int, int] = (128, 64)
    address: int = 0x3C
    texts: list[tuple[int, int, str]] = field(default_factory=list)
    shows: int = 0

    def command(self, cmd: int, args: bytes, now: float) -> ModuleReply | None:
        a = _Args(args)
        if cmd == 0x01:
            self.begun = True
            self.size = (a.u8(0), a.u8(1))
            self.address = a.u8(2) or 0x3C
        elif cmd == 0x02:
            self.texts.clear()
        elif cmd == 0x03:
            text = a.rest(3)[:63].decode("utf-8", errors="replace")
            self.texts.append((a.u8(0), a.u8(1), text))
        elif cmd == 0x06:
            self.shows += 1
        elif cmd not in (0x04, 0x05):
            return UNKNOWN_CMD
        return ACK

    def tick(self, now: float) -> list[bytes]:
        return []


@dataclass(slots=True)
class Pid:
    """`pid` (§8.7): configuration commands ACKed; no events (the tick event does not exist)."""

    kind: str = "pid"
    gains: tuple[float, float, float] = (1.0, 0.0, 0.0)
    target: float = 0.0
    input_pin: int | None = None
    output_pin: int | None = None
    enabled: bool = False

    def command(self, cmd: int, args: bytes, now: float) -> ModuleReply | None:
        a = _Args(args)
        if cmd == 0x01:
            self.gains = (a.f32(0), a.f32(4), a.f32(8))
        elif cmd == 0x02:
            self.target = a.f32(0)
        elif cmd == 0x03:
            self.input_pin = a.u8(0)
        elif cmd == 0x04:
            self.output_pin = a.u8(0)
        elif cmd == 0x05:
            self.enabled = a.u8(0) != 0
        else:
            return UNKNOWN_CMD
        return ACK

    def tick(self, now: float) -> list[bytes]:
        return []


@dataclass(slots=True)
class I2cPass:
    """`i2c_pass` (§8.8): a marker module; every command NAKs UNKNOWN_MODULE_CMD."""

    kind: str = "i2c_pass"

    def command(self, cmd: int, args: bytes, now: float) -> ModuleReply | None:
        return UNKNOWN_CMD

    def tick(self, now: float) -> list[bytes]:
        return []


MODULE_KINDS: Mapping[str, Callable[[random.Random], SimModule]] = MappingProxyType(
    {
        "servo": lambda rng: Servo(),
        "neopixel": lambda rng: NeoPixel(),
        "dht": lambda rng: Dht(rng),
        "encoder": lambda rng: Encoder(),
        "stepper": lambda rng: Stepper(),
        "oled1306": lambda rng: Oled1306(),
        "pid": lambda rng: Pid(),
        "i2c_pass": lambda rng: I2cPass(),
    }
)
"""Factories of simulated modules by kind; each takes the board's seeded RNG."""
