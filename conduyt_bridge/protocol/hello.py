"""HELLO_RESP payload: parse and build, layout per `docs/protocol.md` §6.

The board describes itself once per handshake: firmware name and version, mcu_id, pins
with capability bits, bus counts, max_payload, modules and datastreams. Parsing is
tolerant the way §6.4 asks: every read is bounds-checked, full-width name fields without
a NUL are accepted, trailing bytes are ignored, and a truncated payload yields what could
be parsed plus a list of problems instead of an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conduyt_bridge.protocol.constants import (
    PIN_MODE_CAPABILITY,
    Capability,
    DatastreamType,
    PinMode,
)
from conduyt_bridge.protocol.errors import HelloParseError

FIRMWARE_NAME_SIZE = 16
MODULE_NAME_SIZE = 8
DATASTREAM_NAME_SIZE = 16
UNIT_SIZE = 8
MCU_ID_SIZE = 8
DATASTREAM_DESCRIPTOR_SIZE = 28
FIXED_HEADER_SIZE = 29
"""Bytes before the pin table: name 16, version 3, mcu_id 8, ota 1, pin_count 1 (§6.1)."""


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace")


def _field(text: str, size: int, what: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > size:
        raise ValueError(f"{what} {text!r} is {len(raw)} bytes; the field holds {size}")
    return raw.ljust(size, b"\x00")


@dataclass(frozen=True, slots=True)
class PinCapability:
    """One pin of the board: its index (the number commands use, §4.2) and capability bits."""

    pin: int
    capabilities: Capability

    def supports(self, mode: PinMode) -> bool:
        """True if the pin has the capability bit that `mode` needs (§5.2, §5.3)."""
        return bool(self.capabilities & PIN_MODE_CAPABILITY[mode])

    @property
    def modes(self) -> tuple[PinMode, ...]:
        """The pin modes this pin supports, in code order."""
        return tuple(m for m in PinMode if self.supports(m))

    @property
    def capability_names(self) -> tuple[str, ...]:
        """Lower-case names of the set capability bits (`("digital_in", "pwm_out")`)."""
        return tuple(
            str(c.name).lower() for c in Capability if c and c in self.capabilities and c.name
        )


@dataclass(frozen=True, slots=True)
class ModuleDescriptor:
    """A module loaded on the board (§6.1): `module_id` is the MOD_CMD id."""

    module_id: int
    name: str
    version: tuple[int, int] = (1, 0)
    pins: tuple[int, ...] = ()

    @property
    def version_major(self) -> int:
        """`version[0]` (conduyt-py's field name)."""
        return self.version[0]

    @property
    def version_minor(self) -> int:
        """`version[1]` (conduyt-py's field name)."""
        return self.version[1]


@dataclass(frozen=True, slots=True)
class DatastreamDescriptor:
    """A declared datastream (§6.1); `index` (0..D-1) addresses it in DS_WRITE/DS_EVENT."""

    index: int
    name: str
    type: DatastreamType | int
    unit: str = ""
    writable: bool = False
    retain: bool = False
    pin_ref: int = 0xFF

    @property
    def known_type(self) -> DatastreamType | None:
        """The type as a DatastreamType, None for a code this protocol does not define."""
        if isinstance(self.type, DatastreamType):
            return self.type
        try:
            return DatastreamType(self.type)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class HelloResp:
    """A board's self-description (HELLO_RESP payload, §6.1).

    `problems` lists what could not be parsed (empty for a clean payload); `truncated` is
    True when the payload ended before its counts were satisfied (§6.4).
    """

    firmware_name: str
    firmware_version: tuple[int, int, int]
    mcu_id: bytes
    ota_capable: bool = False
    pins: tuple[PinCapability, ...] = ()
    i2c_buses: int = 0
    spi_buses: int = 0
    uart_count: int = 0
    max_payload: int = 0
    modules: tuple[ModuleDescriptor, ...] = ()
    datastreams: tuple[DatastreamDescriptor, ...] = ()
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def truncated(self) -> bool:
        """True if parsing ran out of bytes (§6.4: an oversize HELLO is corrupted)."""
        return bool(self.problems)

    @property
    def version_string(self) -> str:
        """Firmware version as `"1.2.3"`."""
        return ".".join(str(v) for v in self.firmware_version)

    @property
    def mcu_id_hex(self) -> str:
        """mcu_id as 16 lower-case hex digits (not unique on AVR boards, §6.1)."""
        return self.mcu_id.hex()

    @property
    def pin_count(self) -> int:
        """Number of pins advertised."""
        return len(self.pins)

    def pin(self, n: int) -> PinCapability | None:
        """Pin `n`, or None if the board has no such pin."""
        return self.pins[n] if 0 <= n < len(self.pins) else None

    def supports(self, pin: int, mode: PinMode) -> bool:
        """True if pin `pin` exists and has the capability `mode` needs."""
        p = self.pin(pin)
        return p is not None and p.supports(mode)

    def datastream(self, index: int) -> DatastreamDescriptor | None:
        """Datastream at `index`, or None."""
        return self.datastreams[index] if 0 <= index < len(self.datastreams) else None

    def datastream_by_name(self, name: str) -> DatastreamDescriptor | None:
        """The first datastream called `name`, or None."""
        return next((d for d in self.datastreams if d.name == name), None)

    def module(self, module_id: int) -> ModuleDescriptor | None:
        """Module with MOD_CMD id `module_id`, or None."""
        return next((m for m in self.modules if m.module_id == module_id), None)

    def module_by_name(self, name: str) -> ModuleDescriptor | None:
        """The first module called `name`, or None."""
        return next((m for m in self.modules if m.name == name), None)

    def identity(self) -> tuple[object, ...]:
        """What makes a board "the same board" across reconnects: firmware, mcu_id, layout.

        A change of any of these means another board (or a re-flash) sits on the port.
        """
        return (
            self.firmware_name,
            self.firmware_version,
            self.mcu_id,
            self.pins,
            self.modules,
            self.datastreams,
            self.max_payload,
        )

    def encode(self) -> bytes:
        """Build the HELLO_RESP payload (36 + N + Σ(12 + kᵢ) + 28·D bytes, §6.1).

        Raises ValueError if a name does not fit its field or a count exceeds 255.
        """
        if len(self.pins) > 255 or len(self.modules) > 255 or len(self.datastreams) > 255:
            raise ValueError("pin, module and datastream counts must each be at most 255")
        mcu = self.mcu_id[:MCU_ID_SIZE].ljust(MCU_ID_SIZE, b"\x00")
        out = bytearray(_field(self.firmware_name, FIRMWARE_NAME_SIZE, "firmware name"))
        out += bytes(self.firmware_version)
        out += mcu
        out += bytes((1 if self.ota_capable else 0, len(self.pins)))
        out += bytes(int(p.capabilities) & 0xFF for p in self.pins)
        out += bytes((self.i2c_buses, self.spi_buses, self.uart_count))
        out += self.max_payload.to_bytes(2, "little")
        out.append(len(self.modules))
        for m in self.modules:
            out.append(m.module_id)
            out += _field(m.name, MODULE_NAME_SIZE, "module name")
            out += bytes((m.version[0], m.version[1], len(m.pins)))
            out += bytes(m.pins)
        out.append(len(self.datastreams))
        for d in self.datastreams:
            out += _field(d.name, DATASTREAM_NAME_SIZE, "datastream name")
            out.append(int(d.type))
            out += _field(d.unit, UNIT_SIZE, "unit")
            out += bytes((1 if d.writable else 0, d.pin_ref, 1 if d.retain else 0))
        return bytes(out)


def parse_hello(payload: bytes) -> HelloResp:
    """Parse a HELLO_RESP payload (§6.1), tolerating truncation as §6.4 recommends.

    Returns a HelloResp; when the payload runs out after the fixed header, the result holds
    everything parsed so far and `problems` says what was missing.

    Raises HelloParseError when even the 29-byte fixed header is incomplete.
    """
    if len(payload) < FIXED_HEADER_SIZE:
        raise HelloParseError(
            f"HELLO_RESP payload of {len(payload)} bytes is shorter than its "
            f"{FIXED_HEADER_SIZE}-byte fixed header"
        )
    name = _text(payload[0:16])
    version = (payload[16], payload[17], payload[18])
    mcu_id = bytes(payload[19:27])
    ota = payload[27] == 1
    pin_count = payload[28]
    pos = FIXED_HEADER_SIZE
    problems: list[str] = []
    n = len(payload)

    base = HelloResp(name, version, mcu_id, ota)
    caps = payload[pos : pos + pin_count]
    pins = tuple(PinCapability(i, Capability(c)) for i, c in enumerate(caps))
    if len(caps) < pin_count:
        problems.append(f"pin table: {pin_count} pins declared, {len(caps)} present")
        return _partial(base, problems, pins=pins)
    pos += pin_count
    if n < pos + 5:
        problems.append("bus counts and max_payload missing")
        return _partial(base, problems, pins=pins)
    i2c, spi, uart = payload[pos], payload[pos + 1], payload[pos + 2]
    max_payload = payload[pos + 3] | (payload[pos + 4] << 8)
    pos += 5
    head = dict(pins=pins, i2c_buses=i2c, spi_buses=spi, uart_count=uart, max_payload=max_payload)

    modules: list[ModuleDescriptor] = []
    if n < pos + 1:
        problems.append("module count missing")
        return _partial(base, problems, **head)
    module_count = payload[pos]
    pos += 1
    for i in range(module_count):
        if n < pos + 12:
            problems.append(f"module {i} of {module_count}: descriptor cut short")
            return _partial(base, problems, modules=tuple(modules), **head)
        k = payload[pos + 11]
        if n < pos + 12 + k:
            problems.append(f"module {i} of {module_count}: pin list cut short")
            return _partial(base, problems, modules=tuple(modules), **head)
        modules.append(
            ModuleDescriptor(
                module_id=payload[pos],
                name=_text(payload[pos + 1 : pos + 9]),
                version=(payload[pos + 9], payload[pos + 10]),
                pins=tuple(payload[pos + 12 : pos + 12 + k]),
            )
        )
        pos += 12 + k

    datastreams: list[DatastreamDescriptor] = []
    if n < pos + 1:
        problems.append("datastream count missing")
        return _partial(base, problems, modules=tuple(modules), **head)
    ds_count = payload[pos]
    pos += 1
    for i in range(ds_count):
        if n < pos + DATASTREAM_DESCRIPTOR_SIZE:
            problems.append(f"datastream {i} of {ds_count}: descriptor cut short")
            break
        raw_type = payload[pos + 16]
        try:
            ds_type: DatastreamType | int = DatastreamType(raw_type)
        except ValueError:
            ds_type = raw_type
        datastreams.append(
            DatastreamDescriptor(
                index=i,
                name=_text(payload[pos : pos + 16]),
                type=ds_type,
                unit=_text(payload[pos + 17 : pos + 25]),
                writable=payload[pos + 25] == 1,
                pin_ref=payload[pos + 26],
                retain=payload[pos + 27] == 1,
            )
        )
        pos += DATASTREAM_DESCRIPTOR_SIZE
    return _partial(base, problems, modules=tuple(modules), datastreams=tuple(datastreams), **head)


def _partial(base: HelloResp, problems: list[str], **kwargs: object) -> HelloResp:
    from dataclasses import replace

    return replace(base, problems=tuple(problems), **kwargs)  # type: ignore[arg-type]
