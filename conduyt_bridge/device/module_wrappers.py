"""conduyt-py's module classes (`ConduytServo`, …) on the module catalog
(`docs/library.md` §3).

Each wrapper finds its module in the board's HELLO_RESP, by `module_id` or, when none is
given, by the module's name (`servo`, `neopixel`, `dht`, `encoder`, `stepper`,
`oled1306`, `pid`), and builds every MOD_CMD from the catalog's command codes and
argument specs (`conduyt_bridge/protocol/modules.py`, `docs/protocol.md` §8): arguments
are range-checked and sent complete (the firmware reads missing bytes as 0, §4.2), and
pin arguments are checked against the board's capabilities (Q12), all before anything
is sent. Given a `ConduytDeviceSync`, the constructor returns a proxy of the wrapper whose
methods block and return their results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self, cast

from conduyt_bridge.device.board_context import BoardContext
from conduyt_bridge.device.capabilities import check_module_args
from conduyt_bridge.device.conduyt_device import ConduytDevice
from conduyt_bridge.device.conduyt_sync import ConduytDeviceSync
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytPayloadError,
    ErrorName,
)
from conduyt_bridge.protocol.commands import mod_cmd, parse_mod_resp
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.errors import PayloadDecodeError
from conduyt_bridge.protocol.hello import HelloResp, ModuleDescriptor
from conduyt_bridge.protocol.modules import (
    CATALOG,
    Fields,
    ModuleArgumentError,
    ReplyKind,
    decode_resp,
    encode_args,
)


class ConduytModule:
    """Base of the module wrappers: `Wrapper(device, module_id=None)`.

    Every command raises, before anything is sent: ConduytDisconnectedError (not
    connected), ConduytCapabilityError `MODULE_NOT_LOADED` (no such module, or another
    kind at that id), `INVALID_PIN` or `PIN_MODE_UNSUPPORTED` (a pin argument the board
    cannot serve), ConduytPayloadError `BAD_ARGUMENT` (a value outside the catalog's
    range: `servo.write: angle must be an integer 0..180, got 200`). After sending:
    ConduytNAKError, ConduytTimeoutError, ConduytDisconnectedError, ConduytPayloadError
    `BAD_REPLY` (a MOD_RESP that does not decode). The constructor raises TypeError for
    anything but a `ConduytDevice` or `ConduytDeviceSync`; given the latter it returns a
    blocking proxy that passes `isinstance` checks for the wrapper's class.
    """

    MODULE: ClassVar[str] = ""
    """The module's name in HELLO_RESP and in the catalog."""

    def __new__(
        cls, device: ConduytDevice | ConduytDeviceSync, module_id: int | None = None
    ) -> Self:
        if isinstance(device, ConduytDeviceSync):
            inner = cls(device._device, module_id)
            return cast(Self, device.blocking(inner))
        return super().__new__(cls)

    def __init__(
        self, device: ConduytDevice | ConduytDeviceSync, module_id: int | None = None
    ) -> None:
        if not isinstance(device, ConduytDevice):  # a sync device got a proxy from __new__
            raise TypeError(
                f"{type(self).__name__} takes a ConduytDevice or a ConduytDeviceSync, "
                f"not {type(device).__module__}.{type(device).__qualname__}"
            )
        self._context: BoardContext = device._context
        self._module_id = module_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(module_id={self._module_id!r})"

    @property
    def module_id(self) -> int:
        """The MOD_CMD id of the module (looked up by name when none was given).

        Raises ConduytDisconnectedError before the first handshake,
        ConduytCapabilityError `MODULE_NOT_LOADED`.
        """
        return self._find(self._context.require_hello()).module_id

    def _find(self, hello: HelloResp) -> ModuleDescriptor:
        loaded = ", ".join(f"{m.module_id} {m.name}" for m in hello.modules) or "none"
        if self._module_id is None:
            module = hello.module_by_name(self.MODULE)
            if module is None:
                raise ConduytCapabilityError(
                    f"this board has no {self.MODULE} module (modules: {loaded})",
                    ErrorName.MODULE_NOT_LOADED,
                )
            return module
        module = hello.module(self._module_id)
        if module is None:
            raise ConduytCapabilityError(
                f"no module with id {self._module_id} on this board (modules: {loaded})",
                ErrorName.MODULE_NOT_LOADED,
            )
        if module.name != self.MODULE:
            raise ConduytCapabilityError(
                f"module {self._module_id} on this board is {module.name}, not "
                f"{self.MODULE} (modules: {loaded})",
                ErrorName.MODULE_NOT_LOADED,
            )
        return module

    async def _command(self, command: str, **args: object) -> Fields:
        """Send `command` with `args` (catalog names); returns the decoded MOD_RESP fields
        ({} for a command answered with ACK)."""
        hello = self._context.require_hello()
        module = self._find(hello)
        spec = CATALOG[self.MODULE].command(command)
        try:
            data = encode_args(spec, args)
        except ModuleArgumentError as exc:
            raise ConduytPayloadError(str(exc), ErrorName.BAD_ARGUMENT) from None
        check_module_args(hello, spec, data)
        payload = mod_cmd(module.module_id, spec.code, data)
        reply = await self._context.request(PacketType.MOD_CMD, payload)
        if spec.reply is not ReplyKind.MOD_RESP:
            return {}
        try:
            if reply.type != PacketType.MOD_RESP:
                raise PayloadDecodeError(f"expected MOD_RESP, got packet type 0x{reply.type:02x}")
            _, body = parse_mod_resp(reply.payload)
            return decode_resp(self.MODULE, command, body)
        except PayloadDecodeError as exc:
            raise ConduytPayloadError(
                f"{spec.qualified_name}: {exc}", ErrorName.BAD_REPLY
            ) from None


class ConduytServo(ConduytModule):
    """A hobby servo (`servo`, `docs/protocol.md` §8.1). Pulse widths in µs, angles in
    degrees. Errors: see `ConduytModule`."""

    MODULE = "servo"

    async def attach(self, pin: int, min_us: int = 544, max_us: int = 2400) -> None:
        """Attach to `pin` (needs DIGITAL_OUT) with pulses of `min_us`..`max_us` µs."""
        await self._command("attach", pin=pin, min_us=min_us, max_us=max_us)

    async def write(self, angle: int) -> None:
        """Move to `angle` degrees, 0..180."""
        await self._command("write", angle=angle)

    async def write_microseconds(self, us: int) -> None:
        """Set the pulse width directly, µs (0..65535)."""
        await self._command("write_us", pulse_us=us)

    async def detach(self) -> None:
        """Stop driving the servo."""
        await self._command("detach")


class ConduytNeoPixel(ConduytModule):
    """An addressable LED strip (`neopixel`, §8.2). Colours 0..255 per channel; drawing
    changes the buffer, `show()` pushes it. Errors: see `ConduytModule`."""

    MODULE = "neopixel"

    async def begin(self, pin: int, count: int, pixel_type: int = 0) -> None:
        """Initialise `count` pixels on data `pin` (needs DIGITAL_OUT); `pixel_type` is the
        Adafruit type byte, 0 = GRB 800 kHz."""
        await self._command("begin", pin=pin, count=count, type=pixel_type)

    async def set_pixel(self, index: int, r: int, g: int, b: int, w: int = 0) -> None:
        """Set pixel `index` (0-based); `w` (RGBW strips) is sent only when non-zero."""
        extra = {"w": w} if w else {}
        await self._command("set_pixel", index=index, r=r, g=g, b=b, **extra)

    async def set_range(self, start: int, count: int, r: int, g: int, b: int) -> None:
        """Set `count` pixels from `start`."""
        await self._command("set_range", start=start, count=count, r=r, g=g, b=b)

    async def fill(self, r: int, g: int, b: int, w: int = 0) -> None:
        """Set every pixel; `w` is sent only when non-zero."""
        extra = {"w": w} if w else {}
        await self._command("fill", r=r, g=g, b=b, **extra)

    async def show(self) -> None:
        """Push the buffer to the strip."""
        await self._command("show")

    async def set_brightness(self, brightness: int) -> None:
        """Set the global brightness, 0..255 (also pushes to the strip)."""
        await self._command("brightness", level=brightness)


@dataclass(frozen=True, slots=True)
class DHTReading:
    """A DHT reading: `temperature` in °C, `humidity` in %RH."""

    temperature: float
    humidity: float


class ConduytDHT(ConduytModule):
    """A DHT11/DHT22 sensor (`dht`, §8.3). Errors: see `ConduytModule`; `read()` before
    `begin()` is NAKed by the board."""

    MODULE = "dht"

    async def begin(self, pin: int, sensor_type: int = 22) -> None:
        """Initialise the sensor on `pin` (needs DIGITAL_IN and DIGITAL_OUT); 22 or 11."""
        await self._command("begin", pin=pin, sensor_type=sensor_type)

    async def read(self) -> DHTReading:
        """Read temperature (°C) and humidity (%RH)."""
        fields = await self._command("read")
        return DHTReading(
            float(cast(float, fields["temperature_c"])),
            float(cast(float, fields["humidity_percent"])),
        )


class ConduytEncoder(ConduytModule):
    """A quadrature encoder (`encoder`, §8.4); its ticks arrive as `ModuleEvent`s
    (`tick`: count, delta, steps). Errors: see `ConduytModule`."""

    MODULE = "encoder"

    async def attach(self, pin_a: int, pin_b: int) -> None:
        """Attach to channels A and B (need DIGITAL_IN) and reset the count."""
        await self._command("attach", pin_a=pin_a, pin_b=pin_b)

    async def read(self) -> int:
        """The count, steps."""
        fields = await self._command("read")
        return int(cast(int, fields["count"]))

    async def reset(self) -> None:
        """Set the count to 0."""
        await self._command("reset")


class ConduytStepper(ConduytModule):
    """A step/dir stepper driver (`stepper`, §8.5); a finished move arrives as a
    `ModuleEvent` (`done`: position, steps). Errors: see `ConduytModule`."""

    MODULE = "stepper"

    async def config(
        self, step_pin: int, dir_pin: int, en_pin: int = 0xFF, steps_per_rev: int = 200
    ) -> None:
        """Configure the driver pins (need DIGITAL_OUT; `en_pin` 255 = none)."""
        await self._command(
            "config",
            step_pin=step_pin,
            dir_pin=dir_pin,
            en_pin=en_pin,
            steps_per_rev=steps_per_rev,
        )

    async def move(self, steps: int, speed_hz: int = 0) -> None:
        """Move `steps` relative (sign = direction) at `speed_hz` steps/s (0 = 1000)."""
        await self._command("move", steps=steps, speed_hz=speed_hz)

    async def move_to(self, position: int, speed_hz: int = 0) -> None:
        """Move to absolute `position`, steps, at `speed_hz` steps/s (0 = 1000)."""
        await self._command("move_to", position=position, speed_hz=speed_hz)

    async def stop(self) -> None:
        """Stop at once (no `done` event)."""
        await self._command("stop")


class ConduytOLED(ConduytModule):
    """An SSD1306 OLED on I2C (`oled1306`, §8.6); coordinates and sizes in pixels,
    drawing is white, `show()` flushes. Errors: see `ConduytModule`."""

    MODULE = "oled1306"

    async def begin(self, width: int = 128, height: int = 64, i2c_addr: int = 0x3C) -> None:
        """Initialise the panel (7-bit I2C address)."""
        await self._command("begin", width=width, height=height, i2c_addr=i2c_addr)

    async def clear(self) -> None:
        """Clear the buffer."""
        await self._command("clear")

    async def text(self, x: int, y: int, size: int, text: str) -> None:
        """Draw `text` (at most 63 bytes of UTF-8) at scale `size`."""
        await self._command("text", x=x, y=y, size=size, text=text)

    async def draw_rect(self, x: int, y: int, w: int, h: int, fill: bool = False) -> None:
        """Draw a rectangle, filled or as an outline."""
        await self._command("rect", x=x, y=y, w=w, h=h, fill=fill)

    async def draw_bitmap(self, x: int, y: int, w: int, h: int, data: bytes) -> None:
        """Draw a 1-bit bitmap: ceil(w/8)*h bytes, row-major, MSB first."""
        await self._command("bitmap", x=x, y=y, w=w, h=h, data=data)

    async def show(self) -> None:
        """Flush the buffer to the panel."""
        await self._command("show")


class ConduytPID(ConduytModule):
    """A PID loop on an analog input and a PWM output every 100 ms (`pid`, §8.7).
    Errors: see `ConduytModule`."""

    MODULE = "pid"

    async def config(self, kp: float, ki: float, kd: float) -> None:
        """Set the gains (ki per second, kd in seconds)."""
        await self._command("config", kp=kp, ki=ki, kd=kd)

    async def set_target(self, value: float) -> None:
        """Set the setpoint, percent of ADC full scale."""
        await self._command("set_target", value=value)

    async def set_input(self, pin: int) -> None:
        """Choose the input pin (needs ANALOG_IN)."""
        await self._command("set_input", pin=pin)

    async def set_output(self, pin: int) -> None:
        """Choose the output pin (needs PWM_OUT)."""
        await self._command("set_output", pin=pin)

    async def enable(self) -> None:
        """Enable the loop (resets its I and D state)."""
        await self._command("enable", flag=1)

    async def disable(self) -> None:
        """Disable the loop."""
        await self._command("enable", flag=0)
