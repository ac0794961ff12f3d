"""A virtual Conduyt board: the device side of the protocol, sans-IO.

`SimulatedBoard` takes the host's bytes (`receive`) and the passing of time (`tick`) and
returns the bytes the firmware would send back, framed for the link. Command handling
follows `docs/protocol.md` §4.2 (as compiled for a real Arduino target) including the
firmware's quirks (§7): events carry SEQ 0, a CRC failure is NAKed with SEQ 0, other bad
frames are dropped silently, DS_READ always NAKs, subscription slots leak, and integer
datastreams are pushed as int32. Time is whatever the caller passes as `now` (seconds,
any monotonic origin), so tests are deterministic given a seed.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

from conduyt_bridge.protocol.constants import (
    Capability,
    ErrorCode,
    PacketType,
    PinMode,
)
from conduyt_bridge.protocol.framing import FrameError, FrameErrorReason, cobs_frame
from conduyt_bridge.protocol.hello import HelloResp
from conduyt_bridge.protocol.packet import Packet, encode_packet
from conduyt_bridge.protocol.values import DatastreamValue
from conduyt_bridge.simulator.datastreams import DatastreamTable, coerce
from conduyt_bridge.simulator.faults import Faults
from conduyt_bridge.simulator.modules import MODULE_KINDS, SimModule
from conduyt_bridge.simulator.ota import REBOOT_DELAY_S, OtaUpdater
from conduyt_bridge.simulator.peripherals import RegisterDevice
from conduyt_bridge.simulator.pins import STEP_S, PinBank
from conduyt_bridge.simulator.profiles import Profile
from conduyt_bridge.simulator.rx import Framing, Receiver
from conduyt_bridge.simulator.sampling import AnalogStream, SubscriptionTable

Reply = tuple[int, bytes]
"""A direct reply: packet TYPE and payload (the SEQ is the command's)."""

_ACK: Reply = (PacketType.ACK, b"")

ESP32_BOOT_BANNER = (
    b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
)
"""What an ESP32's boot ROM prints at 115200 baud after a reset."""

MAX_CATCHUP_STEPS = 100
"""World steps simulated at most per call: a long pause between calls does not stall."""


def _nak(code: ErrorCode) -> Reply:
    return (PacketType.NAK, bytes((code,)))


def _u16(data: bytes, offset: int) -> int:
    return data[offset] | (data[offset + 1] << 8)


class SimulatedBoard:
    """A board running Conduyt firmware with the sketch described by `profile`.

    Args:
        profile: what the board is and does (see `conduyt_bridge.simulator.profiles`).
        framing: `"cobs"` for serial/USB links (§3.1), `"raw"` for the TCP transport
            (§3.2).
        seed: seed of the board's random generator (sensor noise, wandering pins);
            None for a different world each run.

    Public state (read it in tests; mutate only `faults` and `i2c_devices`):
        hello: the HELLO_RESP snapshot (§6.3), rebuilt only by `reboot(new_profile)`.
        received: every decoded host packet, in order, executed or not (CRC failures
            cannot be decoded and are not in it).
        sent: every packet put on the wire (before any `corrupt_crc` damage).
        written: (datastream name, value) for every DS_WRITE the sketch accepted; the
            value is decoded per the declared type, or the raw bytes if undecodable.
        modules: the simulated modules, index = MOD_CMD id.
        i2c_devices: address → simulated I2C chip (empty: nothing on the bus).
        ota_image: the last image flashed by a complete OTA update, else None.
        boots: how many times the board has booted (1 after construction).
    """

    def __init__(
        self, profile: Profile, *, framing: Framing = "cobs", seed: int | None = None
    ) -> None:
        self.framing: Framing = framing
        self.faults = Faults()
        self.received: list[Packet] = []
        self.sent: list[Packet] = []
        self.written: list[tuple[str, DatastreamValue]] = []
        self.i2c_devices: dict[int, RegisterDevice] = {}
        self.ota_image: bytes | None = None
        self.boots = 0
        self._rng = random.Random(seed)
        self._handlers: dict[int, Callable[[bytes, float], Reply]] = {
            PacketType.PING: self._ping,
            PacketType.HELLO: self._hello,
            PacketType.PIN_MODE: self._pin_mode,
            PacketType.PIN_WRITE: self._pin_write,
            PacketType.PIN_READ: self._pin_read,
            PacketType.PIN_SUBSCRIBE: self._pin_subscribe,
            PacketType.PIN_UNSUBSCRIBE: self._pin_unsubscribe,
            PacketType.I2C_WRITE: self._i2c_write,
            PacketType.I2C_READ: self._i2c_read,
            PacketType.I2C_READ_REG: self._i2c_read_reg,
            PacketType.SPI_XFER: self._spi_xfer,
            PacketType.MOD_CMD: self._mod_cmd,
            PacketType.STREAM_START: self._stream_start,
            PacketType.STREAM_STOP: self._stream_stop,
            PacketType.DS_WRITE: self._ds_write,
            PacketType.DS_READ: self._ds_read,
            PacketType.DS_SUBSCRIBE: self._ds_subscribe,
            PacketType.OTA_BEGIN: self._ota_begin,
            PacketType.OTA_CHUNK: self._ota_chunk,
            PacketType.OTA_FINALIZE: self._ota_finalize,
            PacketType.RESET: self._reset,
        }
        self._boot(profile)

    def _boot(self, profile: Profile) -> None:
        """Power-on state: everything the firmware keeps in RAM starts afresh."""
        self.profile = profile
        self.hello: HelloResp = profile.hello
        self._hello_payload = self.hello.encode()  # built once, replayed verbatim (§4.2)
        self._rx = Receiver(self.framing, profile.max_payload)
        self._pins = PinBank(profile.pins, profile.adc_max, self._rng)
        self._subs = SubscriptionTable(profile.max_subscriptions)
        self._stream: AnalogStream | None = None
        self._datastreams = DatastreamTable(profile.datastreams, self.hello.datastreams, self._rng)
        self.modules: tuple[SimModule, ...] = tuple(
            MODULE_KINDS[m.kind](self._rng) for m in profile.modules
        )
        self._ota = OtaUpdater()
        self._reboot_at: float | None = None
        self._world_t: float | None = None
        self.boots += 1

    # ----------------------------------------------------------------- public API

    @property
    def datastream_values(self) -> dict[str, DatastreamValue]:
        """Current value of every datastream, by name (a copy)."""
        return self._datastreams.values()

    @property
    def pin_values(self) -> dict[int, int]:
        """Current value per pin: the written output (0/1 or PWM duty), else the analog
        reading (raw ADC counts) for ADC pins, else the digital input level 0/1."""
        return self._pins.snapshot()

    @property
    def pin_modes(self) -> dict[int, PinMode]:
        """Modes remembered from PIN_MODE (pins 0..69 only, §4.2), a copy."""
        return dict(self._pins.modes)

    @property
    def subscriptions(self) -> SubscriptionTable:
        """The PIN_SUBSCRIBE slot table (`slots` includes leaked inactive ones, Q6)."""
        return self._subs

    @property
    def stream(self) -> AnalogStream | None:
        """The running STREAM_START stream, None when stopped."""
        return self._stream

    def receive(self, data: bytes, now: float) -> bytes:
        """Feed bytes from the host (any chunking) at time `now` (s); return the reply bytes.

        Returns the framed replies to every command completed by `data`, in order (b""
        if none). A CRC failure is answered with NAK(seq 0, CRC_MISMATCH); bad COBS,
        magic, version and oversize frames are dropped silently (Q2).
        """
        self._advance(now)
        out = bytearray()
        one_per_poll = self.faults.tcp_backlog and self.framing == "raw"
        events = self._rx.feed_one(data) if one_per_poll else self._rx.feed(data)
        for event in events:
            if isinstance(event, FrameError):
                if event.reason is FrameErrorReason.CRC_MISMATCH:
                    out += self._emit(
                        PacketType.NAK, 0, bytes((ErrorCode.CRC_MISMATCH,)), reply=True
                    )
                continue
            self.received.append(event)
            if not self.faults.silent:
                out += self._dispatch(event, now)
        return bytes(out)

    def tick(self, now: float) -> bytes:
        """Let time pass until `now` (s); return the framed events the sketch sends.

        DS_EVENTs of datastreams whose push period elapsed, PIN_EVENTs of due ANALOG_POLL
        subscriptions, one STREAM_DATA if a stream sample is due, and module MOD_EVENTs
        (encoder ticks, stepper done). Every event has SEQ 0. Lines queued in
        `faults.print_lines` come first, as unframed text.
        """
        self._advance(now)
        if self._reboot_at is not None and now >= self._reboot_at:
            self.reboot()
            self._advance(now)
        out = bytearray()
        if self.faults.print_lines and not self.faults.silent:
            # The sketch's own prints go out between frames, on the same line (Q19).
            out += "".join(f"{line}\r\n" for line in self.faults.print_lines).encode()
            self.faults.print_lines.clear()
        for ds in self._datastreams.due(now):
            out += self._event(PacketType.DS_EVENT, bytes((ds.index,)) + ds.encode())
        for pin, value in self._subs.poll(now, self._pins.read_analog):
            out += self._event(PacketType.PIN_EVENT, struct.pack("<BH", pin, value))
        if self._stream is not None and self._stream.due(now):
            base = self.profile.analog_channel_base
            values = [self._pins.read_analog(base + bit) for bit in self._stream.bits]
            out += self._event(PacketType.STREAM_DATA, struct.pack(f"<{len(values)}H", *values))
        for module in self.modules:
            for event in module.tick(now):
                # Built-in modules hard-code module_id 0 (Q9).
                out += self._event(PacketType.MOD_EVENT, b"\x00" + event)
        return bytes(out)

    def set_datastream(self, name: str, value: object) -> bytes:
        """The sketch calls `writeDatastream(name, value)`: keep it and push a DS_EVENT now.

        `value` is coerced to the declared type (an int for a FLOAT32 stream becomes a
        float), then encoded like the firmware (int32 for integer types, Q10). Returns
        the framed DS_EVENT (b"" if faults suppress it).

        Raises KeyError for an unknown datastream, TypeError/ValueError for a value the
        declared type cannot hold.
        """
        ds = self._datastreams.by_name(name)
        ds.value = coerce(ds.spec.type, value)
        return self._event(PacketType.DS_EVENT, bytes((ds.index,)) + ds.encode())

    def push_raw(self, name: str, raw: bytes) -> bytes:
        """The sketch calls `emitDsEvent(index, raw)`: push these value bytes as they are.

        For reproducing odd encodings (e.g. an int32 pushed on a FLOAT32 datastream).
        The current value is left alone. Raises KeyError for an unknown datastream.
        """
        ds = self._datastreams.by_name(name)
        return self._event(PacketType.DS_EVENT, bytes((ds.index,)) + raw)

    def send_event(self, type_: int, payload: bytes = b"") -> bytes:
        """The sketch sends any packet itself, e.g. LOG (0xE0) text, with SEQ 0."""
        return self._event(type_, payload)

    def set_pin(self, pin: int, value: int) -> None:
        """Drive an input from outside: raw ADC counts on an ADC pin, else 0/1.

        The pin holds that value (no more wandering) until `release_pin(pin)` or a
        reboot, so tests can predict PIN_READ_RESP, PIN_EVENT and STREAM_DATA values.
        Pins the board does not have are ignored.
        """
        self._pins.set_input(pin, value)

    def release_pin(self, pin: int) -> None:
        """Let a pin driven by `set_pin` wander again."""
        self._pins.release_input(pin)

    def reboot(self, new_profile: Profile | None = None) -> None:
        """Power-cycle: forget modes, outputs, subscriptions, streams, values, modules.

        With `new_profile` a different board comes up (e.g. another sketch flashed onto
        the board on the same port) and `hello` changes. The logs (`received`, `sent`,
        `written`), `faults`, `i2c_devices` and `ota_image` are test instruments and
        survive.
        """
        self._boot(new_profile if new_profile is not None else self.profile)

    def press_reset(self, banner: bytes = ESP32_BOOT_BANNER) -> None:
        """The reset button with the port still open: `reboot()`, and the boot ROM's
        `banner` goes out in front of the next frame (b"" for boards whose ROM prints
        nothing, e.g. an AVR with optiboot)."""
        self.reboot()
        self.faults.garbage = banner + self.faults.garbage

    # ------------------------------------------------------------------ plumbing

    def _advance(self, now: float) -> None:
        """Step the outside world (pins) in fixed `STEP_S` steps up to `now`."""
        if self._world_t is None:
            self._world_t = now
            return
        steps = int((now - self._world_t) / STEP_S)
        if steps <= 0:
            return
        for _ in range(min(steps, MAX_CATCHUP_STEPS)):
            self._pins.step()
        self._world_t += steps * STEP_S

    def _dispatch(self, packet: Packet, now: float) -> bytes:
        code = self.faults.nak.get(packet.type)
        if code is not None:
            return self._emit(PacketType.NAK, packet.seq, bytes((code & 0xFF,)), reply=True)
        handler = self._handlers.get(packet.type)
        # Unknown types, and event types sent to the board, are NAKed echoing the SEQ.
        type_, payload = (
            _nak(ErrorCode.UNKNOWN_TYPE) if handler is None else handler(packet.payload, now)
        )
        return self._emit(type_, packet.seq, payload, reply=True)

    def _event(self, type_: int, payload: bytes) -> bytes:
        return self._emit(type_, 0, payload, reply=False)

    def _emit(self, type_: int, seq: int, payload: bytes, *, reply: bool) -> bytes:
        """Frame one outgoing packet, applying the firmware's size limits and the faults."""
        faults = self.faults
        if faults.silent:
            return b""
        if reply and faults.drop_replies > 0:
            faults.drop_replies -= 1
            return b""
        limit = self.profile.max_payload
        if len(payload) > limit:
            return b""  # does not fit the transmit buffer: never sent (§1.5)
        packet = encode_packet(type_, seq, payload)
        if self.framing == "cobs":
            wire = cobs_frame(packet)
            # The firmware's COBS buffer holds M + M/254 + 2 bytes; a longer encoding
            # fails silently, so e.g. a 128-byte board sends payloads of ≤ 121 (§1.5).
            if len(wire) - 1 > limit + limit // 254 + 2:
                return b""
        else:
            wire = packet
        if faults.corrupt_crc > 0:
            faults.corrupt_crc -= 1
            bad = packet[:-1] + bytes((packet[-1] ^ 0xFF,))
            wire = cobs_frame(bad) if self.framing == "cobs" else bad
        if faults.garbage:
            wire = faults.garbage + wire
            faults.garbage = b""
        self.sent.append(Packet(type_, seq, payload))
        return wire

    # ------------------------------------------------------------------ commands

    def _ping(self, p: bytes, now: float) -> Reply:
        return (PacketType.PONG, b"")

    def _hello(self, p: bytes, now: float) -> Reply:
        return (PacketType.HELLO_RESP, self._hello_payload)

    def _pin_mode(self, p: bytes, now: float) -> Reply:
        if len(p) < 2:
            return _nak(ErrorCode.INVALID_PIN)
        if p[1] > PinMode.INPUT_PULLUP:
            return _nak(ErrorCode.PIN_MODE_UNSUPPORTED)
        # No pin-range or capability check (Q12).
        self._pins.set_mode(p[0], PinMode(p[1]))
        return _ACK

    def _pin_write(self, p: bytes, now: float) -> Reply:
        if len(p) < 2:
            return _nak(ErrorCode.INVALID_PIN)
        pin, value = p[0], p[1]
        # Without a mode byte, 0/1 is a digital level and 2..255 a PWM duty.
        pwm = p[2] == PinMode.PWM if len(p) >= 3 else value > 1
        self._pins.write(pin, value if pwm else int(value != 0))
        return _ACK

    def _pin_read(self, p: bytes, now: float) -> Reply:
        if len(p) < 1:
            return _nak(ErrorCode.INVALID_PIN)
        pin = p[0]
        mode = p[1] if len(p) >= 2 else self._pins.mode(pin)
        if mode == PinMode.ANALOG:
            # The guard of known boards: analogRead only on pins with ANALOG_IN.
            if not self._pins.caps(pin) & Capability.ANALOG_IN:
                return _nak(ErrorCode.PIN_MODE_UNSUPPORTED)
            value = self._pins.read_analog(pin)
        else:
            value = self._pins.read_digital(pin)
        return (PacketType.PIN_READ_RESP, struct.pack("<BH", pin, value))

    def _pin_subscribe(self, p: bytes, now: float) -> Reply:
        if len(p) < 5:
            return _nak(ErrorCode.INVALID_PIN)
        threshold = _u16(p, 4) if len(p) >= 7 else 0  # read only with ≥ 7 bytes (Q7)
        if not self._subs.subscribe(p[0], p[1], _u16(p, 2), threshold, now):
            return _nak(ErrorCode.SUB_LIMIT_REACHED)
        return _ACK

    def _pin_unsubscribe(self, p: bytes, now: float) -> Reply:
        if len(p) < 1 or not self._subs.unsubscribe(p[0]):
            return _nak(ErrorCode.INVALID_PIN)
        return _ACK

    @staticmethod
    def _i2c_address_ok(address: int) -> bool:
        return 0x08 <= address <= 0x77

    def _i2c_write(self, p: bytes, now: float) -> Reply:
        if len(p) < 2 or not self._i2c_address_ok(p[0]):
            return _nak(ErrorCode.I2C_NOT_AVAILABLE)
        device = self.i2c_devices.get(p[0])
        if device is None:
            return _nak(ErrorCode.I2C_NACK)  # endTransmission() != 0: nobody answered
        device.write(p[1:])
        return _ACK

    def _i2c_read(self, p: bytes, now: float) -> Reply:
        if len(p) < 2 or not self._i2c_address_ok(p[0]):
            return _nak(ErrorCode.I2C_NOT_AVAILABLE)
        device = self.i2c_devices.get(p[0])
        # An absent device gives an empty reply, not a NAK (Q17).
        return (PacketType.I2C_READ_RESP, b"" if device is None else device.read(p[1]))

    def _i2c_read_reg(self, p: bytes, now: float) -> Reply:
        if len(p) < 3 or not self._i2c_address_ok(p[0]):
            return _nak(ErrorCode.I2C_NOT_AVAILABLE)
        device = self.i2c_devices.get(p[0])
        if device is None:
            return _nak(ErrorCode.I2C_NACK)  # the register-pointer write failed
        device.write(p[1:2])
        return (PacketType.I2C_READ_RESP, device.read(p[2]))

    def _spi_xfer(self, p: bytes, now: float) -> Reply:
        if len(p) < 2:
            return _nak(ErrorCode.UNKNOWN_TYPE)  # the firmware's odd code (§4.2)
        # Nothing drives MISO: the line floats high.
        return (PacketType.SPI_XFER_RESP, b"\xff" * (len(p) - 1))

    def _mod_cmd(self, p: bytes, now: float) -> Reply:
        if len(p) < 2 or p[0] >= len(self.modules):
            return _nak(ErrorCode.MODULE_NOT_LOADED)
        reply = self.modules[p[0]].command(p[1], p[2:], now)
        if reply is None:
            return _ACK  # the module stayed silent: auto-ACK
        if reply.type == PacketType.MOD_RESP:
            return (PacketType.MOD_RESP, b"\x00" + reply.payload)  # module_id 0 (Q9)
        return (reply.type, reply.payload)

    def _stream_start(self, p: bytes, now: float) -> Reply:
        if len(p) < 5:
            return _nak(ErrorCode.INVALID_PIN)  # needs ≥ 5 though it reads 4 (Q7)
        self._stream = AnalogStream.start(_u16(p, 0), _u16(p, 2), now)
        return _ACK

    def _stream_stop(self, p: bytes, now: float) -> Reply:
        self._stream = None
        return _ACK

    def _ds_write(self, p: bytes, now: float) -> Reply:
        ds = self._datastreams.get(p[0]) if len(p) >= 2 else None
        if ds is None:
            return _nak(ErrorCode.UNKNOWN_DATASTREAM)
        if not ds.spec.writable:
            return _nak(ErrorCode.DATASTREAM_READONLY)
        # The sketch's callback adopts the value; the firmware echoes no DS_EVENT.
        self.written.append((ds.spec.name, self._datastreams.adopt(ds, p[1:])))
        return _ACK

    def _ds_read(self, p: bytes, now: float) -> Reply:
        return _nak(ErrorCode.UNKNOWN_DATASTREAM)  # the firmware keeps no values (Q8)

    def _ds_subscribe(self, p: bytes, now: float) -> Reply:
        return _ACK  # accepted and ignored (Q8)

    def _ota_begin(self, p: bytes, now: float) -> Reply:
        ok = self.profile.ota_capable and self._ota.begin(p)
        return _ACK if ok else _nak(ErrorCode.OTA_INVALID)

    def _ota_chunk(self, p: bytes, now: float) -> Reply:
        ok = self.profile.ota_capable and self._ota.chunk(p)
        return _ACK if ok else _nak(ErrorCode.OTA_INVALID)

    def _ota_finalize(self, p: bytes, now: float) -> Reply:
        image = self._ota.finalize() if self.profile.ota_capable else None
        if image is None:
            return _nak(ErrorCode.OTA_INVALID)
        self.ota_image = image
        self._reboot_at = now + REBOOT_DELAY_S
        return _ACK

    def _reset(self, p: bytes, now: float) -> Reply:
        # Subscriptions go and their slots are freed; streams, modules and datastreams
        # stay (Q16). The firmware also clears its receive buffer, which holds nothing
        # once a frame has been decoded, so the receiver is left alone.
        self._subs.clear()
        return _ACK


__all__ = ["SimulatedBoard"]
