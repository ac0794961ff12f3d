#!/usr/bin/env python3
"""Screenshot the bridge's HTTP status page in headless Chromium and check the picture.

Starts a Bridge with two simulated boards (`sim://thermostat`, `sim://kitchen`) and the
HTTP endpoint on a free loopback port, against the broker in `MQTT_URL` or, without it, a
local `mosquitto` started on a free port; waits until the boards are online and have
published values; provokes one refused command so that the error list is not empty; then
runs `chromium --headless --screenshot` on `/` and checks the PNG: the expected size,
more than 20 kB, and not blank (enough pixel rows with detail, decoded with the standard
library only).

    python scripts/status_screenshot.py --out status.png

Exit code 0 and a line starting with "screenshot OK" when all checks pass, 1 otherwise.
`tests/e2e/test_http.py::test_status_page_in_chromium` runs it when Chromium is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conduyt_bridge.app.config import Settings
from conduyt_bridge.app.daemon import Bridge
from conduyt_bridge.app.demo import MosquittoBroker, find_mosquitto, free_port
from conduyt_bridge.app.log import configure_logging

WIDTH, HEIGHT = 1200, 900
"""Browser window and expected screenshot size, pixels."""

MIN_PNG_BYTES = 20_000
"""A page with text compresses to far more than a blank or near-blank one (~5 kB)."""

MIN_BUSY_ROWS = 0.05
"""Share of pixel rows that must show detail (text, borders) for a page to count as drawn."""

BASE_TOPIC = "conduyt-screenshot"


def chromium_command(chromium: str, url: str, png: Path, profile_dir: str) -> list[str]:
    """The headless Chromium invocation that writes a screenshot of `url` to `png`."""
    return [
        chromium,
        "--headless",
        "--no-sandbox",  # runs as root in containers and CI
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile_dir}",
        f"--screenshot={png}",
        f"--window-size={WIDTH},{HEIGHT}",
        url,
    ]


def _png_rows(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, filtered scanlines) of an 8-bit, non-interlaced PNG.

    Raises ValueError for anything else.
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("not a PNG file")
    pos, idat, header = 8, bytearray(), None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {color}, interlace)")
    raw = zlib.decompress(bytes(idat))
    stride = 1 + width * channels
    if len(raw) != stride * height:
        raise ValueError("PNG pixel data has the wrong length")
    return width, height, channels, [raw[i * stride : (i + 1) * stride] for i in range(height)]


def check_png(path: Path) -> str:
    """Check a screenshot; returns a one-line summary. Raises ValueError if it fails.

    "Not blank" without an imaging library: a row of one colour is, under any PNG filter,
    a few distinct bytes (the pixel, or the pixel then zeros); a row crossing text has
    many. So the share of rows with more than 8 distinct byte values measures detail.
    """
    if not path.exists():
        raise ValueError(f"{path} was not written")
    data = path.read_bytes()
    width, height, _, rows = _png_rows(data)
    if (width, height) != (WIDTH, HEIGHT):
        raise ValueError(f"screenshot is {width}x{height}, expected {WIDTH}x{HEIGHT}")
    if len(data) < MIN_PNG_BYTES:
        raise ValueError(f"screenshot is only {len(data)} bytes: blank page?")
    busy = sum(1 for row in rows if len(set(row[1:])) > 8) / height
    if busy < MIN_BUSY_ROWS:
        raise ValueError(f"only {busy:.0%} of the rows show detail: blank page?")
    return f"{width}x{height}, {len(data)} bytes, {busy:.0%} of rows with detail"


async def _wait(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def capture(mqtt_url: str, out: Path, chromium: str) -> str:
    """Run the bridge, screenshot its status page into `out`; returns the check summary."""
    http_port = free_port()
    settings = Settings(
        bridge={"base_topic": BASE_TOPIC, "log_level": "warning"},
        mqtt={"url": mqtt_url, "client_id": f"status-screenshot-{os.getpid()}"},
        homeassistant={"enabled": False},
        devices=[
            {"id": "thermostat", "port": "sim://thermostat"},
            {"id": "kitchen", "port": "sim://kitchen"},
        ],
        http={"listen": f"127.0.0.1:{http_port}"},
    )
    bridge = Bridge(settings)
    task = asyncio.create_task(bridge.run())
    try:
        await asyncio.wait_for(bridge.mqtt.wait_connected(), 10)
        thermostat, kitchen = bridge.boards["thermostat"], bridge.boards["kitchen"]
        await _wait(
            lambda: (
                "temperature_celsius" in thermostat.values
                and "humidity_percent" in thermostat.values
                and "door_open" in kitchen.values
            ),
            10,
            "the boards' values",
        )
        # One refused command, so the page's error list has something to show.
        async with aiomqtt.Client(settings.mqtt.host, settings.mqtt.port) as client:
            await client.publish(f"{BASE_TOPIC}/thermostat/ds/setpoint_celsius/set", b"warm", qos=1)
        await _wait(lambda: len(thermostat.errors) > 0, 5, "the error report")
        with tempfile.TemporaryDirectory(prefix="conduyt-chromium-") as profile:
            proc = await asyncio.create_subprocess_exec(
                *chromium_command(chromium, f"http://127.0.0.1:{http_port}/", out, profile),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                output, _ = await asyncio.wait_for(proc.communicate(), 45)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise
            if proc.returncode != 0:
                tail = output.decode(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"chromium exited {proc.returncode}: {' | '.join(tail)}")
        return check_png(out)
    finally:
        bridge.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


async def main_async(out: Path, chromium: str) -> int:
    url = os.environ.get("MQTT_URL")
    broker: MosquittoBroker | None = None
    if not url:
        binary = find_mosquitto()
        if binary is None:
            print("no broker: set MQTT_URL or install mosquitto", file=sys.stderr)
            return 1
        broker = MosquittoBroker(binary, "127.0.0.1", free_port())
        await broker.start()
        url = f"mqtt://127.0.0.1:{broker.port}"
    try:
        summary = await capture(url, out, chromium)
    except (ValueError, RuntimeError, TimeoutError) as exc:
        print(f"screenshot FAILED: {exc}")
        return 1
    finally:
        if broker is not None:
            await broker.stop()
    print(f"screenshot OK: {out} ({summary})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("status.png"), help="PNG to write")
    parser.add_argument(
        "--chromium",
        default=shutil.which("chromium") or "/usr/bin/chromium",
        help="Chromium binary (default: chromium on PATH)",
    )
    args = parser.parse_args()
    configure_logging("warning")
    return asyncio.run(main_async(args.out.resolve(), args.chromium))


if __name__ == "__main__":
    raise SystemExit(main())
