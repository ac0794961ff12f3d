"""Throughput of the sans-IO codec: packet encode/decode, COBS framing and the deframers.

Run from the repository root:  python bench/codec.py [--runs 5] [--mib 1]

The packet is a DS_EVENT `[index u8][value f32le]` (5-byte payload), 13 bytes on the wire
(8 bytes of header + CRC, `docs/protocol.md` §1.1) and 15 bytes as a COBS frame with its
delimiter (§3.1). Single thread; every figure is the best of `--runs` runs timed with
`time.perf_counter`. The deframer benchmarks feed a buffer of `--mib` MiB of concatenated
frames in 4 KiB chunks and check that every packet came out.
"""

from __future__ import annotations

import argparse
import platform
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conduyt_bridge.protocol import (
    CobsDeframer,
    Packet,
    PacketType,
    RawDeframer,
    cobs_frame,
    decode_packet,
    encode_packet,
)

TARGET_DEFRAME_PPS = 200_000
"""Required deframe+decode rate (packets/s) for a COBS link."""

CHUNK = 4096
"""Bytes per feed() call, like a serial read of 4 KiB."""

PAYLOAD = b"\x00" + struct.pack("<f", 21.5)
WIRE = encode_packet(PacketType.DS_EVENT, 0, PAYLOAD)
FRAME = cobs_frame(WIRE)


def best_of(runs: int, fn: Callable[[], int]) -> tuple[float, int]:
    """(best wall time in seconds, work count of that run) over `runs` calls of `fn`."""
    best = float("inf")
    count = 0
    for _ in range(runs):
        start = time.perf_counter()
        count = fn()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
    return best, count


def bench_encode(n: int) -> Callable[[], int]:
    def run() -> int:
        enc = encode_packet
        t = PacketType.DS_EVENT
        p = PAYLOAD
        for _ in range(n):
            enc(t, 0, p)
        return n

    return run


def bench_decode(n: int) -> Callable[[], int]:
    def run() -> int:
        dec = decode_packet
        w = WIRE
        for _ in range(n):
            dec(w)
        return n

    return run


def bench_cobs_frame(n: int) -> Callable[[], int]:
    def run() -> int:
        fr = cobs_frame
        w = WIRE
        for _ in range(n):
            fr(w)
        return n

    return run


def _chunks(stream: bytes) -> list[bytes]:
    return [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]


def bench_deframer(
    make: Callable[[], CobsDeframer | RawDeframer], unit: bytes, size: int
) -> tuple[Callable[[], int], int]:
    count = size // len(unit)
    chunks = _chunks(unit * count)
    expected = Packet(PacketType.DS_EVENT, 0, PAYLOAD)

    def run() -> int:
        deframer = make()
        feed = deframer.feed_events
        got = 0
        for chunk in chunks:
            got += len(feed(chunk))
        if got != count or deframer.stats.dropped:
            raise SystemExit(f"deframer lost packets: {got} of {count}, {deframer.stats}")
        return got

    # One correctness check outside the timing.
    sample = make().feed_events(unit * 3)
    assert sample == [expected] * 3, sample
    return run, count * len(unit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per benchmark (best is kept)")
    parser.add_argument("--mib", type=float, default=1.0, help="deframer buffer size, MiB")
    parser.add_argument("-n", type=int, default=200_000, help="iterations for per-packet benches")
    args = parser.parse_args()
    size = int(args.mib * 1024 * 1024)

    print(
        f"Python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.machine()}, best of {args.runs} runs"
    )
    print(f"packet: DS_EVENT [index][f32], {len(WIRE)} bytes on the wire: {WIRE.hex(' ')}")
    print(f"COBS frame: {len(FRAME)} bytes incl. delimiter: {FRAME.hex(' ')}")
    print()
    print(f"{'benchmark':<34} {'packets/s':>12} {'MB/s':>8}  bytes/packet")

    rows: list[tuple[str, float, int, int]] = []
    for name, fn, per in (
        ("encode_packet", bench_encode(args.n), len(WIRE)),
        ("decode_packet", bench_decode(args.n), len(WIRE)),
        ("cobs_frame", bench_cobs_frame(args.n), len(WIRE)),
    ):
        elapsed, count = best_of(args.runs, fn)
        rows.append((name, elapsed, count, count * per))

    cobs_run, cobs_bytes = bench_deframer(CobsDeframer, FRAME, size)
    raw_run, raw_bytes = bench_deframer(RawDeframer, WIRE, size)
    elapsed, count = best_of(args.runs, cobs_run)
    rows.append(("CobsDeframer.feed_events (4 KiB)", elapsed, count, cobs_bytes))
    cobs_pps = count / elapsed
    elapsed, count = best_of(args.runs, raw_run)
    rows.append(("RawDeframer.feed_events (4 KiB)", elapsed, count, raw_bytes))

    for name, elapsed, count, nbytes in rows:
        print(
            f"{name:<34} {count / elapsed:>12,.0f} {nbytes / elapsed / 1e6:>8.2f}  "
            f"{nbytes / count:.0f}"
        )
    print()
    verdict = "OK" if cobs_pps >= TARGET_DEFRAME_PPS else "BELOW TARGET"
    print(
        f"COBS deframe+decode: {cobs_pps:,.0f} packets/s vs target "
        f"{TARGET_DEFRAME_PPS:,} packets/s: {verdict}"
    )


if __name__ == "__main__":
    main()
