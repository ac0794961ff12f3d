"""Board profiles: what a simulated board is (its HELLO_RESP) and what its sketch does.

A `Profile` holds everything the firmware advertises in HELLO_RESP (`docs/protocol.md` §6)
plus the simulation recipe: per-datastream push period and value model, ADC resolution and
the platform limits of §6.5. Profiles are immutable; build variants with
`dataclasses.replace` or `with_push_interval`.

Known profiles (`PROFILES`, `docs/architecture.md` §9):

* `thermostat` — ESP32 sketch: temperature (°C) and humidity (%) pushed every second,
  writable setpoint and heater; OTA-capable build.
* `kitchen` — ESP32 with modules servo (id 0), neopixel (id 1), dht (id 2) and datastreams
  light (UINT8 %, writable), door_open (BOOL), status (STRING).
* `uno` — Arduino Uno R3: 20 pins with the real capabilities, no modules, no datastreams.
* `workshop` — RP2040 with modules encoder (0), stepper (1), oled1306 (2), pid (3),
  i2c_pass (4) and datastreams rpm (UINT16) and enabled (BOOL, writable).
* `garage` — ESP32 for declared entities: relay, door contact, lamp, potentiometer, bell,
  servo, neopixel, dht, encoder, stepper, pid (`docs/entities.md` §7).
* `firehose` — one FLOAT32 counter pushed on every tick, for throughput benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from conduyt_bridge.protocol.constants import Capability, DatastreamType
from conduyt_bridge.protocol.hello import (
    DatastreamDescriptor,
    HelloResp,
    ModuleDescriptor,
    PinCapability,
)
from conduyt_bridge.simulator.models import (
    Choice,
    Counter,
    Hold,
    RandomWalk,
    Thermal,
    Toggle,
    ValueModel,
)
from conduyt_bridge.simulator.modules import MODULE_KINDS

DI = Capability.DIGITAL_IN
DO = Capability.DIGITAL_OUT
PWM = Capability.PWM_OUT
AI = Capability.ANALOG_IN
SDA = Capability.I2C_SDA
SCL = Capability.I2C_SCL
SPI = Capability.SPI
INT = Capability.INTERRUPT


@dataclass(frozen=True, slots=True)
class DatastreamSpec:
    """One declared datastream and how the sketch feeds it.

    Attributes:
        name: datastream name (≤ 16 UTF-8 bytes, §6.1).
        type: declared type (§5.5).
        unit: unit text (≤ 8 bytes), may be empty.
        writable: host may DS_WRITE it; advertised with retain = 1 (§6.2).
        push_interval_s: seconds between the sketch's `writeDatastream` calls; None =
            never pushed on its own; 0 = pushed on every tick (as fast as the runner goes).
        model: how the value evolves between pushes; None = `Hold` of the type's zero.
    """

    name: str
    type: DatastreamType
    unit: str = ""
    writable: bool = False
    push_interval_s: float | None = None
    model: ValueModel | None = None


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """A module registered by the sketch; its MOD_CMD id is its position in the profile.

    `kind` picks the simulated behaviour (a key of `modules.MODULE_KINDS`: servo,
    neopixel, dht, encoder, stepper, oled1306, pid, i2c_pass); `name` is what HELLO_RESP
    advertises (default: the kind).
    """

    kind: str
    name: str | None = None
    version: tuple[int, int] = (1, 0)

    @property
    def advertised_name(self) -> str:
        """The name in HELLO_RESP."""
        return self.name if self.name is not None else self.kind


@dataclass(frozen=True, slots=True)
class Profile:
    """A simulated board: HELLO_RESP contents plus simulation parameters.

    Attributes:
        name: profile key (`"thermostat"`).
        firmware_name: ≤ 16 bytes; firmware_version: (major, minor, patch).
        mcu_id: up to 8 bytes, zero-padded in HELLO_RESP (§6.1).
        pins: capability bits per pin index 0..N-1 (§5.2).
        i2c_buses, spi_buses, uart_count: bus counts advertised (§6.1).
        max_payload: `CONDUYT_PACKET_BUF_SIZE` in bytes (§1.5): bounds what the board
            accepts and what it can send.
        max_subscriptions: `CONDUYT_MAX_SUBSCRIPTIONS` (slots leak, quirk Q6).
        ota_capable: built with `CONDUYT_OTA` on ESP32 (OTA commands work, §4.2).
        adc_bits: ADC resolution of analog reads (10 on AVR, 12 on ESP32/RP2040).
        analog_channel_base: pin index read for STREAM_START bit 0: the firmware passes
            bit p straight to `analogRead(p)`, which on AVR is channel p = pin A0 + p (14
            on the Uno); on ESP32 it is GPIO p (base 0).
        modules: registered modules, MOD_CMD id = position.
        datastreams: declared datastreams, ds_index = position.
        description: one line for `--help` and logs.

    Raises ValueError if a name does not fit its field, a count exceeds the platform
    limits, or the HELLO_RESP would not fit `max_payload` (the firmware would then send a
    corrupted one, §6.4, which this simulator does not model).
    """

    name: str
    firmware_name: str
    firmware_version: tuple[int, int, int]
    mcu_id: bytes
    pins: tuple[Capability, ...]
    i2c_buses: int = 0
    spi_buses: int = 0
    uart_count: int = 1
    max_payload: int = 512
    max_subscriptions: int = 16
    ota_capable: bool = False
    adc_bits: int = 12
    analog_channel_base: int = 0
    modules: tuple[ModuleSpec, ...] = ()
    datastreams: tuple[DatastreamSpec, ...] = ()
    description: str = ""
    _hello: HelloResp = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.mcu_id) > 8:
            raise ValueError(f"mcu_id is {len(self.mcu_id)} bytes; HELLO_RESP holds 8")
        if not 1 <= self.max_payload <= 0xFFFF:
            raise ValueError(f"max_payload {self.max_payload} is not in 1..65535")
        if not 1 <= self.adc_bits <= 16:
            raise ValueError(f"adc_bits {self.adc_bits} is not in 1..16")
        if self.max_subscriptions < 0:
            raise ValueError("max_subscriptions must not be negative")
        for m in self.modules:
            if m.kind not in MODULE_KINDS:
                known = ", ".join(sorted(MODULE_KINDS))
                raise ValueError(f"unknown module kind {m.kind!r}; known kinds: {known}")
        names = [d.name for d in self.datastreams]
        if len(set(names)) != len(names):
            raise ValueError(f"datastream names must be unique: {names}")
        hello = self._build_hello()
        size = len(hello.encode())  # raises ValueError for oversize names and counts
        if size > self.max_payload:
            raise ValueError(
                f"profile {self.name!r}: HELLO_RESP of {size} bytes exceeds max_payload "
                f"{self.max_payload}"
            )
        object.__setattr__(self, "_hello", hello)

    def _build_hello(self) -> HelloResp:
        return HelloResp(
            firmware_name=self.firmware_name,
            firmware_version=self.firmware_version,
            mcu_id=self.mcu_id.ljust(8, b"\x00"),
            ota_capable=self.ota_capable,
            pins=tuple(PinCapability(i, Capability(c)) for i, c in enumerate(self.pins)),
            i2c_buses=self.i2c_buses,
            spi_buses=self.spi_buses,
            uart_count=self.uart_count,
            max_payload=self.max_payload,
            # Snapshot at boot: built-in modules claim pins only after attach/begin, so
            # they advertise none (§6.3).
            modules=tuple(
                ModuleDescriptor(i, m.advertised_name, m.version, ())
                for i, m in enumerate(self.modules)
            ),
            # retain defaults to the writable flag; pin_ref is always 0xFF (§6.1, §6.2).
            datastreams=tuple(
                DatastreamDescriptor(
                    index=i,
                    name=d.name,
                    type=d.type,
                    unit=d.unit,
                    writable=d.writable,
                    retain=d.writable,
                    pin_ref=0xFF,
                )
                for i, d in enumerate(self.datastreams)
            ),
        )

    @property
    def hello(self) -> HelloResp:
        """The HELLO_RESP this profile advertises (§6.1)."""
        return self._hello

    @property
    def adc_max(self) -> int:
        """Largest raw ADC reading, e.g. 1023 for 10 bits."""
        return (1 << self.adc_bits) - 1

    @property
    def fastest_push_s(self) -> float | None:
        """Shortest datastream push period in seconds, None if nothing is pushed."""
        periods = [d.push_interval_s for d in self.datastreams if d.push_interval_s is not None]
        return min(periods) if periods else None


def with_push_interval(profile: Profile, seconds: float) -> Profile:
    """`profile` with every periodically pushed datastream pushed every `seconds` (0 = each tick).

    Datastreams the sketch never pushes on its own stay that way. Raises ValueError for a
    negative period.
    """
    if seconds < 0:
        raise ValueError(f"push interval {seconds} s is negative")
    return replace(
        profile,
        datastreams=tuple(
            replace(d, push_interval_s=seconds) if d.push_interval_s is not None else d
            for d in profile.datastreams
        ),
    )


def thermostat() -> Profile:
    """ESP32 thermostat: temperature/humidity pushed every second, setpoint and heater writable."""
    return Profile(
        name="thermostat",
        description="ESP32 thermostat: temperature, humidity, setpoint, heater",
        firmware_name="sim-thermostat",
        firmware_version=(1, 2, 0),
        mcu_id=bytes.fromhex("240ac4123456"),  # eFuse MAC + 2 zero bytes (§6.1)
        pins=(
            DI | DO | INT,  # 0
            DI | DO | PWM,  # 1 status LED
            DI | DO | PWM | INT,  # 2 heater relay
            DI | INT,  # 3 push button
            DI | AI,  # 4 light sensor
            DI | AI,  # 5 NTC thermistor
            DI | DO | SDA,  # 6
            DI | DO | SCL,  # 7
        ),
        i2c_buses=1,
        spi_buses=0,
        uart_count=1,
        max_payload=512,
        max_subscriptions=16,
        ota_capable=True,
        adc_bits=12,
        datastreams=(
            DatastreamSpec(
                "temperature",
                DatastreamType.FLOAT32,
                "celsius",
                push_interval_s=1.0,
                model=Thermal(start=21.0),
            ),
            DatastreamSpec(
                "humidity",
                DatastreamType.FLOAT32,
                "%",
                push_interval_s=1.0,
                model=RandomWalk(start=45.0, low=20.0, high=80.0, sigma_per_s=0.2),
            ),
            DatastreamSpec(
                "setpoint",
                DatastreamType.FLOAT32,
                "celsius",
                writable=True,
                model=Hold(21.0),
            ),
            DatastreamSpec("heater", DatastreamType.BOOL, writable=True, model=Hold(False)),
        ),
    )


def kitchen() -> Profile:
    """ESP32 kitchen: servo (id 0), neopixel (id 1), dht (id 2); light, door_open, status."""
    return Profile(
        name="kitchen",
        description="ESP32 kitchen: servo, neopixel, dht modules; light, door, status",
        firmware_name="sim-kitchen",
        firmware_version=(1, 0, 3),
        mcu_id=bytes.fromhex("240ac4abcdef"),
        pins=(
            DI | DO | INT,  # 0
            DI | DO | PWM | INT,  # 1 servo
            DI | DO | PWM | INT,  # 2 neopixel data
            DI | INT,  # 3 door switch
            DI | DO | INT,  # 4 dht data
            DI | DO | PWM,  # 5
            DI | DO | AI,  # 6
            DI | DO | AI,  # 7
            DI | DO | SDA,  # 8
            DI | DO | SCL,  # 9
        ),
        i2c_buses=1,
        spi_buses=1,
        uart_count=1,
        max_payload=512,
        max_subscriptions=16,
        adc_bits=12,
        modules=(ModuleSpec("servo"), ModuleSpec("neopixel"), ModuleSpec("dht")),
        datastreams=(
            DatastreamSpec(
                "light",
                DatastreamType.UINT8,
                "%",
                writable=True,
                push_interval_s=10.0,
                model=Hold(0),
            ),
            DatastreamSpec(
                "door_open",
                DatastreamType.BOOL,
                push_interval_s=2.0,
                model=Toggle(start=False, rate_per_s=0.02),
            ),
            DatastreamSpec(
                "status",
                DatastreamType.STRING,
                push_interval_s=5.0,
                model=Choice(("idle", "cooking", "cleaning"), rate_per_s=0.02),
            ),
        ),
    )


def uno() -> Profile:
    """Arduino Uno R3 (ATmega328P): 20 pins with the real capabilities, nothing else."""
    digital = DI | DO
    return Profile(
        name="uno",
        description="Arduino Uno R3: 20 pins, no modules, no datastreams",
        firmware_name="sim-uno",
        firmware_version=(1, 0, 0),
        # No EEPROM id written: the shared ATmega328P signature + zeros (§6.1, Q23).
        mcu_id=bytes.fromhex("1e950f"),
        pins=(
            digital,  # D0 RX
            digital,  # D1 TX
            digital | INT,  # D2 INT0
            digital | PWM | INT,  # D3 INT1, PWM
            digital,  # D4
            digital | PWM,  # D5
            digital | PWM,  # D6
            digital,  # D7
            digital,  # D8
            digital | PWM,  # D9
            digital | PWM | SPI,  # D10 SS
            digital | PWM | SPI,  # D11 MOSI
            digital | SPI,  # D12 MISO
            digital | SPI,  # D13 SCK
            digital | AI,  # A0 (14)
            digital | AI,  # A1
            digital | AI,  # A2
            digital | AI,  # A3
            digital | AI | SDA,  # A4 (18)
            digital | AI | SCL,  # A5 (19)
        ),
        i2c_buses=1,
        spi_buses=1,
        uart_count=1,
        max_payload=128,
        max_subscriptions=8,
        adc_bits=10,
        analog_channel_base=14,
    )


def workshop() -> Profile:
    """RP2040 workshop: encoder (0), stepper (1), oled1306 (2), pid (3), i2c_pass (4)."""
    return Profile(
        name="workshop",
        description="RP2040 workshop: encoder, stepper, oled, pid, i2c_pass; rpm, enabled",
        firmware_name="sim-workshop",
        firmware_version=(0, 9, 1),
        mcu_id=bytes.fromhex("e6614104035b2a2c"),  # RP2040 flash unique id
        pins=tuple([DI | DO | PWM | INT] * 12 + [DI | DO | AI | INT] * 3 + [DI | DO | SDA]),
        i2c_buses=1,
        spi_buses=1,
        uart_count=2,
        max_payload=512,
        max_subscriptions=16,
        adc_bits=12,
        modules=(
            ModuleSpec("encoder"),
            ModuleSpec("stepper"),
            ModuleSpec("oled1306"),
            ModuleSpec("pid"),
            ModuleSpec("i2c_pass"),
        ),
        datastreams=(
            DatastreamSpec(
                "rpm",
                DatastreamType.UINT16,
                "rpm",
                push_interval_s=1.0,
                model=RandomWalk(
                    start=1200.0, low=0.0, high=3000.0, sigma_per_s=15.0, resolution=1.0
                ),
            ),
            DatastreamSpec("enabled", DatastreamType.BOOL, writable=True, model=Hold(False)),
        ),
    )


def garage() -> Profile:
    """ESP32 garage for declared entities (`docs/entities.md` §7): a relay, a door contact,
    a lamp, a potentiometer, a bell button and six modules on the pins below."""
    return Profile(
        name="garage",
        description="ESP32 garage: relay, door, lamp, pot, bell; six modules for declared entities",
        firmware_name="sim-garage",
        firmware_version=(1, 1, 0),
        mcu_id=bytes.fromhex("240ac4600d01"),
        pins=(
            DI | DO | INT,  # 0
            DI | DO,  # 1 relay
            DI | INT,  # 2 door contact (input only)
            DI | DO | PWM,  # 3 lamp (PWM dimmer)
            DI | AI,  # 4 potentiometer
            DI | DO | PWM,  # 5 servo
            DI | DO | PWM,  # 6 neopixel data
            DI | DO,  # 7 dht data
            DI | DO,  # 8 bell button
            DI | INT,  # 9 encoder A
            DI | INT,  # 10 encoder B
            DI | DO | PWM,  # 11 stepper step
            DI | DO,  # 12 stepper dir
            DI | AI,  # 13 pid input
            DI | DO | PWM,  # 14 pid output
        ),
        max_payload=512,
        adc_bits=12,
        modules=tuple(
            ModuleSpec(k) for k in ("servo", "neopixel", "dht", "encoder", "stepper", "pid")
        ),
        datastreams=(
            DatastreamSpec("setpoint", DatastreamType.FLOAT32, "celsius", True, model=Hold(21.0)),
        ),
    )


def firehose() -> Profile:
    """One FLOAT32 counter pushed on every tick: for end-to-end throughput benchmarks."""
    return Profile(
        name="firehose",
        description="one FLOAT32 counter pushed as fast as the runner allows",
        firmware_name="sim-firehose",
        firmware_version=(1, 0, 0),
        mcu_id=bytes.fromhex("240ac400feed"),
        pins=(DI | DO, DI | DO, DI | AI, DI | AI),
        max_payload=512,
        datastreams=(
            DatastreamSpec("value", DatastreamType.FLOAT32, push_interval_s=0.0, model=Counter()),
        ),
    )


PROFILES: Mapping[str, Callable[[], Profile]] = MappingProxyType(
    {
        "thermostat": thermostat,
        "kitchen": kitchen,
        "uno": uno,
        "workshop": workshop,
        "garage": garage,
        "firehose": firehose,
    }
)
"""Profile factories by name (each call builds a fresh Profile)."""


def get_profile(name: str) -> Profile:
    """The profile called `name`. Raises KeyError naming the known profiles."""
    try:
        factory = PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise KeyError(f"unknown simulator profile {name!r}; known profiles: {known}") from None
    return factory()
