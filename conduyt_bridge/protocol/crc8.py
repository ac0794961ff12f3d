"""CRC-8 of Conduyt packets: poly 0x31, init 0, no reflection, xorout 0 (`docs/protocol.md` §2).

Check value: `crc8(b"123456789") == 0xA2`. Not CRC-8/MAXIM-DOW (that one is reflected).

`crc8` is the compiled one of the `fastcrc` package (its CRC-8/NRSC-5 preset has our
polynomial; started from 0 instead of its init 0xFF it is our CRC): ≈ 50 ns instead of
≈ 210 ns over a DS_EVENT's 10 covered bytes, the largest single cost of deframing
(`docs/architecture.md` §6.1, `docs/libraries.md` §5). `crc8_reference` is the pure-Python
table form, the definition the tests check `crc8` against.
"""

from __future__ import annotations

from fastcrc.crc8 import nrsc_5 as _nrsc_5

__all__ = ["CRC8_TABLE", "crc8", "crc8_compiled", "crc8_reference"]


def _make_table() -> bytes:
    table = bytearray(256)
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table[i] = crc
    return bytes(table)


CRC8_TABLE = _make_table()
"""256-entry lookup table indexed by `crc ^ byte` (the reference form's table)."""


crc8_compiled = _nrsc_5
"""What `crc8` calls, `(data, crc) -> int`, both arguments positional: for the hot loops
(`CobsDeframer`, `decode_prefix`), one Python call less per packet."""


def crc8(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-8 of `data` (0..255), continuing from `crc` (0 for a fresh checksum).

    Any bytes-like object; raises TypeError for anything else."""
    return _nrsc_5(data, crc)


def crc8_reference(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """`crc8` in pure Python, one table lookup per byte: the reference for tests."""
    table = CRC8_TABLE
    for b in data:
        crc = table[crc ^ b]
    return crc
