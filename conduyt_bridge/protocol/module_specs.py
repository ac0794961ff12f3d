"""The shapes of the module catalog: wire types, argument, command, event and module
specifications, and the command and event codes of every built-in module (`docs/protocol.md`
§8, §4.2). The entries themselves are in `conduyt_bridge.protocol.module_catalog`; encoding
and decoding in `conduyt_bridge.protocol.modules`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from conduyt_bridge.protocol.constants import Capability, PacketType
from conduyt_bridge.protocol.errors import ProtocolError


class ModuleArgumentError(ProtocolError):
    """A module command or argument the host refuses to encode (unknown, missing, bad value).

    The message names the command as `module.command`, e.g.
    `servo.write: angle must be an integer 0..180, got 200`.
    """


class WireType(StrEnum):
    """How one MOD_CMD argument is laid out on the wire (§8, little-endian)."""

    U8 = "u8"
    """1 byte, 0..255."""
    U16 = "u16"
    """2 bytes, u16le, 0..65535."""
    I32 = "i32"
    """4 bytes, i32le."""
    F32 = "f32"
    """4 bytes, IEEE-754 binary32 little-endian, finite."""
    BYTES = "bytes"
    """Raw bytes to the end of the payload (last argument only)."""
    TEXT = "text"
    """UTF-8 text to the end of the payload, no length, no NUL (last argument only)."""


class ReplyKind(IntEnum):
    """What a built-in module sends back for a command: the reply's TYPE byte (§8)."""

    ACK = PacketType.ACK
    MOD_RESP = PacketType.MOD_RESP


class ServoCommand(IntEnum):
    """`servo` command codes (§8.1)."""

    ATTACH = 0x01
    WRITE = 0x02
    WRITE_US = 0x03
    DETACH = 0x04


class NeoPixelCommand(IntEnum):
    """`neopixel` command codes (§8.2)."""

    BEGIN = 0x01
    SET_PIXEL = 0x02
    SET_RANGE = 0x03
    FILL = 0x04
    SHOW = 0x05
    BRIGHTNESS = 0x06


class DhtCommand(IntEnum):
    """`dht` command codes (§8.3)."""

    BEGIN = 0x01
    READ = 0x02


class EncoderCommand(IntEnum):
    """`encoder` command codes (§8.4)."""

    ATTACH = 0x01
    READ = 0x02
    RESET = 0x03


class EncoderEvent(IntEnum):
    """`encoder` MOD_EVENT codes (§8.4)."""

    TICK = 0x01


class StepperCommand(IntEnum):
    """`stepper` command codes (§8.5)."""

    CONFIG = 0x01
    MOVE = 0x02
    MOVE_TO = 0x03
    STOP = 0x04


class StepperEvent(IntEnum):
    """`stepper` MOD_EVENT codes (§8.5)."""

    DONE = 0x01


class OledCommand(IntEnum):
    """`oled1306` command codes (§8.6)."""

    BEGIN = 0x01
    CLEAR = 0x02
    TEXT = 0x03
    RECT = 0x04
    BITMAP = 0x05
    SHOW = 0x06


class PidCommand(IntEnum):
    """`pid` command codes (§8.7)."""

    CONFIG = 0x01
    SET_TARGET = 0x02
    SET_INPUT = 0x03
    SET_OUTPUT = 0x04
    ENABLE = 0x05


OLED_TEXT_MAX_BYTES = 63
"""The oled1306 `text` command draws at most this many bytes of its text (§8.6)."""

_TYPE_RANGE: dict[WireType, tuple[int, int]] = {
    WireType.U8: (0, 0xFF),
    WireType.U16: (0, 0xFFFF),
    WireType.I32: (-(2**31), 2**31 - 1),
}
STRUCT_FORMATS = {WireType.U8: "<B", WireType.U16: "<H", WireType.I32: "<i", WireType.F32: "<f"}
"""`struct` format of each fixed-size wire type (little-endian, §4.2)."""

Fields = dict[str, object]
"""Decoded MOD_RESP / MOD_EVENT data: field name → value (units in the name or the doc)."""


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One MOD_CMD argument, in wire order.

    `min`/`max` are inclusive value bounds for numbers (None = the wire type's range; for
    F32 any finite float32); for TEXT, `max` is the limit in UTF-8 bytes. Length rules of
    BYTES that depend on other arguments live in `CommandSpec.validate`.
    `default` is sent when the caller leaves the argument out (None = required, unless
    `optional`, in which case nothing is sent: only for a trailing argument such as
    neopixel's `w`). `choices` restricts an integer to listed values. `accepts_bool`
    lets a flag argument take true/false (sent as 1/0); other numbers refuse bools.
    `pin` marks an argument that is a pin number (HELLO pin index, §6.1) with the
    capability bits (§5.2) the pin must have, all of them (None = not a pin); `no_pin` is
    a value meaning "no pin", which is not checked (stepper en_pin 255).
    """

    name: str
    type: WireType
    min: int | float | None = None
    max: int | float | None = None
    default: int | float | None = None
    doc: str = ""
    optional: bool = False
    choices: tuple[int, ...] | None = None
    accepts_bool: bool = False
    pin: Capability | None = None
    no_pin: int | None = None

    @property
    def required(self) -> bool:
        """True if the caller must supply this argument (no default, not optional)."""
        return self.default is None and not self.optional

    @property
    def bounds(self) -> tuple[int, int] | None:
        """Inclusive integer range for U8/U16/I32 (own bounds or the wire type's), else None."""
        if self.type not in _TYPE_RANGE:
            return None
        lo, hi = _TYPE_RANGE[self.type]
        return (
            lo if self.min is None else int(self.min),
            hi if self.max is None else int(self.max),
        )


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One module command (§8): name, code, arguments in wire order and reply kind.

    `module` is the owning module's HELLO name. For `reply == MOD_RESP`, `resp_size` is the
    number of data bytes after the module_id byte and `decode_resp` turns them into fields.
    `validate` (if any) checks the arguments as a whole and returns an error message.
    """

    name: str
    code: int
    args: tuple[ArgSpec, ...] = ()
    reply: ReplyKind = ReplyKind.ACK
    doc: str = ""
    module: str = ""
    resp_size: int = 0
    decode_resp: Callable[[bytes], Fields] | None = field(default=None, repr=False)
    validate: Callable[[Mapping[str, object]], str | None] | None = field(default=None, repr=False)

    @property
    def qualified_name(self) -> str:
        """`"servo.write"`."""
        return f"{self.module}.{self.name}"

    @property
    def arg_names(self) -> tuple[str, ...]:
        """Argument names in wire order."""
        return tuple(a.name for a in self.args)

    @property
    def pin_args(self) -> tuple[ArgSpec, ...]:
        """The arguments that are pin numbers (`ArgSpec.pin` set), in wire order."""
        return tuple(a for a in self.args if a.pin is not None)


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One MOD_EVENT of a module: code, exact data size after the event code, decoder."""

    name: str
    code: int
    data_size: int
    decode: Callable[[bytes], Fields] = field(repr=False)
    doc: str = ""


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """A built-in module as advertised in HELLO_RESP (§6.1, §8): its commands and events."""

    name: str
    commands: Mapping[str, CommandSpec]
    events: Mapping[int, EventSpec]
    doc: str = ""

    def command(self, name: str) -> CommandSpec:
        """The command called `name`. Raises ModuleArgumentError naming the known commands."""
        try:
            return self.commands[name]
        except KeyError:
            known = ", ".join(self.commands) or "none"
            raise ModuleArgumentError(
                f"{self.name}: unknown command {name!r} (expected {known})"
            ) from None

    def command_by_code(self, code: int) -> CommandSpec | None:
        """The command with MOD_CMD code `code`, or None."""
        return next((c for c in self.commands.values() if c.code == code), None)
