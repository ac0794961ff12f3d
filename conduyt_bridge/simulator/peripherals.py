"""Simulated I2C peripherals that tests can hang on a board's bus.

A board answers I2C like one with nothing attached unless a test adds a device to
`SimulatedBoard.i2c_devices` (address → `RegisterDevice`). This models the most common
kind of I2C chip: 256 byte-wide registers behind an auto-incrementing register pointer
(EEPROMs, RTCs, most sensors).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RegisterDevice:
    """256 registers and a pointer that advances on every byte read or written."""

    registers: bytearray = field(default_factory=lambda: bytearray(256))
    pointer: int = 0

    def write(self, data: bytes) -> None:
        """An I2C write: the first byte sets the pointer, the rest are stored from there."""
        if not data:
            return
        self.pointer = data[0]
        for b in data[1:]:
            self.registers[self.pointer] = b
            self.pointer = (self.pointer + 1) & 0xFF

    def read(self, count: int) -> bytes:
        """An I2C read of `count` bytes from the pointer."""
        out = bytearray()
        for _ in range(count):
            out.append(self.registers[self.pointer])
            self.pointer = (self.pointer + 1) & 0xFF
        return bytes(out)
