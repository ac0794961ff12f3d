"""CRC-8 of Conduyt packets: poly 0x31, init 0, no reflection, xorout 0 (`docs/protocol.md` §2).

Check value: `crc8(b"123456789") == 0xA2`. Not CRC-8/MAXIM-DOW (that one is reflected).
"""

from __future__ import annotations


def _make_table() -> bytes:
    table = bytearray(256)
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table[i] = crc
    return bytes(table)


CRC8_TABLE = _make_table()
"""256-entry lookup table indexed by `crc ^ byte`."""


def crc8(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-8 of `data` (0..255), continuing from `crc` (0 for a fresh checksum)."""
    table = CRC8_TABLE
    for b in data:
        crc = table[crc ^ b]
    return crc
